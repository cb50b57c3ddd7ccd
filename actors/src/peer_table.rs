//! PeerManager's bookkeeping, as plain data: inbound request budgets, re-dials. Elsewhere:
//! syncs (`sync_session`), offences and bans (`peer_score`, shared with the legacy bridge),
//! artifact fetches (`artifact_fetcher`, shared by both transports).

use std::collections::HashMap;

/// Inbound requests served at once per peer; more count as a flood. A well-behaved node keeps
/// at most a few artifact requests (`FetchLimits::per_mesh_peer`) and one log request in flight.
pub const MAX_INBOUND_PER_PEER: u32 = 8;
/// Requests accepted from one peer per second; a syncing peer needs far fewer (one log page at
/// a time, at most `FetchLimits::per_peer_per_second` artifact requests).
pub const MAX_REQUESTS_PER_SECOND: u32 = 500;

/// Bytes of responses waiting to be written, all peers together: a node answering many slow
/// readers holds at most this much in responses. A quarter of it is the most one address (an
/// IPv4 address, or an IPv6 /64; see [`crate::addresses::network_of`]) may hold, whatever the
/// number of peer ids it connects with: one machine that asks and never reads cannot make the
/// node answer "busy" to everyone else.
pub const MAX_PENDING_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Why an inbound request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the per-second rate: answered "busy"; only the first refusal of a window counts as
    /// an offence, so a peer that keeps flooding is banned after a few seconds and one that
    /// briefly asked too fast is not.
    Rate { offence: bool },
    /// More requests in flight at once than any honest node keeps: an offence every time.
    InFlight,
    /// The responses waiting for this address, or for everyone, are at their budget: answered
    /// "busy", no offence (the asker may have done nothing wrong).
    Busy,
}

/// What became of a response once built ([`PeerTable::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It fits the budgets at its real size: send it.
    Fits,
    /// It does not fit: answer "busy" instead (the request keeps its slot until that is sent).
    Busy,
    /// The request ended meanwhile (its connection failed): drop the response.
    Gone,
}

/// One inbound request, from admission until its response is written or fails.
#[derive(Debug)]
struct InFlight {
    peer: String,
    address: String,
    bytes: usize,
}

/// Inbound request budgets: per peer (in flight, per second), per address and in total
/// (response bytes). `I` names one request (libp2p's inbound request id).
#[derive(Debug)]
pub struct PeerTable<I> {
    /// Per peer: requests in flight.
    inbound: HashMap<String, u32>,
    /// Per peer: the start of the current one-second window and the requests in it.
    rate: HashMap<String, (std::time::Instant, u32)>,
    /// Per address: bytes its requests in flight hold.
    held: HashMap<String, usize>,
    requests: HashMap<I, InFlight>,
    pending_bytes: usize,
    max_pending_bytes: usize,
}

impl<I> Default for PeerTable<I> {
    fn default() -> Self {
        PeerTable::with_byte_budget(MAX_PENDING_RESPONSE_BYTES)
    }
}

impl<I> PeerTable<I> {
    pub fn with_byte_budget(max_pending_bytes: usize) -> Self {
        PeerTable {
            inbound: HashMap::new(),
            rate: HashMap::new(),
            held: HashMap::new(),
            requests: HashMap::new(),
            pending_bytes: 0,
            max_pending_bytes,
        }
    }

    /// Bytes held by requests in flight.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn fits(&self, address: &str, more: usize) -> bool {
        let of_address = self.held.get(address).copied().unwrap_or(0);
        self.pending_bytes.saturating_add(more) <= self.max_pending_bytes
            && of_address.saturating_add(more) <= self.max_pending_bytes / 4
    }

    fn hold(&mut self, address: &str, less: usize, more: usize) {
        self.pending_bytes = self.pending_bytes - less + more;
        let of_address = self.held.entry(address.to_string()).or_default();
        *of_address = *of_address - less + more;
        if *of_address == 0 {
            self.held.remove(address);
        }
    }
}

