//! PeerManager: owns the libp2p Swarm. Turns network events into messages for the GossipRouter,
//! serves sync and artifact requests from the store, runs sync with each new peer, requests the
//! artifacts the [`ArtifactFetcher`](crate::artifact_fetcher) asks for, keeps scores and bans,
//! and re-dials configured peers that dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt as _;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, Multiaddr, PeerId, Swarm};
use tracing::{debug, info, warn};

use crate::artifact_fetcher::{AskArtifact, FetcherLinks, Offend};
use crate::gossip_router::GossipRouter;
use crate::messages::*;
use crate::net::{self, Behaviour, BehaviourEvent, Request, Response};
use crate::peer_score::{PeerRef, SharedScores, MESH_BAN_AT};
use crate::peer_table::{PeerTable, Redial, Refusal, Settled};

/// What an artifact request holds of the response budget until its artifact is read.
const ARTIFACT_RESERVE: usize = 64 * 1024;
/// Artifact reads at once that hold only [`ARTIFACT_RESERVE`]; past them, each holds the largest
/// artifact's size until read (16 × 7 MiB read at once at most beyond the byte budget).
const ARTIFACT_READS_AT_FLOOR: usize = 16;
/// The answer when responses waiting to be written are at their budget.
const BUSY: &str = "busy: too many responses waiting to be sent";
use crate::reads::Reads;
use crate::refusal::Severity;
use crate::sync_session::{Page, Step, Stored, SyncSessions};

/// What an outbound request was for.
enum Pending {
    Log {
        sync: u64,
        after: u64,
        sent: std::time::Instant,
    },
    Artifact {
        cid: String,
    },
}

/// Addresses taken from one identify message (a peer may list any number).
const MAX_LEARNT_ADDRS: usize = 8;

pub struct PeerManager {
    swarm: Swarm<Behaviour>,
    reads: Reads,
    scores: SharedScores,
    router: Addr<GossipRouter>,
    listen: Vec<Multiaddr>,
    /// Configured peers, re-dialled while not connected.
    bootstrap: Vec<Multiaddr>,
    redial: Redial,
    table: PeerTable<request_response::InboundRequestId>,
    /// The address (IPv4, or IPv6 /64) of each open connection, for the response budget.
    conn_addresses: HashMap<libp2p::swarm::ConnectionId, std::net::IpAddr>,
    /// Artifact requests being read from the store now.
    artifact_reads: usize,
    fetcher: FetcherLinks,
    pending: HashMap<OutboundRequestId, Pending>,
    /// Our sync with each peer (`sync_session`).
    syncs: SyncSessions<PeerId>,
    /// The address each dialled peer answered on.
    dialled: HashMap<PeerId, Multiaddr>,
    resync_interval: Duration,
    /// Keep loopback, private and link-local addresses peers report ([`crate::addresses`]).
    allow_local_peers: bool,
}

/// Where the PeerManager listens, whom it dials, and how often it re-syncs.
pub struct Peering {
    pub listen: Vec<Multiaddr>,
    /// Configured peers, re-dialled while not connected.
    pub bootstrap: Vec<Multiaddr>,
    pub resync_interval: Duration,
    /// Keep loopback, private and link-local addresses peers report.
    pub allow_local_peers: bool,
}

impl PeerManager {
    pub fn new(
        swarm: Swarm<Behaviour>,
        reads: Reads,
        scores: SharedScores,
        router: Addr<GossipRouter>,
        fetcher: FetcherLinks,
        peering: Peering,
    ) -> Self {
        let Peering {
            listen,
            bootstrap,
            resync_interval,
            allow_local_peers,
        } = peering;
        PeerManager {
            swarm,
            reads,
            scores,
            router,
            listen,
            bootstrap,
            redial: Redial::default(),
            table: PeerTable::default(),
            conn_addresses: HashMap::new(),
            artifact_reads: 0,
            fetcher,
            pending: HashMap::new(),
            syncs: SyncSessions::default(),
            dialled: HashMap::new(),
            resync_interval,
            allow_local_peers,
        }
    }

    /// Keeps an address a peer listens on in the routing table (which Kademlia tells others
    /// about), if [`crate::addresses`] allows it.
    fn learn_address(&mut self, peer: PeerId, addr: Multiaddr) {
        if crate::addresses::may_use_learnt_multiaddr(&addr, self.allow_local_peers) {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        } else {
            debug!(%peer, %addr, "a loopback, private or special address: not kept");
        }
    }

