//! PeerManager's bookkeeping, as plain data: offences and bans, sync in progress, inbound
//! request budgets, artifact fetches in flight.

use std::collections::{HashMap, HashSet};

/// Offences after which a peer is banned for the rest of the process.
pub const BAN_AFTER_OFFENCES: u32 = 3;
/// Inbound sync requests served at once per peer; more count as a flood.
pub const MAX_INBOUND_PER_PEER: u32 = 2;

#[derive(Debug, Default)]
pub struct PeerTable {
    offences: HashMap<String, u32>,
    banned: HashSet<String>,
    syncing: HashSet<String>,
    inbound: HashMap<String, u32>,
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

    /// Takes one inbound request slot; false when the peer is over its budget.
    pub fn begin_inbound(&mut self, peer: &str) -> bool {
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

/// Artifact fetches: one in flight per cid, each peer tried once.
#[derive(Debug, Default)]
pub struct ArtifactFetches {
    tried: HashMap<String, HashSet<String>>,
}

/// Most artifact fetches in flight at once.
pub const MAX_ARTIFACT_FETCHES: usize = 256;

impl ArtifactFetches {
    /// Starts tracking `cid`; false when it is already being fetched or too many are.
    pub fn begin(&mut self, cid: &str) -> bool {
        if self.tried.contains_key(cid) || self.tried.len() >= MAX_ARTIFACT_FETCHES {
            return false;
        }
        self.tried.insert(cid.to_string(), HashSet::new());
        true
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
        assert!(t.begin_inbound("p") && t.begin_inbound("p"));
        assert!(!t.begin_inbound("p"));
        t.end_inbound("p");
        assert!(t.begin_inbound("p"));
        assert!(t.start_sync("p") && !t.start_sync("p"));
        t.end_sync("p");
        assert!(t.start_sync("p"));
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