impl<I: std::hash::Hash + Eq> PeerTable<I> {
    /// Admits request `id` of `peer`, which came from `address`, holding `reserve` bytes until
    /// its response is built (the least that response can be: its real size is settled in
    /// [`PeerTable::settle`]), or says why not (too many at once or this second from the peer,
    /// or too many bytes held for its address or in all). An admitted request holds its slot
    /// until [`PeerTable::end_inbound`].
    pub fn begin_inbound(
        &mut self,
        id: I,
        peer: &str,
        address: &str,
        now: std::time::Instant,
        reserve: usize,
    ) -> Result<(), Refusal> {
        let (start, count) = self.rate.entry(peer.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= std::time::Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        if *count > MAX_REQUESTS_PER_SECOND {
            return Err(Refusal::Rate {
                offence: *count == MAX_REQUESTS_PER_SECOND + 1,
            });
        }
        let n = self.inbound.get(peer).copied().unwrap_or(0);
        if n >= MAX_INBOUND_PER_PEER {
            return Err(Refusal::InFlight);
        }
        if !self.fits(address, reserve) {
            return Err(Refusal::Busy);
        }
        self.inbound.insert(peer.to_string(), n + 1);
        self.hold(address, 0, reserve);
        self.requests.insert(
            id,
            InFlight {
                peer: peer.to_string(),
                address: address.to_string(),
                bytes: reserve,
            },
        );
        Ok(())
    }

    /// The response of `id` is built and is `bytes` long: from now it holds its real size if
    /// that fits the budgets, else it is to be answered "busy" (and holds nothing).
    pub fn settle(&mut self, id: &I, bytes: usize) -> Settled {
        let Some(request) = self.requests.get(id) else {
            return Settled::Gone;
        };
        let (address, reserved) = (request.address.clone(), request.bytes);
        self.hold(&address, reserved, 0);
        let settled = if self.fits(&address, bytes) {
            self.hold(&address, 0, bytes);
            Settled::Fits
        } else {
            Settled::Busy
        };
        if let Some(request) = self.requests.get_mut(id) {
            request.bytes = if settled == Settled::Fits { bytes } else { 0 };
        }
        settled
    }

    /// Request `id` ended (its response was written, or it failed): its slot and bytes are
    /// free. Ending a request twice, or one never admitted, does nothing.
    pub fn end_inbound(&mut self, id: &I) {
        let Some(request) = self.requests.remove(id) else {
            return;
        };
        self.hold(&request.address, request.bytes, 0);
        if let Some(n) = self.inbound.get_mut(&request.peer) {
            *n -= 1;
            if *n == 0 {
                self.inbound.remove(&request.peer);
            }
        }
    }

    /// The peer is gone: its rate window is forgotten (its requests in flight end with their
    /// own events), so the table holds only peers that are connected or answering.
    pub fn forget(&mut self, peer: &str) {
        self.rate.remove(peer);
    }

    /// Peers and addresses the table holds anything about (for tests of its pruning).
    pub fn peers_held(&self) -> usize {
        let mut peers: std::collections::HashSet<&String> = self.rate.keys().collect();
        peers.extend(self.inbound.keys());
        peers.extend(self.held.keys());
        peers.len()
    }
}

/// Re-dialling configured peers with backoff: the first dial is immediate; while dials fail
/// or connections drop soon after they open (a peer that refuses or bans us), the wait doubles
/// from [`REDIAL_FIRST`] up to [`REDIAL_MAX`]; a connection that lasted [`REDIAL_STABLE`] resets it.
#[derive(Debug, Default)]
pub struct Redial {
    state: HashMap<String, RedialState>,
}

#[derive(Debug, Default)]
struct RedialState {
    attempts: u32,
    next: Option<std::time::Instant>,
    connected_at: Option<std::time::Instant>,
}

pub const REDIAL_FIRST: std::time::Duration = std::time::Duration::from_secs(5);
pub const REDIAL_MAX: std::time::Duration = std::time::Duration::from_secs(300);
pub const REDIAL_STABLE: std::time::Duration = std::time::Duration::from_secs(30);

impl Redial {
    /// True when `addr` may be dialled now (the attempt is counted).
    pub fn attempt(&mut self, addr: &str, now: std::time::Instant) -> bool {
        let s = self.state.entry(addr.to_string()).or_default();
        if s.next.is_some_and(|next| now < next) {
            return false;
        }
        let wait = REDIAL_FIRST
            .saturating_mul(1 << s.attempts.min(16))
            .min(REDIAL_MAX);
        s.next = Some(now + wait);
        s.attempts += 1;
        true
    }

    pub fn connected(&mut self, addr: &str, now: std::time::Instant) {
        self.state.entry(addr.to_string()).or_default().connected_at = Some(now);
    }