    /// Dials every configured peer that is not connected (so a dropped peer is re-dialled),
    /// with backoff while it keeps failing.
    fn dial_bootstrap(&mut self) {
        let now = std::time::Instant::now();
        for addr in self.bootstrap.clone() {
            let connected = self
                .dialled
                .iter()
                .any(|(peer, a)| a == &addr && self.swarm.is_connected(peer));
            if connected || !self.redial.attempt(&addr.to_string(), now) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "dial failed");
            }
        }
    }

    /// Starts a sync with `peer` unless one runs: reads our cursor for it, then asks for its
    /// log after the cursor (only while connected: a request to a gone peer would dial it).
    fn start_sync(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        let Some(sync) = self.syncs.start(&peer) else {
            return;
        };
        debug!(%peer, "sync started");
        let key = peer.to_string();
        let cursor = self.reads.read(move |r| r.sync_cursor(&key));
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(cursor).map(move |cursor, act, ctx| match cursor {
                Ok(after) => {
                    let step = act.syncs.cursor(&peer, sync, after);
                    act.sync_steps(peer, step.into_iter().collect(), ctx);
                }
                Err(e) => {
                    warn!(%peer, error = %e, "cannot read sync cursor");
                    act.syncs.failed(&peer, sync);
                }
            }),
        );
    }

    /// Carries out what the sync session decided.
    fn sync_steps(&mut self, peer: PeerId, steps: Vec<Step>, ctx: &mut Context<Self>) {
        for step in steps {
            match step {
                // still connected? (a read or a store took a moment)
                Step::Request { .. } if !self.swarm.is_connected(&peer) => self.syncs.end(&peer),
                Step::Request { sync, after } => {
                    let request = Request::Log {
                        after,
                        limit: net::SYNC_PAGE_ITEMS as u32,
                    };
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    let sent = std::time::Instant::now();
                    self.pending.insert(id, Pending::Log { sync, after, sent });
                }
                Step::Store { sync, page } => self.store_page(peer, sync, page, ctx),
            }
        }
    }

    fn is_banned(&self, peer: PeerId) -> bool {
        let scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        scores.is_banned(&PeerRef::Mesh(peer))
    }

    fn banned_peers(&self) -> Vec<PeerId> {
        let scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        let banned = scores.banned().filter_map(|p| match p {
            PeerRef::Mesh(peer) => Some(*peer),
            PeerRef::Legacy(_) => None,
        });
        banned.collect()
    }

    /// Counts a serious offence of `peer` (malformed or forged data, a flood).
    fn penalize(&mut self, peer: PeerId, reason: &str) {
        self.penalize_points(peer, reason, Severity::Serious.points());
    }

    fn penalize_points(&mut self, peer: PeerId, reason: &str, points: u32) {
        warn!(%peer, reason, points, "peer misbehaved");
        let banned = self
            .scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offend(
                &PeerRef::Mesh(peer),
                points,
                MESH_BAN_AT,
                std::time::Instant::now(),
            );
        if banned {
            warn!(%peer, "peer banned");
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>, ctx: &mut Context<Self>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let peer = *self.swarm.local_peer_id();
                info!(%address, %peer, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some(ip) = crate::addresses::ip_of(endpoint.get_remote_address()) {
                    self.conn_addresses
                        .insert(connection_id, crate::addresses::network_of(ip));
                }
                if self.is_banned(peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address();
                    self.redial
                        .connected(&addr.to_string(), std::time::Instant::now());
                    self.dialled.insert(peer_id, addr.clone());
                }
                if num_established.get() == 1 {
                    info!(peer = %peer_id, address = %endpoint.get_remote_address(), "peer connected");
                    // where we reached it is where it listens (an inbound peer's port is not)
                    if endpoint.is_dialer() {
                        self.learn_address(peer_id, endpoint.get_remote_address().clone());
                    }
                    self.fetcher.link(PeerRef::Mesh(peer_id), true);
                    self.start_sync(peer_id, ctx);
                }
            }
            SwarmEvent::ConnectionClosed {
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                self.conn_addresses.remove(&connection_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                self.conn_addresses.remove(&connection_id);
                info!(peer = %peer_id, "peer disconnected");
                self.table.forget(&peer_id.to_string());
                self.fetcher.link(PeerRef::Mesh(peer_id), false);
                self.syncs.end(&peer_id);
                if let Some(addr) = self.dialled.get(&peer_id) {
                    self.redial
                        .closed(&addr.to_string(), std::time::Instant::now());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message.data),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event, ctx),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs.into_iter().take(MAX_LEARNT_ADDRS) {
                    self.learn_address(peer_id, addr);
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!(error = %error, "incoming connection failed");
            }
            other => debug!(event = ?other, "swarm event"),
        }
    }

    fn on_gossip(&mut self, source: PeerId, message_id: gossipsub::MessageId, data: Vec<u8>) {
        let verdict = |me: &mut Self, acceptance| {
            let _ = me
                .swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &source, acceptance);
        };
        let Ok(body) = String::from_utf8(data) else {
            verdict(self, MessageAcceptance::Reject);
            self.penalize(source, "gossip message is not utf-8");
            return;
        };
        let ingest = Ingest {
            origin: Origin::Gossip {
                source,
                message_id: message_id.clone(),
            },
            bodies: vec![body],
            sync_range: None,
        };
        if self.router.try_send(ingest).is_err() {
            // the router is saturated: drop it unforwarded rather than queue without bound
            verdict(self, MessageAcceptance::Ignore);
        }
    }

    fn on_sync(
        &mut self,
        event: request_response::Event<Request, Response>,
        ctx: &mut Context<Self>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                connection_id,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
            } => {
                // responses held count per address (peer ids are free)
                let address = match self.conn_addresses.get(&connection_id) {
                    Some(ip) => ip.to_string(),
                    None => peer.to_string(),
                };
                self.serve(peer, &address, request_id, request, channel, ctx)
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match (self.pending.remove(&request_id), response) {
                (Some(Pending::Log { sync, after, sent }), Response::Log { bodies, last, end }) => {
                    let in_sync = bodies.is_empty();
                    let page = Page {
                        bodies,
                        after,
                        last,
                        end,
                        fetch_ms: sent.elapsed().as_millis() as u64,
                    };
                    let steps = self.syncs.page(&peer, sync, page);
                    if in_sync {
                        debug!(%peer, "in sync");
                    }
                    self.sync_steps(peer, steps, ctx)
                }
                (Some(Pending::Artifact { cid }), Response::Artifact { bytes, .. }) => {
                    self.fetcher.answer(cid, PeerRef::Mesh(peer), bytes)
                }
                (Some(Pending::Log { sync, .. }), Response::Refused { reason }) => {
                    debug!(%peer, reason, "sync refused");
                    self.syncs.failed(&peer, sync);
                }
                (Some(Pending::Artifact { cid }), _) => {
                    self.fetcher.answer(cid, PeerRef::Mesh(peer), None)
                }
                (pending, _) => {
                    if let Some(Pending::Log { sync, .. }) = pending {
                        self.syncs.failed(&peer, sync);
                    }
                    self.penalize(peer, "unexpected sync response")
                }
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => match self.pending.remove(&request_id) {
                Some(Pending::Log { sync, .. }) => {
                    debug!(%peer, error = %error, "sync request failed");
                    self.syncs.failed(&peer, sync);
                }
                Some(Pending::Artifact { cid }) => {
                    self.fetcher.answer(cid, PeerRef::Mesh(peer), None)
                }
                None => {}
            },
            // a request holds its slot and bytes until its response is written or fails
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, error = %error, "inbound request failed");
                self.table.end_inbound(&request_id);
            }
            Event::ResponseSent { request_id, .. } => self.table.end_inbound(&request_id),
        }
    }

    fn serve(
        &mut self,
        peer: PeerId,
        address: &str,
        id: request_response::InboundRequestId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
        ctx: &mut Context<Self>,
    ) {
        let key = peer.to_string();
        if self.is_banned(peer) {
            return;
        }
        if let Request::Unreadable(reason) = &request {
            let refused = Response::Refused {
                reason: format!("unreadable request: {reason}"),
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, refused);
            self.penalize(peer, &format!("unreadable request: {reason}"));
            return;
        }
        let reserve = match &request {
            Request::Log { .. } => net::SYNC_PAGE_BYTES,
            // most artifacts are small: a floor, settled at the real size once read. While many
            // are being read at once, each holds the most an artifact can be, so the budget
            // bounds the memory of the reads too
            Request::Artifact { .. } if self.artifact_reads < ARTIFACT_READS_AT_FLOOR => {
                ARTIFACT_RESERVE
            }
            Request::Artifact { .. } => crate::store::MAX_ARTIFACT_BYTES,
            Request::Unreadable(_) => 0,
        };
        let admitted =
            self.table
                .begin_inbound(id, &key, address, std::time::Instant::now(), reserve);
        if let Err(refusal) = admitted {
            let (reason, offence) = match refusal {
                Refusal::Rate { offence } => ("busy: too many requests this second", offence),
                Refusal::InFlight => ("too many requests at once", true),
                Refusal::Busy => (BUSY, false),
            };
            let refused = Response::Refused {
                reason: reason.into(),
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, refused);
            if offence {
                self.penalize(peer, "sync request flood");
            }
            return;
        }
        let artifact = matches!(request, Request::Artifact { .. });
        self.artifact_reads += artifact as usize;
        let work = self.reads.read(move |read| {
            Ok(match request {
                Request::Log { after, limit } => {
                    let limit = (limit as usize).clamp(1, net::SYNC_PAGE_ITEMS);
                    // only what is on disk: a crash must not renumber what a peer has seen
                    let top = read.durable_log_seq();
                    match read.log_after(after, limit, net::SYNC_PAGE_BYTES) {
                        Ok(mut entries) => {
                            entries.retain(|e| e.seq <= top);
                            let last = entries.last().map_or(after, |e| e.seq);
                            let end = last >= top;
                            let bodies = entries.into_iter().map(|e| e.body).collect();
                            Response::Log { bodies, last, end }
                        }
                        Err(e) => Response::Refused {
                            reason: e.to_string(),
                        },
                    }
                }
                Request::Artifact { cid } => match read.artifact(&cid) {
                    Ok(bytes) => Response::Artifact { cid, bytes },
                    Err(e) => Response::Refused {
                        reason: e.to_string(),
                    },
                },
                Request::Unreadable(reason) => Response::Refused { reason },
            })
        });
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(work).map(move |result, act, _| {
                act.artifact_reads -= artifact as usize;
                let mut response = result.unwrap_or_else(|e| Response::Refused {
                    reason: e.to_string(),
                });
                match act.table.settle(&id, response.size()) {
                    Settled::Fits => {}
                    Settled::Busy => {
                        response = Response::Refused {
                            reason: BUSY.into(),
                        }
                    }
                    Settled::Gone => return, // the request failed meanwhile
                }
                let sent = act
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
                if sent.is_err() {
                    act.table.end_inbound(&id);
                }
            }),
        );
    }

    /// Hands a page of `peer`'s log to the router, then tells the sync session how it went.
    fn store_page(&mut self, peer: PeerId, sync: u64, page: Page, ctx: &mut Context<Self>) {
        let Page {
            bodies,
            after,
            last,
            end,
            fetch_ms,
        } = page;
        let count = bodies.len();
        let started = std::time::Instant::now();
        let ingest = Ingest {
            origin: Origin::Sync { source: peer },
            bodies,
            sync_range: Some((after, last)),
        };
        ctx.spawn(actix::fut::wrap_future::<_, Self>(self.router.send(ingest)).map(
            move |result, act, ctx| {
                let how = match result {
                    Ok(summary) => {
                        let store_ms = started.elapsed().as_millis() as u64;
                        info!(%peer, received = count, accepted = summary.accepted, held = summary.held, rejected = summary.rejected, fetch_ms, store_ms, "sync page");
                        // one offence for a page, as heavy as its worst refusal (none for
                        // what is no fault of the peer's: no room here, a superseded root)
                        let points = crate::refusal::worst_points(&summary.problems);
                        if points > 0 {
                            act.penalize_points(peer, "invalid objects in a sync page", points);
                        }
                        if !summary.cursor_advanced {
                            Stored::CursorMoved
                        } else {
                            if end {
                                info!(%peer, "sync done");
                            }
                            Stored::Advanced
                        }
                    }
                    Err(e) => {
                        warn!(%peer, error = %e, "router unavailable, sync paused");
                        Stored::Failed
                    }
                };
                let steps = act.syncs.stored(&peer, sync, how);
                act.sync_steps(peer, steps, ctx);
            },
        ));
    }
}

