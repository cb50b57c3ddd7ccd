//! ArtifactFetcher: the node's one way to get an artifact (code or config) it lacks, from a peer
//! of either transport. Whoever needs one (the router for a record whose artifact is missing,
//! the research loop for a parent's config) sends [`FetchArtifact`]; the fetcher picks a peer,
//! asks that peer's transport to request it ([`AskArtifact`]), checks the bytes against the cid
//! when the answer comes back ([`ArtifactAnswer`]), and has the store writer keep them (which
//! publishes `ArtifactStored` for whoever waits).
//!
//! The choices are a plain struct, [`FetchPlan`]: each cid is fetched once at a time; each peer
//! is tried once per fetch, the peer that announced the record first, then mesh peers (a mesh
//! peer says when it lacks an artifact, so falling back is quick), then reference-protocol peers
//! (which never answer for a cid they lack, so only the timeout moves on); each peer has a few
//! request slots and a per-second pace under what a server tolerates; a request unanswered for
//! [`FetchLimits::timeout`] goes to the next peer; a fetch with no untried peer left is given
//! up (a later record, or the next look of whoever waits, asks again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, warn};

use crate::peer_score::PeerRef;
use crate::refusal::Severity;
use crate::store_writer::StoreWriter;

/// How hard the fetcher may pull.
#[derive(Clone, Debug)]
pub struct FetchLimits {
    /// Requests in flight to one libp2p peer (its server serves 8 at once per peer).
    pub per_mesh_peer: usize,
    /// Requests in flight to one reference-protocol peer (it answers them one by one).
    pub per_legacy_peer: usize,
    /// Requests started per peer per second, well under a server's request rate.
    pub per_peer_per_second: u32,
    /// Requests in flight in all: with artifacts up to 7 MiB, what the answers can hold at once.
    pub in_flight: usize,
    /// Cids tracked (asked or waiting) at once; more are refused and asked again later.
    pub tracked: usize,
    /// An unanswered request is given to the next peer after this.
    pub timeout: Duration,
}

impl FetchLimits {
    fn cap(&self, peer: &PeerRef) -> usize {
        match peer {
            PeerRef::Mesh(_) => self.per_mesh_peer,
            PeerRef::Legacy(_) => self.per_legacy_peer,
        }
    }
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            per_mesh_peer: 4,
            per_legacy_peer: 32,
            per_peer_per_second: 200,
            in_flight: 64,
            tracked: 100_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// One request to start: ask `peer` for `cid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub cid: String,
    pub peer: PeerRef,
}

/// What [`FetchPlan::next`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub asks: Vec<Ask>,
    /// Cids no connected peer is left to ask for: no longer tracked.
    pub given_up: Vec<String>,
}

#[derive(Debug)]
struct Fetch {
    prefer: Option<PeerRef>,
    tried: HashSet<PeerRef>,
    /// The peer asked now, and when.
    asked: Option<(PeerRef, Instant)>,
}

#[derive(Debug)]
struct Slots {
    in_flight: usize,
    /// The start of the current one-second window and the requests started in it.
    window: (Instant, u32),
}

impl Slots {
    /// Whether `peer` could take one more request at `now` (a free slot, and the second's
    /// pace not used up; a new second starts a new count).
    fn has_room(&mut self, peer: &PeerRef, limits: &FetchLimits, now: Instant) -> bool {
        let (start, started) = &mut self.window;
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *started) = (now, 0);
        }
        self.in_flight < limits.cap(peer) && *started < limits.per_peer_per_second
    }
}

/// Queued cids looked at per [`FetchPlan::next`] at most, so a long queue behind busy peers
/// costs little per call.
const SCAN: usize = 256;

/// The fetcher's decisions, as data: which cid to ask of which peer, and when to move on.
#[derive(Debug)]
pub struct FetchPlan {
    limits: FetchLimits,
    /// Connected peers of both transports, with their request slots.
    peers: HashMap<PeerRef, Slots>,
    fetches: HashMap<String, Fetch>,
    /// Tracked cids not asked of anyone now.
    queue: VecDeque<String>,
    /// Every request made, oldest first (stale entries are skipped): what [`FetchPlan::expire`]
    /// looks at, so it costs nothing per cid that waits.
    asked_order: VecDeque<(Instant, String)>,
    in_flight: usize,
}

