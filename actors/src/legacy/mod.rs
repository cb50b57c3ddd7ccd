//! LegacyBridge: spored as a citizen of the reference network. It speaks the reference's plain
//! TCP protocol (reference §d: 4-byte length + JSON frames) to 0.6.0 nodes, on a listener and
//! to `host:port` peers it dials, and bridges it with the libp2p mesh: what either side sends is
//! checked and stored by the GossipRouter, then forwarded to the other side (and to the other
//! legacy peers) with its exact bytes.
//!
//! The actor owns the connections' shared state (who is connected, what was dialled, offences);
//! each connection runs as a reader and a writer task ([`conn`]). Artifacts are requested for
//! the [`ArtifactFetcher`](crate::artifact_fetcher), which chooses the peer.

pub mod conn;
pub mod limits;
pub mod serve;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use spore_spec::wire::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::conn::Outbox;
use self::limits::{Budget, Spend};
use crate::artifact_fetcher::{AskArtifact, FetcherLinks, Offend};
use crate::messages::{Forward, Ingest, Offence, Shutdown};
use crate::peer_score::{PeerRef, SharedScores};
use crate::peer_table::Redial;
use crate::reads::Reads;
use crate::refusal::Severity;

/// Settings of the legacy side.
#[derive(Clone, Debug)]
pub struct LegacyOptions {
    /// `host:port` peers dialled at start and re-dialled (with backoff) while not connected.
    pub peers: Vec<String>,
    /// This node's id: its stored profile is sent to each new peer, as the reference does.
    pub node_id: String,
    pub max_inbound: usize,
    pub max_outbound: usize,
    /// Invalid objects or frames within a minute that close a connection.
    pub max_offences: usize,
    /// Requests per second a peer may send on average, and at once.
    pub request_rate: f64,
    pub request_burst: f64,
    /// A connection that sends no whole frame within this is closed (this node sends a
    /// `pex_request` on every connection, which a 0.6.0 node answers at once).
    pub first_frame_timeout: Duration,
    /// A connection silent this long is closed; after half of it, it is pinged (a live peer
    /// answers `pong`).
    pub idle_timeout: Duration,
    /// Inbound connections from one IPv4 address, or one IPv6 /64, at most.
    pub max_inbound_per_ip: usize,
    /// Peers learnt by PEX on loopback, private or link-local addresses are dialled and
    /// advertised ([`crate::addresses`]).
    pub allow_local_peers: bool,
    /// Peers learnt by PEX that are dialled, per second on average and at once.
    pub pex_dial_rate: f64,
    pub pex_dial_burst: f64,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        LegacyOptions {
            peers: Vec::new(),
            node_id: String::new(),
            max_inbound: 128,
            max_outbound: 64,
            max_offences: 10,
            request_rate: 1_000.0,
            request_burst: 10_000.0,
            first_frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_inbound_per_ip: 8,
            allow_local_peers: false,
            pex_dial_rate: 0.5,
            pex_dial_burst: 32.0,
        }
    }
}

/// Peers learnt from one `pex_response` that are dialled.
const PEX_DIALS: usize = 16;

struct Conn {
    key: String,
    /// The `host:port` this node dialled, for an outbound connection.
    dialled_as: Option<String>,
    outbox: Outbox,
    close: Arc<watch::Sender<bool>>,
    /// The peer's address: what its offences are counted under (plain TCP proves no more).
    addr: Option<std::net::SocketAddr>,
    /// This node asked the peer for its peers (every connection starts with a `pex_request`)
    /// and has not had the answer yet: a `pex_response` at any other time is ignored.
    pex_asked: bool,
}

pub struct LegacyBridge {
    reads: Reads,
    scores: SharedScores,
    router: Recipient<Ingest>,
    fetcher: FetcherLinks,
    options: LegacyOptions,
    listener: Option<TcpListener>,
    listen_addr: Option<SocketAddr>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    /// Addresses dialled successfully: what `pex_response` advertises (as the reference does).
    dialled_ok: BTreeSet<String>,
    dialling: HashSet<String>,
    redial: Redial,
    /// Configured peers whose failure was logged (each is logged once).
    unreachable: HashSet<String>,
    /// Bytes queued for writing on every connection (`conn::TOTAL_OUTBOX_CAP`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Dials of peers learnt by PEX, all connections together.
    pex_dials: Budget,
    /// When each address may next be answered a full sync, per kind (all connections).
    sync_turns: Arc<std::sync::Mutex<limits::SyncTurns>>,
    stopping: bool,
}

