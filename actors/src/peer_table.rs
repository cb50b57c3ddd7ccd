//! PeerManager's bookkeeping, as plain data: offences and bans, sync in progress, inbound
//! request budgets, artifact fetches in flight.

use std::collections::{HashMap, HashSet};

/// Offences after which a peer is banned for the rest of the process.
pub const BAN_AFTER_OFFENCES: u32 = 3;
/// Inbound requests served at once per peer; more count as a flood. A well-behaved node keeps
/// at most [`MAX_ARTIFACT_REQUESTS`] artifact requests and one log request in flight.
pub const MAX_INBOUND_PER_PEER: u32 = 8;
/// Requests accepted from one peer per second; a syncing peer needs far fewer (one log page at
/// a time, four artifact requests at a time).
pub const MAX_REQUESTS_PER_SECOND: u32 = 500;

#[derive(Debug, Default)]
pub struct PeerTable {
    offences: HashMap<String, u32>,
    banned: HashSet<String>,
    syncing: HashSet<String>,
    inbound: HashMap<String, u32>,
    /// Per peer: the start of the current one-second window and the requests in it.
    rate: HashMap<String, (std::time::Instant, u32)>,
}

impl PeerTable {
    /// Counts an offence; true when it bans the peer now.
    pub fn offend(&mut self, peer: &str) -> bool {
        let n = self.offences.entry(peer.to_string()).or_default();
        *n += 1;
        *n >= BAN_AFTER_OFFENCES && self.banned.insert(peer.to_string())
    }

    pub fn offences(&self, peer: &str) -> u32 {
        self.offences.get(peer).copied().unwrap_or(0)
    }

    pub fn is_banned(&self, peer: &str) -> bool {
        self.banned.contains(peer)
    }

    /// Marks a sync with `peer` as started; false if one is already running.
    pub fn start_sync(&mut self, peer: &str) -> bool {
        self.syncing.insert(peer.to_string())
    }

    pub fn end_sync(&mut self, peer: &str) {
        self.syncing.remove(peer);
    }

    /// Takes one inbound request slot; false when the peer is over its budget (too many at
    /// once, or too many this second).
    pub fn begin_inbound(&mut self, peer: &str, now: std::time::Instant) -> bool {
        let (start, count) = self.rate.entry(peer.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= std::time::Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        if *count > MAX_REQUESTS_PER_SECOND {
            return false;
        }
        let n = self.inbound.entry(peer.to_string()).or_default();
        if *n >= MAX_INBOUND_PER_PEER {
            return false;
        }
        *n += 1;
        true
    }

    pub fn end_inbound(&mut self, peer: &str) {
        if let Some(n) = self.inbound.get_mut(peer) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Artifact fetches: one per cid, each peer tried once, at most [`MAX_ARTIFACT_REQUESTS`] requests
/// on the wire at once (the rest wait in a bounded queue), so a node that learns many records at
/// once never floods the peer that sent them.
#[derive(Debug, Default)]
pub struct ArtifactFetches {
    tried: HashMap<String, HashSet<String>>,
    waiting: std::collections::VecDeque<(String, Option<String>)>,
    requests: usize,
}

/// Artifact requests on the wire at once.
pub const MAX_ARTIFACT_REQUESTS: usize = 4;
/// Artifacts tracked (fetching or waiting) at once; more are dropped and fetched on demand.
pub const MAX_ARTIFACT_FETCHES: usize = 100_000;

impl ArtifactFetches {
    /// Starts tracking `cid`; false when it is already tracked or too many are.
    pub fn begin(&mut self, cid: &str) -> bool {
        if self.tried.contains_key(cid) || self.tried.len() >= MAX_ARTIFACT_FETCHES {
            return false;
        }
        self.tried.insert(cid.to_string(), HashSet::new());
        true
    }

    /// Queues a tracked cid to be requested when a request slot frees up.
    pub fn enqueue(&mut self, cid: &str, prefer: Option<String>) {
        self.waiting.push_back((cid.to_string(), prefer));
    }

    /// The next queued cid, if a request slot is free (the slot is taken).
    pub fn next_to_request(&mut self) -> Option<(String, Option<String>)> {
        if self.requests >= MAX_ARTIFACT_REQUESTS {
            return None;
        }
        let next = self.waiting.pop_front()?;
        self.requests += 1;
        Some(next)
    }

    /// A request finished (answered or failed): its slot is free again.
    pub fn request_done(&mut self) {
        self.requests = self.requests.saturating_sub(1);
    }

    /// The first of `candidates` not tried yet for `cid`, marked as tried.
    pub fn next_peer<'a>(
        &mut self,
        cid: &str,
        candidates: impl IntoIterator<Item = &'a String>,
    ) -> Option<String> {
        let tried = self.tried.get_mut(cid)?;
        let peer = candidates
            .into_iter()
            .find(|p| !tried.contains(*p))?
            .clone();
        tried.insert(peer.clone());
        Some(peer)
    }

    pub fn finish(&mut self, cid: &str) {
        self.tried.remove(cid);
    }

    pub fn in_flight(&self) -> usize {
        self.tried.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_offences_ban_once() {
        let mut t = PeerTable::default();
        assert!(!t.offend("p"));
        assert!(!t.offend("p"));
        assert!(t.offend("p"));
        assert!(!t.offend("p"), "banning happens once");
        assert!(t.is_banned("p"));
        assert_eq!(t.offences("p"), 4);
    }

    #[test]
    fn inbound_budget_and_sync_flags() {
        let mut t = PeerTable::default();
        let now = std::time::Instant::now();
        for _ in 0..MAX_INBOUND_PER_PEER {
            assert!(t.begin_inbound("p", now));
        }
        assert!(!t.begin_inbound("p", now));
        t.end_inbound("p");
        assert!(t.begin_inbound("p", now));
        // a burst beyond the per-second rate is refused even when each is answered at once
        let mut q = PeerTable::default();
        let refused = (0..MAX_REQUESTS_PER_SECOND + 10)
            .filter(|_| {
                let ok = q.begin_inbound("q", now);
                q.end_inbound("q");
                !ok
            })
            .count();
        assert_eq!(refused, 10);
        let later = now + std::time::Duration::from_secs(1);
        assert!(q.begin_inbound("q", later));
        assert!(t.start_sync("p") && !t.start_sync("p"));
        t.end_sync("p");
        assert!(t.start_sync("p"));
    }

    #[test]
    fn artifact_requests_are_capped_and_queued() {
        let mut f = ArtifactFetches::default();
        for i in 0..10 {
            let cid = format!("c{i}");
            assert!(f.begin(&cid));
            f.enqueue(&cid, None);
        }
        let started: Vec<_> = std::iter::from_fn(|| f.next_to_request()).collect();
        assert_eq!(started.len(), MAX_ARTIFACT_REQUESTS);
        f.request_done();
        assert_eq!(f.next_to_request().map(|c| c.0).as_deref(), Some("c4"));
        assert!(f.next_to_request().is_none());
    }

    #[test]
    fn artifact_fetch_tries_each_peer_once() {
        let mut f = ArtifactFetches::default();
        let peers = vec!["a".to_string(), "b".to_string()];
        assert!(f.begin("c1"));
        assert!(!f.begin("c1"));
        assert_eq!(f.next_peer("c1", &peers).as_deref(), Some("a"));
        assert_eq!(f.next_peer("c1", &peers).as_deref(), Some("b"));
        assert_eq!(f.next_peer("c1", &peers), None);
        f.finish("c1");
        assert_eq!(f.in_flight(), 0);
    }
}