/// Drives the swarm from inside the actor, so handlers can use it directly.
struct SwarmDriver;

impl ActorFuture<PeerManager> for SwarmDriver {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut PeerManager,
        ctx: &mut Context<PeerManager>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        // A bounded number of events per poll keeps the actor's mailbox served.
        for _ in 0..64 {
            match act.swarm.poll_next_unpin(task) {
                Poll::Ready(Some(event)) => act.on_event(event, ctx),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Actor for PeerManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        for addr in self.listen.clone() {
            if let Err(e) = self.swarm.listen_on(addr.clone()) {
                warn!(%addr, error = %e, "cannot listen");
            }
        }
        self.dial_bootstrap();
        ctx.spawn(SwarmDriver);
        ctx.run_interval(Duration::from_secs(1), |act, _| act.dial_bootstrap());
        // Anti-entropy: gossip can miss a peer (published before it subscribed, dropped under
        // load); asking each peer for its log after our cursor now and then closes any gap.
        ctx.run_interval(self.resync_interval, |act, ctx| {
            let peers: Vec<PeerId> = act.swarm.connected_peers().copied().collect();
            for peer in peers {
                act.start_sync(peer, ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!("peer manager stopped");
    }
}

impl Handler<Publish> for PeerManager {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let topic = IdentTopic::new(net::topic_for(&msg.message_type));
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, msg.body.into_bytes())
        {
            Ok(_) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!("published with no peer yet; peers will sync it")
            }
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => warn!(error = %e, "publish failed"),
        }
    }
}

impl Handler<Validated> for PeerManager {
    type Result = ();

    fn handle(&mut self, msg: Validated, _: &mut Context<Self>) {
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&msg.message_id, &msg.source, msg.acceptance);
    }
}

impl Handler<Penalize> for PeerManager {
    type Result = ();