impl FetchPlan {
    pub fn new(limits: FetchLimits) -> FetchPlan {
        FetchPlan {
            limits,
            peers: HashMap::new(),
            fetches: HashMap::new(),
            queue: VecDeque::new(),
            asked_order: VecDeque::new(),
            in_flight: 0,
        }
    }

    /// Starts fetching `cid`, from `prefer` first; false when it is already being fetched or
    /// too many are.
    pub fn want(&mut self, cid: &str, prefer: Option<PeerRef>) -> bool {
        if self.fetches.contains_key(cid) || self.fetches.len() >= self.limits.tracked {
            return false;
        }
        let fetch = Fetch {
            prefer,
            tried: HashSet::new(),
            asked: None,
        };
        self.fetches.insert(cid.to_string(), fetch);
        self.queue.push_back(cid.to_string());
        true
    }

    pub fn is_fetching(&self, cid: &str) -> bool {
        self.fetches.contains_key(cid)
    }

    /// Whether `peer` was asked for `cid` in the fetch running now: only its bytes are taken
    /// (and hashed) at all.
    pub fn was_asked(&self, cid: &str, peer: &PeerRef) -> bool {
        self.fetches
            .get(cid)
            .is_some_and(|f| f.tried.contains(peer))
    }

    /// Cids being fetched (asked or waiting).
    pub fn tracked(&self) -> usize {
        self.fetches.len()
    }

    /// Requests on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A peer connected: it can be asked from now on.
    pub fn peer_up(&mut self, peer: PeerRef, now: Instant) {
        self.peers.entry(peer).or_insert(Slots {
            in_flight: 0,
            window: (now, 0),
        });
    }

    /// A peer left: what it was asked goes to the next peer.
    pub fn peer_down(&mut self, peer: &PeerRef) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        let mut freed = 0;
        for (cid, fetch) in &mut self.fetches {
            if fetch.asked.as_ref().is_some_and(|(p, _)| p == peer) {
                fetch.asked = None;
                freed += 1;
                self.queue.push_front(cid.clone());
            }
        }
        self.in_flight -= freed;
    }

    /// `peer` answered for `cid`: with the right bytes (`got`: the fetch is done) or without
    /// them (missing, refused, failed, wrong bytes: the next peer is asked). An answer from a
    /// peer that was not asked, or for a cid not fetched, changes nothing unless it is the
    /// artifact itself (checked bytes are welcome from anyone asked before).
    pub fn answered(&mut self, cid: &str, peer: &PeerRef, got: bool) {
        let Some(fetch) = self.fetches.get_mut(cid) else {
            return;
        };
        let asked_this = fetch.asked.as_ref().is_some_and(|(p, _)| p == peer);
        if !(asked_this || got && fetch.tried.contains(peer)) {
            return;
        }
        if let Some((asked, _)) = fetch.asked.take() {
            self.free_slot(&asked);
        }
        if got {
            self.fetches.remove(cid);
        } else {
            self.queue.push_front(cid.to_string());
        }
    }

    /// Requests unanswered for longer than the timeout: their peer's slot is freed and the
    /// cid goes to the next peer. Returns them (cid, peer).
    pub fn expire(&mut self, now: Instant) -> Vec<(String, PeerRef)> {
        let mut expired = Vec::new();
        while let Some((at, _)) = self.asked_order.front() {
            if now.duration_since(*at) < self.limits.timeout {
                break;
            }
            let (at, cid) = self.asked_order.pop_front().expect("looked at");
            let Some(fetch) = self.fetches.get_mut(&cid) else {
                continue; // done since
            };
            // still this request? (not answered and asked again since)
            if fetch
                .asked
                .as_ref()
                .is_none_or(|(_, asked_at)| *asked_at != at)
            {
                continue;
            }
            let (peer, _) = fetch.asked.take().expect("looked at");
            self.free_slot(&peer);
            self.queue.push_front(cid.clone());
            expired.push((cid, peer));
        }
        expired
    }

    /// A request to `peer` ended (answered, failed, timed out): its slot is free.
    fn free_slot(&mut self, peer: &PeerRef) {
        self.in_flight -= 1;
        if let Some(slots) = self.peers.get_mut(peer) {
            slots.in_flight -= 1;
        }
    }

    /// Whether any connected peer could take a request now.
    fn any_room(&mut self, now: Instant) -> bool {
        let limits = &self.limits;
        self.peers
            .iter_mut()
            .any(|(peer, slots)| slots.has_room(peer, limits, now))
    }

    /// The requests to start now, and the fetches to give up (no untried connected peer).
    pub fn next(&mut self, now: Instant) -> Plan {
        let mut plan = Plan::default();
        let mut waiting = VecDeque::new();
        let mut looked = 0;
        // with no peer connected, every fetch is given up; with every peer busy, nothing moves
        while self.in_flight < self.limits.in_flight
            && looked < SCAN
            && (self.peers.is_empty() || self.any_room(now))
        {
            let Some(cid) = self.queue.pop_front() else {
                break;
            };
            let Some(fetch) = self.fetches.get_mut(&cid) else {
                continue; // done meanwhile
            };
            if fetch.asked.is_some() {
                continue; // queued twice (a peer left while an earlier answer was requeued)
            }
            looked += 1;
            match choose(&self.limits, &mut self.peers, fetch, now) {
                Choice::Ask(peer) => {
                    fetch.tried.insert(peer.clone());
                    fetch.asked = Some((peer.clone(), now));
                    self.asked_order.push_back((now, cid.clone()));
                    self.in_flight += 1;
                    plan.asks.push(Ask { cid, peer });
                }
                Choice::Wait => waiting.push_back(cid),
                Choice::GiveUp => {
                    self.fetches.remove(&cid);
                    plan.given_up.push(cid);
                }
            }
        }
        // those that waited go behind the rest, so the next call looks further: a long run of
        // cids waiting for one busy peer cannot hide the ones another peer could serve now
        self.queue.extend(waiting);
        plan
    }
}

