//! A node is assembled in one place: [`Node::builder`] starts the store writer and every actor in
//! dependency order, under supervision, and [`Node::shutdown`] stops them in order. `spored run`,
//! the in-process tests and the benches all build their nodes here.

use std::sync::Arc;

use actix::prelude::*;
use libp2p::Multiaddr;
use tracing::info;

use crate::artifact_fetcher::{ArtifactFetcher, FetcherLinks, Transports};
use crate::control_socket::{self, ControlInfo};
use crate::experiment_runner::{ExperimentRunner, RunnerConfig};
use crate::gossip_router::{GossipRouter, LegacyLinks, MeshLinks};
use crate::legacy::{LegacyBridge, LegacyOptions};
use crate::net::{self, NetConfig};
use crate::peer_manager::{PeerManager, Peering};
use crate::reads::Reads;
pub use crate::registry::{Registry, Stopping};
use crate::research::{ResearchLoop, ResearchOptions};
use crate::store_writer::StoreWriter;
use crate::supervision::{Failure, RestartPolicy, Restarts};
use crate::task_registry::TaskRegistry;
use crate::verifier::{ChallengeArbiter, Verifier, VerifyOptions};
use crate::Store;

/// What a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The Ed25519 seed of the node's identity (also its libp2p identity).
    pub seed: [u8; 32],
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    pub net: NetConfig,
    /// `host:port` the reference protocol's listener binds; `None`: no listener.
    pub legacy_listen: Option<String>,
    pub legacy: LegacyOptions,
}

/// What a node does besides storing, serving and forwarding.
pub enum Mode {
    /// Stores, serves and forwards; runs nothing.
    Relay,
    /// Also re-runs other nodes' claims of its hardware class.
    VerifyOnly(Work),
    /// Also researches (and verifies).
    Research(Work, Box<ResearchOptions>),
}

/// How the working side runs experiments and checks claims.
pub struct Work {
    pub runner: RunnerConfig,
    pub verify: VerifyOptions,
}

/// Collects what a node needs; [`NodeBuilder::spawn`] starts it.
pub struct NodeBuilder {
    store: Arc<Store>,
    options: NodeOptions,
    mode: Mode,
    control: Option<(std::path::PathBuf, ControlInfo)>,
}

/// A running node: its actors' registry, and the thread its working side runs on.
pub struct Node {
    pub registry: Registry,
    /// The control socket's path (removed by [`Node::shutdown`]).
    control: Option<std::path::PathBuf>,
    /// The working side's thread (taken, stopped and joined by [`Node::shutdown`]).
    work: std::sync::Mutex<Option<actix::Arbiter>>,
}

impl Node {
    /// A relay node on `store` unless [`NodeBuilder::mode`] says otherwise.
    pub fn builder(store: Arc<Store>, options: NodeOptions) -> NodeBuilder {
        NodeBuilder {
            store,
            options,
            mode: Mode::Relay,
            control: None,
        }
    }

    /// Stops the node in order: first the flag that makes the working side publish nothing
    /// more, then the working side's thread (its futures are dropped, a training child is
    /// killed), then the network (peers see the connections close), then the store writer
    /// (after what it was sent).
    pub async fn shutdown(&self) {
        self.registry.stopping.stop();
        let work = self.work.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(work) = work {
            // its actors hold the store too: they are gone once the thread has ended
            work.stop();
            let _ = tokio::task::spawn_blocking(move || work.join()).await;
        }
        self.registry.shutdown().await;
        if let Some(path) = &self.control {
            let _ = std::fs::remove_file(path);
        }
        self.registry.writer.close().await;
    }
}

impl NodeBuilder {
    pub fn mode(mut self, mode: Mode) -> NodeBuilder {
        self.mode = mode;
        self
    }

    /// Also serve the local control socket at `path` (`spored info`, `spored import`).
    pub fn control_socket(mut self, path: std::path::PathBuf, info: ControlInfo) -> NodeBuilder {
        self.control = Some((path, info));
        self
    }

    /// Starts the store writer and every actor. Must run inside an actix System.
    pub fn spawn(self) -> Result<Node, String> {
        let registry = start(self.store, self.options)?;
        let control = self.control.map(|(path, info)| {
            start_control_socket(&path, &registry, info);
            path
        });
        let (work, research) = match self.mode {
            Mode::Relay => {
                return Ok(Node {
                    registry,
                    control,
                    work: Default::default(),
                })
            }
            Mode::VerifyOnly(work) => (work, None),
            Mode::Research(work, research) => (work, Some(research)),
        };
        // The working side runs on a thread of its own (an actix Arbiter): its messages, the
        // training child's output and the research loop never queue behind the System thread,
        // which drives the swarm, the legacy connections and the control socket.
        let thread = actix::Arbiter::new();
        let arbiter = thread.handle();
        let Work { runner, verify } = work;
        let seed = verify.seed;
        let metrics = registry.metrics.clone();
        let runner = ExperimentRunner::start_in_arbiter(&arbiter, move |_| {
            ExperimentRunner::new(runner).reporting_to(metrics)
        });
        let challenges = {
            let registry = registry.clone();
            ChallengeArbiter::start_in_arbiter(&arbiter, move |_| {
                ChallengeArbiter::new(registry, seed)
            })
        };
        {
            let (registry, runner) = (registry.clone(), runner.clone());
            Verifier::start_in_arbiter(&arbiter, move |_| {
                Verifier::new(registry, runner, verify, Some(challenges.recipient()))
            });
        }
        if let Some(research) = research {
            arbiter.spawn(ResearchLoop::new(registry.clone(), runner, *research).run());
        }
        Ok(Node {
            registry,
            control,
            work: std::sync::Mutex::new(Some(thread)),
        })
    }
}

