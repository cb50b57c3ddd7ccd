//! `spored run`: the node. Flags override the config file; `--dump-config` prints the result.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use libp2p::Multiaddr;
use spore_actors::auto_operator::{self, AutoOperator, UpdateOptions, UpdateReady};
use spore_actors::control_socket::{ControlInfo, ReloadReply};
use spore_actors::legacy::{GetLegacyAddr, LegacyOptions, SetLegacyPeers};
use spore_actors::messages::GetListenAddrs;
use spore_actors::net::NetConfig;
use spore_actors::node::{self, Mode, Node, NodeOptions};
use spore_actors::peer_manager::SetPeers;
use spore_actors::store::StoreError;
use spore_actors::Store;
use tracing::{info, warn};

use super::{research, Context};
use crate::config::NodeMode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address the listeners bind
    #[arg(long)]
    pub host: Option<String>,
    /// Port for reference (0.6.0) peers: the plain-TCP protocol
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Do not listen for reference peers (dialling host:port peers still works)
    #[arg(long)]
    pub no_legacy_listen: bool,
    /// libp2p mesh port (encrypted links between spored nodes)
    #[arg(long)]
    pub p2p_port: Option<u16>,
    /// Peer to dial (repeatable; replaces the configured peers): host:port for a reference
    /// node, a multiaddr for a spored node
    #[arg(long = "peer", short = 'c', value_name = "ADDR")]
    pub peers: Vec<String>,
    /// Do not dial the public bootstrap peers
    #[arg(long)]
    pub no_bootstrap: bool,
    /// Pin the task to work on
    #[arg(long)]
    pub task: Option<String>,
    /// Node mode
    #[arg(long, value_enum)]
    pub mode: Option<NodeMode>,
    /// Relay only: sync and serve, run no experiments (same as --mode relay)
    #[arg(long, conflicts_with_all = ["mode", "verify_only"])]
    pub no_train: bool,
    /// Verify others' claims, propose nothing (same as --mode verify-only)
    #[arg(long, conflicts_with = "mode")]
    pub verify_only: bool,
    /// Explorer address
    #[arg(long)]
    pub web_host: Option<String>,
    /// Explorer port
    #[arg(long, short = 'w')]
    pub web_port: Option<u16>,
    /// Share of the machine an experiment may use (percent)
    #[arg(long, short = 'r', value_parser = clap::value_parser!(u8).range(1..=100))]
    pub resource: Option<u8>,
    /// Enable local-network discovery (mDNS)
    #[arg(long)]
    pub mdns: bool,
    /// Enable signed self-update
    #[arg(long, overrides_with = "no_auto_update")]
    pub auto_update: bool,
    /// Disable signed self-update
    #[arg(long, overrides_with = "auto_update")]
    pub no_auto_update: bool,
    /// Training budget per experiment in seconds (default: the task's)
    #[arg(long, value_name = "SECS")]
    pub time_budget: Option<u64>,
    /// Stop researching after N experiments and keep serving
    #[arg(long, value_name = "N")]
    pub max_experiments: Option<u64>,
    /// Print the effective config (file + flags) as TOML and exit
    #[arg(long)]
    pub dump_config: bool,
}

/// The config file's settings with `args` on top.
pub fn effective_config(ctx: &Context, args: &RunArgs) -> Result<crate::config::NodeConfig> {
    with_flags(ctx.config.clone(), &ctx.data_dir, args)
}