impl LegacyBridge {
    /// `listener`: bound by the caller, so a port in use is an error at start.
    pub fn new(
        reads: Reads,
        scores: SharedScores,
        router: Recipient<Ingest>,
        fetcher: FetcherLinks,
        listener: Option<TcpListener>,
        options: LegacyOptions,
    ) -> Self {
        let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let pex_dials = Budget::new(
            options.pex_dial_rate,
            options.pex_dial_burst,
            Instant::now(),
        );
        LegacyBridge {
            reads,
            scores,
            router,
            fetcher,
            options,
            listener,
            listen_addr,
            conns: HashMap::new(),
            next_conn: 1,
            dialled_ok: BTreeSet::new(),
            dialling: HashSet::new(),
            redial: Redial::default(),
            unreachable: HashSet::new(),
            queued: Arc::default(),
            pex_dials,
            sync_turns: Arc::default(),
            stopping: false,
        }
    }

    fn outbound_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.dialled_as.is_some())
            .count()
    }

    fn is_connected_to(&self, target: &str) -> bool {
        self.conns
            .values()
            .any(|c| c.dialled_as.as_deref() == Some(target))
    }

    fn dial(&mut self, target: String, configured: bool, ctx: &mut Context<Self>) {
        if self.stopping || !self.dialling.insert(target.clone()) {
            return;
        }
        let t = target.clone();
        let allow_local = self.options.allow_local_peers;
        let attempt = async move {
            let connect = async {
                if configured {
                    return TcpStream::connect(t.as_str())
                        .await
                        .map_err(|e| e.to_string());
                }
                // a learnt name is resolved here, so what it points at is checked too
                let resolved = tokio::net::lookup_host(t.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let usable: Vec<SocketAddr> = resolved
                    .filter(|a| crate::addresses::may_use_learnt(a.ip(), allow_local))
                    .collect();
                if usable.is_empty() {
                    return Err("a loopback, private or special address (not dialled)".into());
                }
                TcpStream::connect(usable.as_slice())
                    .await
                    .map_err(|e| e.to_string())
            };
            tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r)
        };
        ctx.spawn(actix::fut::wrap_future::<_, Self>(attempt).map(
            move |result, act, ctx| {
                act.dialling.remove(&target);
                match result {
                    Ok(stream) => {
                        let refused = stream.peer_addr().is_ok_and(|a| act.is_refused(a));
                        if !configured && refused {
                            debug!(peer = %target, "learnt peer's address sent invalid data: not kept");
                            return;
                        }
                        if act.unreachable.remove(&target) {
                            info!(peer = %target, "legacy peer reachable again");
                        }
                        act.redial.connected(&target, Instant::now());
                        act.dialled_ok.insert(target.clone());
                        act.open(stream, target.clone(), Some(target), ctx);
                    }
                    Err(e) if configured => {
                        if act.unreachable.insert(target.clone()) {
                            warn!(peer = %target, error = %e, "cannot reach legacy peer; retrying with backoff (5 s doubling to 5 min), working on meanwhile");
                        } else {
                            debug!(peer = %target, error = %e, "legacy peer still unreachable");
                        }
                    }
                    Err(e) => debug!(peer = %target, error = %e, "peer learnt by pex unreachable"),
                }
            },
        ));
    }

    /// Dials every configured peer that is not connected, with backoff while it keeps failing.
    fn dial_configured(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for target in self.options.peers.clone() {
            if self.is_connected_to(&target) || self.dialling.contains(&target) {
                continue;
            }
            if self.redial.attempt(&target, now) {
                self.dial(target, true, ctx);
            }
        }
    }

    fn open(
        &mut self,
        stream: TcpStream,
        key: String,
        dialled_as: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let _ = stream.set_nodelay(true);
        let addr = stream.peer_addr().ok();
        let conn = self.next_conn;
        self.next_conn += 1;
        let (read, write) = stream.into_split();
        let (outbox, rx) = Outbox::new(self.queued.clone());
        let (close, _) = watch::channel(false);
        let close = Arc::new(close);
        let bridge = ctx.address();
        tokio::spawn(conn::write_loop(write, rx, outbox.clone(), close.clone()));
        let reader = conn::Reader {
            conn,
            key: key.clone(),
            addr,
            reads: self.reads.clone(),
            router: self.router.clone(),
            bridge: bridge.clone(),
            outbox: outbox.clone(),
            close: close.clone(),
            serving: [
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            ],
            budget: Budget::new(
                self.options.request_rate,
                self.options.request_burst,
                Instant::now(),
            ),
            first_frame_timeout: self.options.first_frame_timeout,
            idle_timeout: self.options.idle_timeout,
            seen: Default::default(),
            flooded: false,
            sync_turns: self.sync_turns.clone(),
        };
        tokio::spawn(async move {
            let reason = reader.run(read).await;
            bridge.do_send(Closed { conn, reason });
        });
        info!(peer = %key, outbound = dialled_as.is_some(), "legacy peer connected");
        let outbound = dialled_as.is_some();
        self.conns.insert(
            conn,
            Conn {
                key,
                dialled_as,
                outbox: outbox.clone(),
                close,
                addr,
                pex_asked: true,
            },
        );
        if let Some(addr) = addr {
            self.fetcher.link(PeerRef::Legacy(addr), true);
        }
        // what a reference node sends its peers at start: its manifests (to the peers it
        // dialled; a node that dials us asks for them) and its own profile
        let (reads, node_id) = (self.reads.clone(), self.options.node_id.clone());
        tokio::spawn(async move {
            let bodies = reads
                .read(move |read| {
                    let mut bodies = Vec::new();
                    if outbound {
                        bodies = serve::manifest_bodies(read, 0).unwrap_or_default();
                    }
                    if let Ok(Some(profile)) = read.profile(&node_id) {
                        bodies.push(Message::Profile(profile).encode_body());
                    }
                    Ok(bodies)
                })
                .await
                .unwrap_or_default();
            for body in bodies {
                let _ = outbox.send(&body);
            }
        });
    }

    /// Closes connection `conn` (said once: offences that were on their way come after).
    fn close(&mut self, conn: u64, why: &str) {
        if let Some(c) = self.conns.get(&conn) {
            if !c.close.send_replace(true) {
                info!(peer = %c.key, why, "closing legacy connection");
            }
        }
    }

    /// The connection to `addr`, if any.
    fn conn_of(&self, addr: &SocketAddr) -> Option<u64> {
        self.conns
            .iter()
            .find(|(_, c)| c.addr.as_ref() == Some(addr))
            .map(|(id, _)| *id)
    }
}