enum Choice {
    Ask(PeerRef),
    /// Untried peers are connected but have no free slot this moment.
    Wait,
    GiveUp,
}

/// The peer to ask for `fetch`: the preferred one, then the least loaded mesh peer, then the
/// least loaded legacy peer, each untried and with a free slot and pace.
fn choose(
    limits: &FetchLimits,
    peers: &mut HashMap<PeerRef, Slots>,
    fetch: &Fetch,
    now: Instant,
) -> Choice {
    let mut untried = false;
    let mut best: Option<(&PeerRef, (bool, bool, usize))> = None;
    for (peer, slots) in peers.iter_mut() {
        if fetch.tried.contains(peer) {
            continue;
        }
        untried = true;
        if !slots.has_room(peer, limits, now) {
            continue;
        }
        // lower sorts first: the preferred peer, then mesh, then the least loaded
        let rank = (
            fetch.prefer.as_ref() != Some(peer),
            matches!(peer, PeerRef::Legacy(_)),
            slots.in_flight,
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some((peer, rank));
        }
    }
    match best {
        Some((peer, _)) => {
            let peer = peer.clone();
            let slots = peers.get_mut(&peer).expect("chosen among the peers");
            slots.in_flight += 1;
            slots.window.1 += 1;
            Choice::Ask(peer)
        }
        None if untried => Choice::Wait,
        None => Choice::GiveUp,
    }
}

/// ArtifactFetcher: get the artifact `cid`, from `prefer` first.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FetchArtifact {
    pub cid: String,
    pub prefer: Option<PeerRef>,
}

/// A transport (PeerManager for a mesh peer, LegacyBridge for a reference peer): request `cid`
/// from `peer`, and answer with [`ArtifactAnswer`] (at once with no bytes if `peer` is gone).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AskArtifact {
    pub cid: String,
    pub peer: PeerRef,
}