    /// The connection to `addr` closed: after a stable connection, re-dial at once.
    pub fn closed(&mut self, addr: &str, now: std::time::Instant) {
        let s = self.state.entry(addr.to_string()).or_default();
        if s.connected_at
            .take()
            .is_some_and(|at| now.duration_since(at) >= REDIAL_STABLE)
        {
            s.attempts = 0;
            s.next = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_budget() {
        let mut t = PeerTable::default();
        let now = std::time::Instant::now();
        for id in 0..MAX_INBOUND_PER_PEER {
            assert!(t.begin_inbound(id, "p", "ip", now, 1).is_ok());
        }
        assert_eq!(
            t.begin_inbound(100, "p", "ip", now, 1),
            Err(Refusal::InFlight)
        );
        t.end_inbound(&0);
        t.end_inbound(&0);
        assert!(t.begin_inbound(101, "p", "ip", now, 1).is_ok());
        assert_eq!(
            t.begin_inbound(102, "p", "ip", now, 1),
            Err(Refusal::InFlight)
        );
        // a burst beyond the per-second rate is refused even when each is answered at once;
        // only the first refusal of the window is an offence
        let mut q = PeerTable::default();
        let refusals: Vec<Refusal> = (0..MAX_REQUESTS_PER_SECOND + 10)
            .filter_map(|id| {
                let r = q.begin_inbound(id, "q", "ip", now, 1);
                q.end_inbound(&id);
                r.err()
            })
            .collect();
        assert_eq!(refusals.len(), 10);
        assert_eq!(refusals[0], Refusal::Rate { offence: true });
        assert!(refusals[1..]
            .iter()
            .all(|r| *r == Refusal::Rate { offence: false }));
        let later = now + std::time::Duration::from_secs(1);
        assert!(q.begin_inbound(9_999, "q", "ip", later, 1).is_ok());
    }

    #[test]
    fn responses_waiting_for_slow_readers_are_bounded_per_address_and_in_all() {
        let mut t = PeerTable::with_byte_budget(400);
        let now = std::time::Instant::now();
        // one address may hold a quarter of the budget, whatever its peer ids
        assert!(t.begin_inbound(1, "a", "ip-a", now, 60).is_ok());
        assert_eq!(
            t.begin_inbound(2, "a2", "ip-a", now, 60),
            Err(Refusal::Busy)
        );
        // its response turns out small: room again
        assert_eq!(t.settle(&1, 10), Settled::Fits);
        assert!(t.begin_inbound(2, "a2", "ip-a", now, 60).is_ok());
        assert_eq!(t.pending_bytes(), 70);
        // a response too large for its address's share is answered "busy" and holds nothing
        assert_eq!(t.settle(&2, 95), Settled::Busy);
        assert_eq!(t.pending_bytes(), 10);
        assert_eq!(t.settle(&2, 90), Settled::Fits);
        // addresses together stop at the budget
        for (id, peer) in [(3, "b"), (4, "c"), (5, "d")] {
            assert!(t.begin_inbound(id, peer, peer, now, 100).is_ok());
        }
        assert_eq!(t.pending_bytes(), 400);
        assert_eq!(t.begin_inbound(6, "e", "e", now, 1), Err(Refusal::Busy));
        assert_eq!(t.settle(&3, 1), Settled::Fits);
        assert_eq!(t.settle(&3, 100), Settled::Fits);
        assert_eq!(t.settle(&4, 101), Settled::Busy);
        // until written, a response holds its slot; then everything is free
        for id in 1..=6 {
            t.end_inbound(&id);
        }
        assert_eq!(t.pending_bytes(), 0);
        assert_eq!(t.settle(&3, 5), Settled::Gone, "an ended request");
        // peers that left are forgotten, and addresses hold nothing
        for peer in ["a", "a2", "b", "c", "d", "e"] {
            t.forget(peer);
        }
        assert_eq!(t.peers_held(), 0);
    }

    #[test]
    fn redial_backs_off_until_a_connection_holds() {
        let mut r = Redial::default();
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + std::time::Duration::from_secs(s);
        assert!(r.attempt("a", t0), "first dial is immediate");
        assert!(!r.attempt("a", at(4)));
        assert!(r.attempt("a", at(5)));
        // connected, dropped after 1 s (banned): the wait keeps growing
        r.connected("a", at(5));
        r.closed("a", at(6));
        assert!(!r.attempt("a", at(14)));
        assert!(r.attempt("a", at(15)), "10 s after the second attempt");
        assert!(!r.attempt("a", at(15 + 19)));
        assert!(r.attempt("a", at(15 + 20)));
        // a connection that held for a minute resets it: re-dial at once after it drops
        r.connected("a", at(40));
        r.closed("a", at(100));
        assert!(r.attempt("a", at(100)));
        // the wait is capped
        let mut c = Redial::default();
        let mut now = t0;
        for _ in 0..40 {
            while !c.attempt("b", now) {
                now += std::time::Duration::from_secs(1);
            }
        }
        assert!(!c.attempt("b", now + REDIAL_MAX - std::time::Duration::from_secs(1)));
        assert!(c.attempt("b", now + REDIAL_MAX));
    }
}
