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

/// Why an inbound request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the per-second rate: answered "busy"; only the first refusal of a window counts as
    /// an offence, so a peer that keeps flooding is banned after a few seconds and one that
    /// briefly asked too fast is not.
    Rate { offence: bool },
    /// More requests in flight at once than any honest node keeps: an offence every time.
    InFlight,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    inbound: HashMap<String, u32>,
    /// Per peer: the start of the current one-second window and the requests in it.
    rate: HashMap<String, (std::time::Instant, u32)>,
}

impl PeerTable {
    /// Takes one inbound request slot, or says why the peer is over its budget (too many at
    /// once, or too many this second).
    pub fn begin_inbound(&mut self, peer: &str, now: std::time::Instant) -> Result<(), Refusal> {
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
        let n = self.inbound.entry(peer.to_string()).or_default();
        if *n >= MAX_INBOUND_PER_PEER {
            return Err(Refusal::InFlight);
        }
        *n += 1;
        Ok(())
    }

    pub fn end_inbound(&mut self, peer: &str) {
        if let Some(n) = self.inbound.get_mut(peer) {
            *n = n.saturating_sub(1);
        }
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
        for _ in 0..MAX_INBOUND_PER_PEER {
            assert!(t.begin_inbound("p", now).is_ok());
        }
        assert_eq!(t.begin_inbound("p", now), Err(Refusal::InFlight));
        t.end_inbound("p");
        assert!(t.begin_inbound("p", now).is_ok());
        // a burst beyond the per-second rate is refused even when each is answered at once;
        // only the first refusal of the window is an offence
        let mut q = PeerTable::default();
        let refusals: Vec<Refusal> = (0..MAX_REQUESTS_PER_SECOND + 10)
            .filter_map(|_| {
                let r = q.begin_inbound("q", now);
                q.end_inbound("q");
                r.err()
            })
            .collect();
        assert_eq!(refusals.len(), 10);
        assert_eq!(refusals[0], Refusal::Rate { offence: true });
        assert!(refusals[1..]
            .iter()
            .all(|r| *r == Refusal::Rate { offence: false }));
        let later = now + std::time::Duration::from_secs(1);
        assert!(q.begin_inbound("q", later).is_ok());
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