/// ArtifactFetcher: what `peer` answered (`None`: it lacks the artifact, refused, or the
/// request failed).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ArtifactAnswer {
    pub cid: String,
    pub peer: PeerRef,
    pub bytes: Option<Vec<u8>>,
}

/// ArtifactFetcher: a peer of either transport connected (`up`) or left.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeerLink {
    pub peer: PeerRef,
    pub up: bool,
}

/// A transport: `peer` sent something wrong, worth `points` ([`Severity::points`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Offend {
    pub peer: PeerRef,
    pub points: u32,
    pub reason: String,
}

/// What a transport tells the artifact fetcher: who is connected, and what they answered.
#[derive(Clone)]
pub struct FetcherLinks {
    pub links: Recipient<PeerLink>,
    pub answers: Recipient<ArtifactAnswer>,
}

impl FetcherLinks {
    pub fn to<A>(addr: &Addr<A>) -> FetcherLinks
    where
        A: Actor<Context = Context<A>> + Handler<PeerLink> + Handler<ArtifactAnswer>,
    {
        FetcherLinks {
            links: addr.clone().recipient(),
            answers: addr.clone().recipient(),
        }
    }

    pub fn link(&self, peer: PeerRef, up: bool) {
        self.links.do_send(PeerLink { peer, up });
    }

    pub fn answer(&self, cid: String, peer: PeerRef, bytes: Option<Vec<u8>>) {
        self.answers.do_send(ArtifactAnswer { cid, peer, bytes });
    }
}

/// The transports the fetcher asks through.
#[derive(Clone)]
pub struct Transports {
    pub mesh: Recipient<AskArtifact>,
    pub mesh_offend: Recipient<Offend>,
    pub legacy: Recipient<AskArtifact>,
    pub legacy_offend: Recipient<Offend>,
}

impl Transports {
    fn ask(&self, ask: Ask) {
        let to = match ask.peer {
            PeerRef::Mesh(_) => &self.mesh,
            PeerRef::Legacy(_) => &self.legacy,
        };
        to.do_send(AskArtifact {
            cid: ask.cid,
            peer: ask.peer,
        });
    }

    fn offend(&self, offence: Offend) {
        match offence.peer {
            PeerRef::Mesh(_) => self.mesh_offend.do_send(offence),
            PeerRef::Legacy(_) => self.legacy_offend.do_send(offence),
        }
    }
}

pub struct ArtifactFetcher {
    plan: FetchPlan,
    writer: StoreWriter,
    transports: Transports,
    /// Cids whose bytes are being hashed (later copies are dropped meanwhile).
    checking: HashSet<String>,
    /// Checked artifacts waiting for the writer, and whether a batch is being stored.
    to_store: Vec<(String, Vec<u8>)>,
    storing: bool,
}

impl ArtifactFetcher {
    pub fn new(writer: StoreWriter, transports: Transports, limits: FetchLimits) -> Self {
        ArtifactFetcher {
            plan: FetchPlan::new(limits),
            writer,
            transports,
            checking: HashSet::new(),
            to_store: Vec::new(),
            storing: false,
        }
    }

    fn pump(&mut self) {
        let plan = self.plan.next(Instant::now());
        for cid in plan.given_up {
            debug!(cid, "no peer left to fetch the artifact from");
        }
        for ask in plan.asks {
            self.transports.ask(ask);
        }
    }

    fn store(&mut self, ctx: &mut Context<Self>) {
        if self.storing || self.to_store.is_empty() {
            return;
        }
        self.storing = true;
        let batch = std::mem::take(&mut self.to_store);
        let writer = self.writer.clone();
        let work = async move { writer.artifacts(batch).await };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(work).map(|result, act, ctx| {
                act.storing = false;
                match result {
                    Ok(written) => debug!(n = written.len(), "fetched artifacts stored"),
                    Err(e) => warn!(error = %e, "storing fetched artifacts failed"),
                }
                act.store(ctx);
            }),
        );
    }
}

impl Actor for ArtifactFetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        // paces are per second and requests time out: look again a few times a second
        ctx.run_interval(Duration::from_millis(250), |act, _| {
            for (cid, peer) in act.plan.expire(Instant::now()) {
                debug!(cid, %peer, "artifact request unanswered: asking the next peer");
            }
            act.pump();
        });
    }
}