    fn handle(&mut self, msg: Penalize, _: &mut Context<Self>) {
        self.penalize_points(msg.peer, &msg.reason, msg.points);
    }
}

impl Handler<AskArtifact> for PeerManager {
    type Result = ();

    /// Requests the artifact of a connected peer (a request to a gone peer would dial it: it
    /// is answered "no bytes" at once instead).
    fn handle(&mut self, msg: AskArtifact, _: &mut Context<Self>) {
        let AskArtifact { cid, peer } = msg;
        let PeerRef::Mesh(id) = peer else {
            return self.fetcher.answer(cid, peer, None);
        };
        if !self.swarm.is_connected(&id) {
            return self.fetcher.answer(cid, peer, None);
        }
        let request = Request::Artifact { cid: cid.clone() };
        let request_id = self.swarm.behaviour_mut().sync.send_request(&id, request);
        self.pending.insert(request_id, Pending::Artifact { cid });
    }
}

impl Handler<Offend> for PeerManager {
    type Result = ();

    fn handle(&mut self, msg: Offend, _: &mut Context<Self>) {
        if let PeerRef::Mesh(peer) = msg.peer {
            self.penalize_points(peer, &msg.reason, msg.points);
        }
    }
}

impl Handler<GetPeers> for PeerManager {
    type Result = MessageResult<GetPeers>;