impl Actor for LegacyBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        if let Some(listener) = self.listener.take() {
            let bridge = ctx.address();
            ctx.spawn(
                actix::fut::wrap_future::<_, Self>(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, addr)) => {
                                if bridge.try_send(Accepted { stream, addr }).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                debug!(error = %e, "legacy accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                })
                .map(|_, _, _| ()),
            );
        }
        self.dial_configured(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.dial_configured(ctx));
    }
}

/// A connection arrived on the legacy listener.
#[derive(Message)]
#[rtype(result = "()")]
struct Accepted {
    stream: TcpStream,
    addr: SocketAddr,
}

impl Handler<Accepted> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let inbound = self.conns.len() - self.outbound_count();
        let same_ip = self
            .conns
            .values()
            .filter(|c| {
                c.dialled_as.is_none()
                    && c.addr.is_some_and(|a| same_network(a.ip(), msg.addr.ip()))
            })
            .count();
        if self.stopping {
            return;
        }
        if let Err(why) = admit_inbound(inbound, same_ip, &self.options) {
            debug!(addr = %msg.addr, why, "legacy connection refused");
            return;
        }
        if self.is_refused(msg.addr) {
            debug!(addr = %msg.addr, "legacy connection refused: its address sent invalid data");
            return;
        }
        self.open(msg.stream, msg.addr.to_string(), None, ctx);
    }
}