/// `config` with `args` on top.
fn with_flags(
    mut c: crate::config::NodeConfig,
    data_dir: &crate::data_dir::DataDir,
    args: &RunArgs,
) -> Result<crate::config::NodeConfig> {
    if let Some(host) = &args.host {
        c.host = host.clone();
    }
    if let Some(port) = args.port {
        c.port = port;
    }
    if args.no_legacy_listen {
        c.legacy_listen = false;
    }
    if let Some(port) = args.p2p_port {
        c.p2p_port = port;
    }
    if !args.peers.is_empty() {
        c.peer = args.peers.clone();
    }
    if args.no_bootstrap {
        c.bootstrap.clear();
    }
    if let Some(task) = &args.task {
        c.task_id = task.clone();
    }
    if let Some(mode) = args.mode {
        c.mode = mode;
    }
    if args.no_train {
        c.mode = NodeMode::Relay;
    }
    if args.verify_only {
        c.mode = NodeMode::VerifyOnly;
    }
    if let Some(host) = &args.web_host {
        c.web_host = host.clone();
    }
    if let Some(port) = args.web_port {
        c.web_port = port;
    }
    if let Some(resource) = args.resource {
        c.resource = resource;
    }
    if args.mdns {
        c.mdns = true;
    }
    if let Some(secs) = args.time_budget {
        c.time_budget = secs;
    }
    if let Some(n) = args.max_experiments {
        c.max_experiments = n;
    }
    if args.auto_update {
        c.auto_update = true;
    }
    if args.no_auto_update {
        c.auto_update = false;
    }
    c.data_dir = data_dir.root.display().to_string();
    c.check()?;
    Ok(c)
}

/// The configured peers: `host:port` ones (with the bootstrap peers) for the legacy bridge,
/// multiaddrs for libp2p.
fn split_peers(config: &crate::config::NodeConfig) -> Result<(Vec<String>, Vec<Multiaddr>)> {
    let (mut legacy_peers, mut peers) = (Vec::new(), Vec::new());
    for p in &config.peer {
        if p.starts_with('/') {
            peers.push(peer_multiaddr(p)?);
        } else {
            legacy_peers.push(legacy_peer(p)?);
        }
    }
    for p in &config.bootstrap {
        legacy_peers.push(legacy_peer(p)?);
    }
    Ok((legacy_peers, peers))
}