    fn handle(&mut self, _: GetPeers, _: &mut Context<Self>) -> Self::Result {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let known: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .map(|(p, _)| *p)
            .chain(connected.iter().copied())
            .chain(self.banned_peers())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for peer in known {
            if !seen.insert(peer) {
                continue;
            }
            let scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
            let who = PeerRef::Mesh(peer);
            out.push(PeerInfo {
                peer_id: peer,
                connected: connected.contains(&peer),
                gossip_score: self.swarm.behaviour().gossipsub.peer_score(&peer),
                offence_points: scores.points(&who, std::time::Instant::now()),
                banned: scores.is_banned(&who),
            });
        }
        MessageResult(out)
    }
}

/// PeerManager: the configured peers changed (SIGHUP): dial these from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Vec<Multiaddr>);

impl Handler<SetPeers> for PeerManager {
    type Result = ();

    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        info!(peers = msg.0.len(), "configured libp2p peers replaced");
        self.bootstrap = msg.0;
        self.dial_bootstrap();
    }
}

impl Handler<GetListenAddrs> for PeerManager {
    type Result = MessageResult<GetListenAddrs>;

    fn handle(&mut self, _: GetListenAddrs, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.swarm.listeners().cloned().collect())
    }
}

impl Handler<Shutdown> for PeerManager {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        ctx.stop();
    }
}