/// A connection's reader ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Closed {
    pub conn: u64,
    pub reason: String,
}

impl Handler<Closed> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: Closed, _: &mut Context<Self>) {
        if let Some(c) = self.conns.remove(&msg.conn) {
            c.close.send_replace(true);
            info!(peer = %c.key, reason = %msg.reason, "legacy peer disconnected");
            if let Some(target) = &c.dialled_as {
                self.redial.closed(target, Instant::now());
            }
            // its unanswered artifact requests go to the next peer
            if let Some(addr) = c.addr {
                self.fetcher.link(PeerRef::Legacy(addr), false);
            }
        }
    }
}

impl Handler<Forward> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: Forward, _: &mut Context<Self>) {
        let mut slow = Vec::new();
        for (id, c) in &self.conns {
            if Some(*id) == msg.except {
                continue;
            }
            for body in &msg.bodies {
                if c.outbox.send(body).is_err() {
                    slow.push(*id);
                    break;
                }
            }
        }
        for id in slow {
            self.close(id, "too slow: its outbox is over the cap");
        }
    }
}

impl Handler<Offence> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: Offence, _: &mut Context<Self>) {
        let Some(c) = self.conns.get(&msg.conn) else {
            return;
        };
        debug!(peer = %c.key, reason = %msg.reason, "invalid data from a legacy peer");
        let Some(addr) = c.addr else { return };
        let key_text = c.key.clone();
        let limit = self.offence_limit();
        let (standing, first_time) = {
            let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
            let key = score_key(addr);
            let first_time = scores.offend(&key, msg.points, limit, Instant::now());
            (scores.points(&key, Instant::now()), first_time)
        };
        if first_time || standing >= limit {
            if first_time {
                warn!(peer = %key_text, reason = %msg.reason, "legacy peer keeps sending invalid data: disconnecting, and refusing its address until its offences fade");
            }
            self.close(msg.conn, "invalid data");
        }
    }
}

impl Handler<Offend> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: Offend, ctx: &mut Context<Self>) {
        let PeerRef::Legacy(addr) = msg.peer else {
            return;
        };
        if let Some(conn) = self.conn_of(&addr) {
            ctx.notify(Offence {
                conn,
                points: msg.points,
                reason: msg.reason,
            });
        }
    }
}

impl Handler<AskArtifact> for LegacyBridge {
    type Result = ();

    /// Sends a `code_request`. A reference node answers only when it has the artifact, so a
    /// request it cannot answer ends by the fetcher's timeout; a gone peer is answered "no
    /// bytes" at once.
    fn handle(&mut self, msg: AskArtifact, _: &mut Context<Self>) {
        let AskArtifact { cid, peer } = msg;
        let sent = match &peer {
            PeerRef::Legacy(addr) => self.conn_of(addr).is_some_and(|conn| {
                let request = Message::CodeRequest {
                    code_cid: cid.clone(),
                };
                self.conns[&conn].outbox.send_message(&request).is_ok()
            }),
            PeerRef::Mesh(_) => false,
        };
        if !sent {
            self.fetcher.answer(cid, peer, None);
        }
    }
}

/// A `code_response` arrived.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CodeArrived {
    pub conn: u64,
    pub cid: String,
    pub bytes: Vec<u8>,
}

impl Handler<CodeArrived> for LegacyBridge {
    type Result = ();

    /// Handed to the fetcher, which ignores what it did not ask for and checks the rest.
    fn handle(&mut self, msg: CodeArrived, _: &mut Context<Self>) {
        if let Some(addr) = self.conns.get(&msg.conn).and_then(|c| c.addr) {
            self.fetcher
                .answer(msg.cid, PeerRef::Legacy(addr), Some(msg.bytes));
        }
    }
}

/// A peer asked for our peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PexAsked {
    pub conn: u64,
}