/// SIGHUP: the config file again (with this run's flags on top): peers and log level change
/// in place; anything else needs a restart (SIGUSR2), which the log says.
async fn reload(
    ctx: &Context,
    args: &RunArgs,
    registry: &node::Registry,
    live: &research::Live,
) -> Result<spore_spec::Value> {
    let file = crate::config::NodeConfig::load(&ctx.config_path)?;
    let config = with_flags(file, &ctx.data_dir, args)?;
    let (legacy_peers, peers) = split_peers(&config)?;
    // everything is read and checked before anything is applied: a bad file changes nothing
    let settings = research::Live::read(&config, &ctx.data_dir)?;
    // the log level first (a bad one is refused before it or anything else changes): what the
    // new peers' connections log is logged at the new level
    if !config.log_level.is_empty() {
        if let Some(set) = crate::LOG_FILTER.get() {
            set(&config.log_level).map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    registry.legacy.send(SetLegacyPeers(legacy_peers)).await?;
    registry.peers.send(SetPeers(peers)).await?;
    if live.apply(settings) {
        match config.task_id.as_str() {
            "" => info!("task unpinned: the next experiment is on the most active task"),
            task => info!(task, "pinned task changed: the next experiment is on it"),
        }
    }
    info!(log_level = %config.log_level, "config reloaded (peers, log level, pinned task, LLM); other settings take effect at the next restart (SIGUSR2)");
    Ok(spore_spec::json::object([
        (
            "task_id",
            crate::query::opt(live.pinned_task.get().as_deref()),
        ),
        ("llm", spore_spec::Value::Bool(live.llm.get().is_some())),
    ]))
}

/// A reference peer, `host:port` (a name is resolved when dialled).
fn legacy_peer(peer: &str) -> Result<String> {
    let ok = peer
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        bail!("peer {peer:?} is neither host:port nor a multiaddr");
    }
    Ok(peer.to_string())
}

/// `host:port` (the reference's form) or a multiaddr.
pub fn peer_multiaddr(peer: &str) -> Result<Multiaddr> {
    if peer.starts_with('/') {
        return peer
            .parse()
            .with_context(|| format!("peer {peer:?} is not a valid multiaddr"));
    }
    let (host, port) = peer
        .rsplit_once(':')
        .with_context(|| format!("peer {peer:?} is neither host:port nor a multiaddr"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("peer {peer:?} has a bad port"))?;
    let ip: std::net::IpAddr = host
        .trim_matches(['[', ']'])
        .parse()
        .with_context(|| format!("peer {peer:?}: give an IP address (names are not resolved)"))?;
    let proto = if ip.is_ipv4() { "ip4" } else { "ip6" };
    Ok(format!("/{proto}/{ip}/tcp/{port}").parse()?)
}

pub fn run(ctx: Context, args: RunArgs) -> Result<()> {
    let config = effective_config(&ctx, &args)?;
    if args.dump_config {
        spore_actors::console::say_raw(format_args!("{}", config.to_toml()));
        return Ok(());
    }
    super::update::run_installed_update(&ctx.data_dir)?;
    crate::logs::rotate_when_large(config.log_max_mb.saturating_mul(1 << 20));
    let listen = peer_multiaddr(&format!("{}:{}", config.host, config.p2p_port))
        .context("invalid host/p2p_port to listen on")?;
    let (legacy_peers, peers) = split_peers(&config)?;
    let (identity, _) = ctx.data_dir.ensure_identity()?;
    if !ctx.config_path.exists() {
        config.save(&ctx.config_path)?;
    }
    // a command (`spored status`) may hold the store for a moment: wait that out, not a node
    let store = match open_when_free(&ctx.data_dir.store(), Duration::from_secs(5)) {
        Ok(store) => Arc::new(store),
        Err(StoreError::InUse { .. }) => {
            return Err(super::Busy(format!(
                "another spored is already running on {} (stop it first)",
                ctx.data_dir.root.display()
            ))
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    let options = NodeOptions {
        seed: identity.seed(),
        listen: vec![listen],
        peers,
        net: NetConfig {
            mdns: config.mdns,
            allow_local_peers: config.allow_local_peers,
            ..NetConfig::default()
        },
        legacy_listen: config
            .legacy_listen
            .then(|| format!("{}:{}", config.host, config.port)),
        legacy: LegacyOptions {
            peers: legacy_peers,
            node_id: identity.node_id(),
            allow_local_peers: config.allow_local_peers,
            ..LegacyOptions::default()
        },
    };
    let socket = ctx.data_dir.socket();
    let node_id = identity.node_id();
    let live = research::Live::load(&config, &ctx.data_dir)?;
    let ctx_paths = ctx.data_dir.clone();
    let restart = actix_rt::System::new().block_on(async move {
        let mode = match config.mode {
            NodeMode::Relay => Mode::Relay,
            _ => research::mode(&config, &ctx.data_dir, identity.seed(), &live)?,
        };
        let (reload_tx, mut reloads) = tokio::sync::mpsc::channel::<ReloadReply>(4);
        let control = ControlInfo {
            node_id: node_id.clone(),
            mode: config.mode.as_str().into(),
            version: auto_operator::version(),
            query: Some(Arc::new(crate::query::answer)),
            reload: Some(reload_tx),
        };
        // the stop signals are ours before anything starts: the research loop may start a
        // training child at once, and a stop sent then must stop the node cleanly, not kill it
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let node = Node::builder(store, options)
            .mode(mode)
            .control_socket(socket.clone(), control)
            .spawn()
            .map_err(|e| anyhow::anyhow!(e))?;
        let registry = node.registry.clone();
        // a panic anywhere stops the node with its reason (see `supervision`)
        spore_actors::supervision::report_panics(registry.failure.clone());
        let peer_id = registry.peer_id;
        let mut addrs = Vec::new();
        for _ in 0..100 {
            addrs = registry
                .peers
                .send(GetListenAddrs)
                .await
                .unwrap_or_default();
            if !addrs.is_empty() {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        spore_actors::say!("spored {} node {node_id}", auto_operator::version());
        spore_actors::say!("peer id {peer_id}");
        for addr in &addrs {
            spore_actors::say!("listening on {addr}/p2p/{peer_id}");
        }
        if let Ok(Some(addr)) = registry.legacy.send(GetLegacyAddr).await {
            spore_actors::say!("reference peers on {addr}");
        }
        spore_actors::say!("mode {}", config.mode.as_str());
        let explorer = spore_web::Explorer {
            store: registry.store.clone(),
            node_id: node_id.clone(),
            pinned_task: live.pinned_task.clone(),
            node: Some(registry.clone()),
            events: registry.writer.events().clone(),
        };
        let web = explorer_addr(&config.web_host, config.web_port)?;
        let (web_handle, bound) = match spore_web::serve(web, explorer) {
            Ok(served) => served,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(super::Busy(format!(
                    "cannot serve the explorer on {web}: another program has the port (use --web-port)"
                ))
                .into())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot serve the explorer on {web}")),
        };
        spore_actors::say!("explorer on http://{bound}");
        crate::systemd::notify("READY=1");
        let (ready_tx, mut updates) = tokio::sync::mpsc::channel::<UpdateReady>(1);
        if config.auto_update && !config.update_manifest_url.is_empty() {
            use actix::Actor as _;
            AutoOperator::new(
                UpdateOptions {
                    manifest_url: config.update_manifest_url.clone(),
                    keys: config.release_keys.clone(),
                    interval: Duration::from_secs(config.update_interval_sec.max(1)),
                    bin_dir: ctx.data_dir.root.join("bin"),
                },
                ready_tx,
            )
            .start();
        }
        if let Ok(steps) = std::env::var("SPORED_POST_INSTALL_STEPS") {
            if !steps.is_empty() {
                info!(steps, "post-install steps ran when the store opened (its backfills and migrations)");
            }
        }

        let (failed, again) = loop {
            tokio::select! {
                _ = interrupt.recv() => { info!("interrupted: stopping"); break (None, Restart::No) }
                _ = terminate.recv() => { info!("terminated: stopping"); break (None, Restart::No) }
                _ = usr2.recv() => { info!("restart requested: stopping, then starting again"); break (None, Restart::Same) }
                Some(update) = updates.recv() => { info!(version = %update.version, "stopping to start the update"); break (None, Restart::Into(update)) }
                _ = hangup.recv() => {
                    crate::systemd::reloading();
                    if let Err(e) = reload(&ctx, &args, &registry, &live).await {
                        warn!(error = %format!("{e:#}"), "config not reloaded; the node runs on as it was");
                    }
                    crate::systemd::notify("READY=1");
                }
                Some(done) = reloads.recv() => {
                    crate::systemd::reloading();
                    let outcome = reload(&ctx, &args, &registry, &live).await;
                    crate::systemd::notify("READY=1");
                    if let Err(e) = &outcome {
                        warn!(error = %format!("{e:#}"), "config not reloaded; the node runs on as it was");
                    }
                    let _ = done.send(outcome.map_err(|e| format!("{e:#}")));
                }
                reason = registry.failure.wait() => break (Some(reason), Restart::No),
            }
        };
        // first of all: no experiment cut short by this stop may be published
        registry.stopping.stop();
        // systemd: a stop is a stop; a restart in place is a reload (the re-executed node says
        // READY=1); an update says nothing until the new process is healthy (MAINPID=)
        match again {
            Restart::No => crate::systemd::notify("STOPPING=1"),
            Restart::Same => crate::systemd::reloading(),
            Restart::Into(_) => {}
        }
        web_handle.stop(true).await;
        node.shutdown().await;
        if let Some(reason) = failed {
            bail!("the node stopped: {reason} (see the log above)");
        }
        spore_actors::say!("stopped");
        Ok(again)
    })?;
    // Everything of the old node must be let go before another process (the update, or this
    // binary again) opens the data dir: a thread the runtime left behind may still hold the
    // store for a moment after the node stopped.
    if !matches!(restart, Restart::No) {
        open_when_free(&ctx_paths.store(), Duration::from_secs(30))
            .map(drop)
            .context("the stopped node still holds its store after 30 s")?;
    }
    match restart {
        Restart::No => Ok(()),
        Restart::Same => super::update::exec_self(),
        Restart::Into(update) => super::update::start_update(&ctx_paths, update),
    }
}

/// Opens the store at `path`, waiting up to `wait` while another holder lets go of it
/// (`InUse` after that).
fn open_when_free(path: &std::path::Path, wait: Duration) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match Store::open(path) {
            Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            opened => return opened,
        }
    }
}

/// Why the node loop ended.
enum Restart {
    No,
    /// SIGUSR2: the same binary again.
    Same,
    /// A checked update: start it, keep it if healthy.
    Into(UpdateReady),
}

/// The explorer's socket address from config (a host name is resolved; port 0 lets the OS pick).
pub fn explorer_addr(host: &str, port: u16) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("invalid explorer address {host}:{port}"))?
        .next()
        .with_context(|| format!("explorer host {host} resolves to no address"))
}
