//! The addresses and shared handles of a running node's actors, as every part of the node
//! (and the explorer, the control socket) reaches them. Kept apart from `node.rs`, which builds
//! the node: the actors use the registry, the builder uses the actors.

use std::sync::Arc;

use actix::prelude::*;

use crate::artifact_fetcher::ArtifactFetcher;
use crate::gossip_router::GossipRouter;
use crate::legacy::LegacyBridge;
use crate::messages::{Ingest, IngestSummary, Origin, Shutdown};
use crate::peer_manager::PeerManager;
use crate::reads::Reads;
use crate::store_writer::StoreWriter;
use crate::supervision::Failure;
use crate::task_registry::TaskRegistry;
use crate::Store;

/// The addresses of a running node's actors (the explorer serves off this).
#[derive(Clone)]
pub struct Registry {
    pub peers: Addr<PeerManager>,
    pub router: Addr<GossipRouter>,
    pub tasks: Addr<TaskRegistry>,
    pub legacy: Addr<LegacyBridge>,
    /// Gets missing artifacts from peers of either transport.
    pub fetcher: Addr<ArtifactFetcher>,
    pub store: Arc<Store>,
    pub peer_id: libp2p::PeerId,
    /// Reported when a supervised actor keeps failing; the node should then stop.
    pub failure: Failure,
    /// The one writer of the store; its events tell what each commit changed.
    pub writer: StoreWriter,
    /// Reads for actor code (on blocking threads).
    pub reads: Reads,
    /// Set once when the node begins to stop.
    pub stopping: Stopping,
    /// What the node counts for operators (`/metrics`).
    pub metrics: crate::metrics::Metrics,
}

/// Set once, when the node begins to stop (a signal, `spored stop`, a restart for an update):
/// long work (the research loop, reruns) ends where it is and publishes nothing.
#[derive(Clone, Debug)]
pub struct Stopping(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Stopping {
    fn default() -> Self {
        Stopping(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Stopping {
    /// Marks the node as stopping (again: no effect).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the node is stopping.
    pub async fn wait(&self) {
        let mut seen = self.0.subscribe();
        let _ = seen.wait_for(|stopping| *stopping).await;
    }
}

impl Registry {
    /// Checks, stores and publishes frame bodies made on this node.
    pub async fn publish_local(&self, bodies: Vec<String>) -> Result<IngestSummary, MailboxError> {
        self.router
            .send(Ingest {
                origin: Origin::Local,
                bodies,
                sync_range: None,
            })
            .await
    }

    /// Stops the network first (peers see the connections close), then the rest.
    pub async fn shutdown(&self) {
        self.stopping.stop();
        let _ = self.legacy.send(Shutdown).await;
        let _ = self.peers.send(Shutdown).await;
    }
}