impl Handler<PexAsked> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: PexAsked, _: &mut Context<Self>) {
        let Some(c) = self.conns.get(&msg.conn) else {
            return;
        };
        let allow_local = self.options.allow_local_peers;
        let peers = self
            .dialled_ok
            .iter()
            .filter(|p| **p != c.key && may_advertise(p, allow_local))
            .cloned()
            .collect();
        let _ = c.outbox.send_message(&Message::PexResponse { peers });
    }
}

/// A peer told us its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PexLearned {
    pub conn: u64,
    pub peers: Vec<String>,
}

impl Handler<PexLearned> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: PexLearned, ctx: &mut Context<Self>) {
        let Some(c) = self.conns.get_mut(&msg.conn) else {
            return;
        };
        if !std::mem::replace(&mut c.pex_asked, false) {
            debug!(peer = %c.key, "a pex_response nobody asked for: ignored");
            return;
        }
        let allow_local = self.options.allow_local_peers;
        let mut dials = 0;
        for peer in msg.peers {
            // dials in flight count against the outbound limit
            let outbound = self.outbound_count() + self.dialling.len();
            if dials >= PEX_DIALS || outbound >= self.options.max_outbound {
                break;
            }
            if !pex_entry_ok(&peer) || self.is_self(&peer) || !may_advertise(&peer, allow_local) {
                continue;
            }
            if self.is_connected_to(&peer) || self.dialling.contains(&peer) {
                continue;
            }
            if self.pex_dials.spend(Instant::now()) != Spend::Serve {
                debug!("pex dial budget spent: the rest of this pex_response is not dialled");
                break;
            }
            dials += 1;
            self.dial(peer, false, ctx);
        }
    }
}

impl LegacyBridge {
    /// `max_offences` serious offences' worth of points (twice as many minor ones), decaying.
    fn offence_limit(&self) -> f64 {
        (self.options.max_offences as u32 * Severity::Serious.points()) as f64
    }

    /// Whether connections from (or to) `addr` are refused: its address (IPv4, or IPv6 /64)
    /// reached its offence limit, and its points have not yet faded to half of it (at least
    /// one `peer_score::HALF_LIFE`, ten minutes).
    fn is_refused(&self, addr: SocketAddr) -> bool {
        let scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        let key = score_key(addr);
        scores.is_banned(&key) && scores.points(&key, Instant::now()) >= self.offence_limit() / 2.0
    }

    /// An address that is this node's own listener (a peer advertises the address it dialled
    /// us on).
    fn is_self(&self, peer: &str) -> bool {
        let Some(listen) = self.listen_addr else {
            return false;
        };
        let Some((host, port)) = peer.rsplit_once(':') else {
            return false;
        };
        if port.parse::<u16>().ok() != Some(listen.port()) {
            return false;
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip.is_unspecified() || ip == listen.ip(),
            Err(_) => host == "localhost",
        }
    }
}

/// Whether one more inbound connection is taken, with `inbound` open and `same_ip` of them from
/// its address.
pub fn admit_inbound(
    inbound: usize,
    same_ip: usize,
    options: &LegacyOptions,
) -> Result<(), &'static str> {
    if inbound >= options.max_inbound {
        Err("at the inbound limit")
    } else if same_ip >= options.max_inbound_per_ip {
        Err("at the limit for its address")
    } else {
        Ok(())
    }
}

/// What a reference peer's offences count under: its IPv4 address, or its IPv6 /64, without
/// the port (a reconnect comes from a new port; plain TCP proves nothing finer).
pub fn score_key(addr: SocketAddr) -> PeerRef {
    PeerRef::Legacy(SocketAddr::new(crate::addresses::network_of(addr.ip()), 0))
}

/// Whether two peers count as one address for the per-address cap: the same IPv4 address, or
/// the same IPv6 /64 (one subscriber's usual allocation).
pub fn same_network(a: std::net::IpAddr, b: std::net::IpAddr) -> bool {
    crate::addresses::network_of(a) == crate::addresses::network_of(b)
}