/// Serves the control socket on the System thread. Without it the node still works (the CLI
/// then says the node does not answer), so a socket that cannot be bound or stops accepting is
/// logged, not fatal.
fn start_control_socket(path: &std::path::Path, registry: &Registry, info: ControlInfo) {
    let listener = match control_socket::bind(path) {
        Ok(listener) => listener,
        Err(e) => {
            return tracing::warn!(path = %path.display(), error = %e, "no control socket: `spored info` and `import` cannot reach this node")
        }
    };
    let registry = registry.clone();
    actix_rt::spawn(async move {
        if let Err(e) = control_socket::serve(listener, registry, info).await {
            tracing::warn!(error = %e, "control socket stopped");
        }
    });
}

/// Starts the actors in dependency order. Must run inside an actix System.
///
/// The stateless actors run under actix's supervisor with [`RestartPolicy::default`]: a failed
/// actor is restarted after a growing backoff, and one that keeps failing is reported in
/// [`Registry::failure`]. The PeerManager owns the swarm and is not restarted: if it stops, the
/// node stops.
fn start(store: Arc<Store>, options: NodeOptions) -> Result<Registry, String> {
    let legacy_listener = match &options.legacy_listen {
        Some(addr) => Some(bind_legacy(addr)?),
        None => None,
    };
    let swarm = net::build_swarm(options.seed, &options.net)?;
    let peer_id = *swarm.local_peer_id();
    let failure = Failure::default();
    let metrics = crate::metrics::Metrics::default();
    let restarts = |name| Restarts::new(name, RestartPolicy::default(), failure.clone());
    let writer = StoreWriter::start(store.clone())
        .map_err(|e| format!("cannot start the store writer: {e}"))?;
    let reads = Reads::new(store.clone());
    let tasks = {
        let (reads, writer) = (reads.clone(), writer.clone());
        let restarts = restarts("task registry");
        Supervisor::start(move |_| TaskRegistry::new(reads.clone(), writer.clone(), restarts))
    };
    // PeerManager and GossipRouter need each other's address: create the PeerManager's context
    // first, hand its address to the router, then run the PeerManager in it.
    let peers_ctx: Context<PeerManager> = Context::new();
    let peers_addr = peers_ctx.address();
    let legacy_ctx: Context<LegacyBridge> = Context::new();
    let legacy_addr = legacy_ctx.address();
    // the fetcher asks through both transports, and they tell it who is there
    let fetcher = ArtifactFetcher::new(
        writer.clone(),
        Transports {
            mesh: peers_addr.clone().recipient(),
            mesh_offend: peers_addr.clone().recipient(),
            legacy: legacy_addr.clone().recipient(),
            legacy_offend: legacy_addr.clone().recipient(),
        },
        options.net.fetch.clone(),
    )
    .start();
    let router = {
        let (writer, peers, legacy, fetch) = (
            writer.clone(),
            MeshLinks::to(&peers_addr),
            LegacyLinks::to(&legacy_addr),
            fetcher.clone().recipient(),
        );
        let restarts = restarts("gossip router");
        let replay_window = options.net.gossip_replay_window;
        let metrics = metrics.clone();
        Supervisor::start(move |_| {
            GossipRouter::new(
                writer.clone(),
                peers.clone(),
                legacy.clone(),
                fetch.clone(),
                restarts,
                replay_window,
                metrics.clone(),
            )
        })
    };
    // one standing per peer for both transports
    let scores = crate::peer_score::SharedScores::default();
    let peer_manager = PeerManager::new(
        swarm,
        reads.clone(),
        scores.clone(),
        router.clone(),
        FetcherLinks::to(&fetcher),
        Peering {
            listen: options.listen,
            bootstrap: options.peers,
            resync_interval: options.net.resync_interval,
            allow_local_peers: options.net.allow_local_peers,
        },
    );
    let peers = peers_ctx.run(peer_manager);
    let legacy = legacy_ctx.run(LegacyBridge::new(
        reads.clone(),
        scores,
        router.clone().recipient(),
        FetcherLinks::to(&fetcher),
        legacy_listener,
        options.legacy,
    ));
    info!(%peer_id, "node started");
    Ok(Registry {
        peers,
        router,
        tasks,
        legacy,
        fetcher,
        store,
        peer_id,
        failure,
        writer,
        reads,
        stopping: Stopping::default(),
        metrics,
    })
}

/// Binds the reference protocol's listener now, so a port in use is an error at start.
fn bind_legacy(addr: &str) -> Result<tokio::net::TcpListener, String> {
    let cannot = |e: std::io::Error| {
        format!("cannot listen for reference peers on {addr}: {e} (another program has the port? use --port, or --no-legacy-listen)")
    };
    let listener = std::net::TcpListener::bind(addr).map_err(cannot)?;
    listener.set_nonblocking(true).map_err(cannot)?;
    tokio::net::TcpListener::from_std(listener).map_err(cannot)
}
