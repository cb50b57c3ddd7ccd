//! One standing per peer, for both transports: offence points ([`crate::refusal::Severity`])
//! that decay with a half-life, so an old mistake fades while a peer that keeps offending
//! crosses its threshold. A libp2p peer is known by its peer id (authenticated by Noise); a
//! reference-protocol peer by its connection's address (plain TCP proves no identity). The
//! PeerManager and the LegacyBridge share one table (`SharedScores`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A peer of either transport.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerRef {
    Mesh(libp2p::PeerId),
    Legacy(std::net::SocketAddr),
}

impl std::fmt::Display for PeerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerRef::Mesh(p) => write!(f, "{p}"),
            PeerRef::Legacy(a) => write!(f, "{a}"),
        }
    }
}

/// Points lose half their weight in this time: three serious offences within minutes ban a
/// mesh peer; the same spread over hours do not.
pub const HALF_LIFE: Duration = Duration::from_secs(600);
/// Points at which a libp2p peer is banned for the rest of the process: three serious offences
/// (forged or malformed data, floods) or six minor ones (lineage refusals, which an honest
/// peer may cause), in a short time.
pub const MESH_BAN_AT: f64 = 6.0;
/// What a limit is met within: the fading of offences made within a minute or so.
const FADE_SLACK: f64 = 0.05;
/// Peers remembered at most; beyond it, the entries that have decayed most are forgotten.
pub const MAX_TRACKED: usize = 4096;

#[derive(Debug, Default)]
pub struct PeerScores {
    points: HashMap<PeerRef, (f64, Instant)>,
    banned: HashSet<PeerRef>,
}

/// The table both transports use.
pub type SharedScores = Arc<Mutex<PeerScores>>;

impl PeerScores {
    /// Adds `points` to `who` at `now`; true when this takes its decayed points to `limit` or
    /// past it for the first time (the caller bans or disconnects it).
    pub fn offend(&mut self, who: &PeerRef, points: u32, limit: f64, now: Instant) -> bool {
        let standing = self.points(who, now) + points as f64;
        self.points.insert(who.clone(), (standing, now));
        if self.points.len() > MAX_TRACKED {
            self.forget_faded(now);
        }
        // offences seconds apart have faded a hair: three serious ones in a short time are
        // 5.99 points, and they must ban as the limit of 6 says
        standing >= limit - FADE_SLACK && self.banned.insert(who.clone())
    }

    /// `who`'s points as of `now` (decayed).
    pub fn points(&self, who: &PeerRef, now: Instant) -> f64 {
        self.points
            .get(who)
            .map_or(0.0, |(p, at)| decayed(*p, *at, now))
    }

    /// Whether `who` crossed its limit (once crossed, for the life of the process).
    pub fn is_banned(&self, who: &PeerRef) -> bool {
        self.banned.contains(who)
    }

    pub fn banned(&self) -> impl Iterator<Item = &PeerRef> {
        self.banned.iter()
    }

    /// Drops the entries that decayed most, keeping the newest half of the bound.
    fn forget_faded(&mut self, now: Instant) {
        let mut standings: Vec<(PeerRef, f64)> = self
            .points
            .iter()
            .map(|(who, (p, at))| (who.clone(), decayed(*p, *at, now)))
            .collect();
        standings.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (who, _) in standings.into_iter().skip(MAX_TRACKED / 2) {
            self.points.remove(&who);
            // a ban is forgotten with its points: the table stays bounded under a flood of
            // fresh identities or addresses, and the worst offenders are the ones kept
            self.banned.remove(&who);
        }
    }
}

fn decayed(points: f64, at: Instant, now: Instant) -> f64 {
    let halves = now.saturating_duration_since(at).as_secs_f64() / HALF_LIFE.as_secs_f64();
    points * 0.5f64.powf(halves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::Severity::{Minor, Serious};

    fn mesh(n: u8) -> PeerRef {
        PeerRef::Mesh(
            libp2p::identity::Keypair::ed25519_from_bytes([n; 32])
                .unwrap()
                .public()
                .to_peer_id(),
        )
    }

    #[test]
    fn three_serious_or_six_minor_offences_in_a_short_time_ban_once() {
        let (mut s, t) = (PeerScores::default(), Instant::now());
        assert!(!s.offend(&mesh(1), Serious.points(), MESH_BAN_AT, t));
        assert!(!s.offend(&mesh(1), Serious.points(), MESH_BAN_AT, t));
        assert!(s.offend(&mesh(1), Serious.points(), MESH_BAN_AT, t));
        assert!(
            !s.offend(&mesh(1), Serious.points(), MESH_BAN_AT, t),
            "banned once"
        );
        assert!(s.is_banned(&mesh(1)));
        for _ in 0..5 {
            assert!(!s.offend(&mesh(2), Minor.points(), MESH_BAN_AT, t));
        }
        assert!(s.offend(&mesh(2), Minor.points(), MESH_BAN_AT, t));
        assert!(!s.is_banned(&mesh(3)));
        // a second apart, they have faded a hair, and still ban
        let at = |secs: u64| t + std::time::Duration::from_secs(secs);
        assert!(!s.offend(&mesh(4), Serious.points(), MESH_BAN_AT, at(0)));
        assert!(!s.offend(&mesh(4), Serious.points(), MESH_BAN_AT, at(1)));
        assert!(s.offend(&mesh(4), Serious.points(), MESH_BAN_AT, at(2)));
    }

    #[test]
    fn offences_fade_with_the_half_life() {
        let (mut s, t) = (PeerScores::default(), Instant::now());
        let legacy = PeerRef::Legacy("127.0.0.1:40000".parse().unwrap());
        assert!(!s.offend(&legacy, 4, MESH_BAN_AT, t));
        assert!((s.points(&legacy, t + HALF_LIFE) - 2.0).abs() < 1e-9);
        // two more serious offences an hour later: 4 → 0.0625, + 4 stays below 6
        let later = t + Duration::from_secs(3600);
        assert!(!s.offend(&legacy, 2, MESH_BAN_AT, later));
        assert!(!s.offend(&legacy, 2, MESH_BAN_AT, later));
        assert!(!s.is_banned(&legacy));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_worst() {
        let (mut s, t) = (PeerScores::default(), Instant::now());
        let worst = PeerRef::Legacy("127.0.0.1:1".parse().unwrap());
        s.offend(&worst, 5, 100.0, t);
        for port in 2..(MAX_TRACKED as u16 + 10) {
            let who = PeerRef::Legacy(format!("127.0.0.1:{port}").parse().unwrap());
            s.offend(&who, 1, 100.0, t);
        }
        assert!(s.points.len() <= MAX_TRACKED);
        assert_eq!(s.points(&worst, t), 5.0, "the worst offender is remembered");
        // bans are bounded with the points: a flood of fresh banned identities does not grow
        // the table, and the worst stays banned
        let mut b = PeerScores::default();
        b.offend(&worst, 50, 10.0, t);
        for port in 2..(MAX_TRACKED as u16 * 2) {
            let who = PeerRef::Legacy(format!("127.0.0.2:{port}").parse().unwrap());
            b.offend(&who, 10, 10.0, t);
        }
        assert!(b.banned.len() <= MAX_TRACKED);
        assert!(b.is_banned(&worst));
    }
}