/// Whether a `host:port` may be dialled when learnt, or told to a peer: an IP literal must pass
/// [`crate::addresses::may_use_learnt`]; a name passes here and is checked once resolved (see
/// `dial`).
pub fn may_advertise(entry: &str, allow_local: bool) -> bool {
    let Some((host, _)) = entry.rsplit_once(':') else {
        return false;
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => crate::addresses::may_use_learnt(ip, allow_local),
        Err(_) => true,
    }
}

/// A pex entry the reference would dial: `host:port` with exactly one `:` and a port.
pub fn pex_entry_ok(entry: &str) -> bool {
    let mut parts = entry.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(host), Some(port), None) => {
            !host.is_empty() && host.len() <= 253 && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        _ => false,
    }
}

/// The configured `host:port` peers changed (SIGHUP): dial these from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetLegacyPeers(pub Vec<String>);

impl Handler<SetLegacyPeers> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, msg: SetLegacyPeers, ctx: &mut Context<Self>) {
        info!(peers = msg.0.len(), "configured reference peers replaced");
        self.options.peers = msg.0;
        self.dial_configured(ctx);
    }
}

/// The address the legacy listener is bound to.
#[derive(Message)]
#[rtype(result = "Option<SocketAddr>")]
pub struct GetLegacyAddr;

impl Handler<GetLegacyAddr> for LegacyBridge {
    type Result = Option<SocketAddr>;

    fn handle(&mut self, _: GetLegacyAddr, _: &mut Context<Self>) -> Self::Result {
        self.listen_addr
    }
}

/// How many legacy peers are connected.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LegacyPeerCount;

impl Handler<LegacyPeerCount> for LegacyBridge {
    type Result = usize;

    fn handle(&mut self, _: LegacyPeerCount, _: &mut Context<Self>) -> usize {
        self.conns.len()
    }
}

impl Handler<Shutdown> for LegacyBridge {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.stopping = true;
        for c in self.conns.values() {
            c.close.send_replace(true);
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(same_network(
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff::9")
        ));
        assert!(!same_network(ip("2001:db8:1:3::1"), ip("2001:db8:1:2::1")));
        assert!(same_network(ip("192.0.2.1"), ip("192.0.2.1")));
        assert!(!same_network(ip("192.0.2.1"), ip("192.0.2.2")));
        // a dual-stack listener's IPv4 peers: compared as IPv4, not as one IPv6 /64
        assert!(same_network(ip("::ffff:192.0.2.1"), ip("192.0.2.1")));
        assert!(!same_network(
            ip("::ffff:192.0.2.1"),
            ip("::ffff:192.0.2.2")
        ));
        let key = |a: &str| score_key(a.parse().unwrap());
        assert_eq!(key("[::ffff:192.0.2.1]:4000"), key("192.0.2.1:5000"));
        assert_ne!(
            key("[::ffff:192.0.2.1]:4000"),
            key("[::ffff:192.0.2.2]:4000")
        );
        assert_eq!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2::9]:2"));
    }

    #[test]
    fn inbound_connections_are_capped_in_all_and_per_address() {
        let options = LegacyOptions {
            max_inbound: 10,
            max_inbound_per_ip: 3,
            ..LegacyOptions::default()
        };
        assert!(admit_inbound(0, 0, &options).is_ok());
        assert!(admit_inbound(9, 2, &options).is_ok());
        assert_eq!(
            admit_inbound(5, 3, &options),
            Err("at the limit for its address")
        );
        assert_eq!(admit_inbound(10, 0, &options), Err("at the inbound limit"));
    }

    #[test]
    fn pex_entries_are_host_port_with_one_colon() {
        assert!(pex_entry_ok("127.0.0.1:7470"));
        assert!(pex_entry_ok("peer.sporemesh.com:7470"));
        assert!(!pex_entry_ok("::1:7470"), "IPv6 literals, as the reference");
        assert!(!pex_entry_ok("127.0.0.1"));
        assert!(!pex_entry_ok("127.0.0.1:0"));
        assert!(!pex_entry_ok("127.0.0.1:99999"));
        assert!(!pex_entry_ok(":7470"));
    }
}