impl Handler<FetchArtifact> for ArtifactFetcher {
    type Result = ();

    fn handle(&mut self, msg: FetchArtifact, _: &mut Context<Self>) {
        if self.plan.want(&msg.cid, msg.prefer) {
            self.pump();
        }
    }
}

impl Handler<PeerLink> for ArtifactFetcher {
    type Result = ();

    fn handle(&mut self, msg: PeerLink, _: &mut Context<Self>) {
        if msg.up {
            self.plan.peer_up(msg.peer, Instant::now());
        } else {
            self.plan.peer_down(&msg.peer);
        }
        self.pump();
    }
}

impl Handler<ArtifactAnswer> for ArtifactFetcher {
    type Result = ();

    fn handle(&mut self, msg: ArtifactAnswer, ctx: &mut Context<Self>) {
        let ArtifactAnswer { cid, peer, bytes } = msg;
        let Some(bytes) = bytes else {
            self.plan.answered(&cid, &peer, false);
            return self.pump();
        };
        if !self.plan.was_asked(&cid, &peer) || !self.checking.insert(cid.clone()) {
            // not asked of this peer, done already, or a copy being checked: not even hashed
            return;
        }
        // up to 7 MiB: hashed on a blocking thread, not the one that drives the network
        let check = tokio::task::spawn_blocking(move || {
            let ok = spore_spec::crypto::sha256_hex(&bytes) == cid;
            (cid, bytes, ok)
        });
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(check).map(move |checked, act, ctx| {
                let Ok((cid, bytes, ok)) = checked else {
                    return; // the hashing thread panicked: reported as the node's failure
                };
                act.checking.remove(&cid);
                act.plan.answered(&cid, &peer, ok);
                if ok {
                    act.to_store.push((cid, bytes));
                    act.store(ctx);
                } else {
                    act.transports.offend(Offend {
                        peer,
                        points: Severity::Serious.points(),
                        reason: "artifact bytes do not match their cid".into(),
                    });
                }
                act.pump();
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh() -> PeerRef {
        PeerRef::Mesh(libp2p::PeerId::random())
    }

    fn legacy(port: u16) -> PeerRef {
        PeerRef::Legacy(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn plan_with(peers: &[&PeerRef], limits: FetchLimits, now: Instant) -> FetchPlan {
        let mut plan = FetchPlan::new(limits);
        for p in peers {
            plan.peer_up((*p).clone(), now);
        }
        plan
    }

    fn asked_of(plan: &Plan) -> Vec<PeerRef> {
        plan.asks.iter().map(|a| a.peer.clone()).collect()
    }

    #[test]
    fn the_preferred_peer_is_asked_first_then_mesh_before_legacy() {
        let now = Instant::now();
        let (m, l) = (mesh(), legacy(1));
        let mut plan = plan_with(&[&m, &l], FetchLimits::default(), now);
        assert!(plan.want("a", Some(l.clone())));
        assert!(plan.want("b", None));
        assert!(!plan.want("a", None), "one fetch per cid");
        let step = plan.next(now);
        assert_eq!(asked_of(&step), vec![l.clone(), m.clone()]);
        assert_eq!(plan.in_flight(), 2);
    }

    #[test]
    fn a_missing_answer_falls_back_across_transports_both_ways_then_gives_up() {
        let now = Instant::now();
        let (m, l) = (mesh(), legacy(1));
        let mut plan = plan_with(&[&m, &l], FetchLimits::default(), now);
        // mesh first (preferred), then the legacy peer
        plan.want("x", Some(m.clone()));
        assert_eq!(asked_of(&plan.next(now)), vec![m.clone()]);
        plan.answered("x", &m, false);
        assert_eq!(asked_of(&plan.next(now)), vec![l.clone()]);
        // legacy first (preferred), then the mesh peer
        plan.want("y", Some(l.clone()));
        assert_eq!(asked_of(&plan.next(now)), vec![l.clone()]);
        plan.answered("y", &l, false);
        assert_eq!(asked_of(&plan.next(now)), vec![m.clone()]);
        // x: the legacy peer lacks it too; no one is left
        plan.answered("x", &l, false);
        let step = plan.next(now);
        assert_eq!(step.given_up, vec!["x".to_string()]);
        assert!(!plan.is_fetching("x"));
        plan.answered("y", &m, true);
        assert_eq!(plan.tracked(), 0);
        assert_eq!(plan.in_flight(), 0);
    }

    #[test]
    fn a_request_that_times_out_goes_to_the_next_peer_and_frees_its_slot() {
        let now = Instant::now();
        let (l1, l2) = (legacy(1), legacy(2));
        let limits = FetchLimits {
            per_legacy_peer: 1,
            ..FetchLimits::default()
        };
        let timeout = limits.timeout;
        let mut plan = plan_with(&[&l1], limits, now);
        plan.want("a", None);
        plan.want("b", None);
        assert_eq!(asked_of(&plan.next(now)), vec![l1.clone()]);
        plan.peer_up(l2.clone(), now);
        assert_eq!(
            asked_of(&plan.next(now)),
            vec![l2.clone()],
            "b, on the other peer"
        );
        assert!(plan.expire(now + timeout / 2).is_empty());
        let expired = plan.expire(now + timeout);
        assert_eq!(expired.len(), 2);
        // each cid goes to the peer it has not tried, now that the slots are free
        let later = now + timeout;
        let step = plan.next(later);
        let mut asks: Vec<(String, PeerRef)> =
            step.asks.into_iter().map(|a| (a.cid, a.peer)).collect();
        asks.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(asks.len(), 2);
        assert_ne!(asks[0].1, asks[1].1);
        // a late answer from the first peer asked still completes the fetch
        let (cid, now_asked) = asks[0].clone();
        let first = if now_asked == l1 {
            l2.clone()
        } else {
            l1.clone()
        };
        plan.answered(&cid, &first, true);
        assert!(!plan.is_fetching(&cid));
        assert_eq!(
            plan.in_flight(),
            1,
            "the slot of the peer asked second is free"
        );
    }

    #[test]
    fn per_peer_slots_and_pace_hold_and_the_total_bounds_all_peers() {
        let now = Instant::now();
        let (m1, m2) = (mesh(), mesh());
        let limits = FetchLimits::default();
        let mut plan = plan_with(&[&m1, &m2], limits.clone(), now);
        for i in 0..100 {
            plan.want(&format!("c{i}"), None);
        }
        let step = plan.next(now);
        assert_eq!(step.asks.len(), 2 * limits.per_mesh_peer);
        assert!(step.given_up.is_empty(), "busy peers: the rest waits");
        // answered at once, over and over: the per-second pace stops each peer
        let mut started = step.asks.len();
        loop {
            let done: Vec<Ask> = plan.fetches_asked();
            for a in &done {
                plan.answered(&a.cid, &a.peer, true);
            }
            let step = plan.next(now);
            if step.asks.is_empty() {
                break;
            }
            started += step.asks.len();
        }
        assert_eq!(started, 100, "200 per peer per second is more than 100");
        // the total bound: many legacy peers with large windows
        let limits = FetchLimits::default();
        let peers: Vec<PeerRef> = (1..=10).map(legacy).collect();
        let refs: Vec<&PeerRef> = peers.iter().collect();
        let mut plan = plan_with(&refs, limits.clone(), now);
        for i in 0..1000 {
            plan.want(&format!("c{i}"), None);
        }
        let mut asked = 0;
        for _ in 0..10 {
            asked += plan.next(now).asks.len();
        }
        assert_eq!(asked, limits.in_flight);
    }

    #[test]
    fn cids_waiting_for_a_busy_peer_do_not_hide_those_an_idle_peer_can_serve() {
        let now = Instant::now();
        let (fast, silent) = (mesh(), legacy(1));
        let mut plan = plan_with(&[&fast, &silent], FetchLimits::default(), now);
        // 1,000 fetches that the fast peer lacks (it says so at once) and the silent one, whose
        // 32 slots stay taken for the whole timeout, holds up; then one the fast peer has
        for i in 0..1_000 {
            plan.want(&format!("w{i}"), Some(silent.clone()));
        }
        plan.want("honest", Some(fast.clone()));
        // the actor pumps after every answer; say one every 5 ms
        let mut at = now;
        let asked = loop {
            at += Duration::from_millis(5);
            assert!(
                at < now + Duration::from_secs(20),
                "the honest cid waited 20 s"
            );
            let step = plan.next(at);
            if step.asks.iter().any(|a| a.cid == "honest") {
                break at - now;
            }
            for a in step.asks.iter().filter(|a| a.peer == fast) {
                plan.answered(&a.cid, &fast, false);
            }
        };
        // each of the 1,000 tried the fast peer once first (its pace: 200 a second), then only
        // waits for the silent one behind the honest cid
        assert!(asked <= Duration::from_secs(6), "asked after {asked:?}");
        assert!(plan.was_asked("w0", &silent) && !plan.was_asked("w0", &mesh()));
    }

    #[test]
    fn defaults_stay_under_what_a_spored_server_tolerates() {
        use crate::peer_table::{MAX_INBOUND_PER_PEER, MAX_REQUESTS_PER_SECOND};
        let limits = FetchLimits::default();
        // one log request may be in flight beside the artifact requests
        assert!(limits.per_mesh_peer < MAX_INBOUND_PER_PEER as usize);
        assert!(limits.per_peer_per_second < MAX_REQUESTS_PER_SECOND);
    }

    #[test]
    fn the_pace_resets_each_second() {
        let now = Instant::now();
        let m = mesh();
        let limits = FetchLimits {
            per_peer_per_second: 3,
            ..FetchLimits::default()
        };
        let mut plan = plan_with(&[&m], limits, now);
        for i in 0..10 {
            plan.want(&format!("c{i}"), None);
        }
        let mut started = 0;
        for _ in 0..10 {
            let step = plan.next(now);
            started += step.asks.len();
            for a in step.asks {
                plan.answered(&a.cid, &a.peer, false);
            }
        }
        assert_eq!(started, 3);
        // answered "missing" by the only peer: those three are given up when the queue moves
        // again, the next second
        assert_eq!(plan.tracked(), 10);
        let step = plan.next(now + Duration::from_secs(1));
        assert_eq!(step.given_up.len(), 3);
        assert_eq!(step.asks.len(), 3);
        assert_eq!(plan.tracked(), 7);
    }

    #[test]
    fn a_peer_that_leaves_hands_its_requests_on_and_strangers_change_nothing() {
        let now = Instant::now();
        let (m, l) = (mesh(), legacy(1));
        let mut plan = plan_with(&[&m, &l], FetchLimits::default(), now);
        plan.want("a", None);
        assert_eq!(asked_of(&plan.next(now)), vec![m.clone()]);
        // an answer from a peer never asked, and one for a cid never wanted, are ignored
        plan.answered("a", &l, true);
        plan.answered("zzz", &m, true);
        assert!(plan.is_fetching("a"));
        assert_eq!(plan.in_flight(), 1);
        plan.peer_down(&m);
        assert_eq!(plan.in_flight(), 0);
        assert_eq!(asked_of(&plan.next(now)), vec![l.clone()]);
        // with no peer connected at all, a new fetch is given up at once
        plan.peer_down(&l);
        plan.want("b", None);
        assert_eq!(
            plan.next(now).given_up,
            vec!["a".to_string(), "b".to_string()]
        );
        // a peer that reconnects starts with free slots
        plan.peer_up(m.clone(), now);
        plan.want("c", None);
        assert_eq!(asked_of(&plan.next(now)), vec![m]);
    }

    impl FetchPlan {
        fn fetches_asked(&self) -> Vec<Ask> {
            self.fetches
                .iter()
                .filter_map(|(cid, f)| {
                    f.asked.as_ref().map(|(peer, _)| Ask {
                        cid: cid.clone(),
                        peer: peer.clone(),
                    })
                })
                .collect()
        }
    }
}
