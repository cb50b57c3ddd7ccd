//! Per-connection limits of the legacy bridge, without IO: a request budget (token bucket).
//! (Offences count in `peer_score`, shared with the mesh.)

use std::time::{Duration, Instant};

/// Requests (`code_request`, `ping`, `pex_request`, the sync requests) a peer may send: `rate`
/// per second on average, `burst` at once. A reference node asks for one artifact per record it
/// syncs, so a 5,000-record sync is a burst of 5,000 requests; the budget allows that and stops
/// a flood.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    /// The last second an over-budget request was counted as an offence.
    last_offence: Option<Instant>,
    /// Requests refused since `window` began (one second).
    refused: u32,
    window: Instant,
}

/// Requests refused within one second past which a peer is flooding, not merely asking fast:
/// it is cut off at once (an honest peer never sends more than its budget refills).
pub const FLOOD_REFUSALS: u32 = 2_000;

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    Serve,
    /// Over budget: drop it; `offence` for the first refusal of each second, `flood` once
    /// more than [`FLOOD_REFUSALS`] were refused within one second.
    Refuse {
        offence: bool,
        flood: bool,
    },
}

impl Budget {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Budget {
        Budget {
            rate,
            burst,
            tokens: burst,
            at: now,
            last_offence: None,
            refused: 0,
            window: now,
        }
    }

    pub fn spend(&mut self, now: Instant) -> Spend {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Spend::Serve;
        }
        let offence = self
            .last_offence
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if offence {
            self.last_offence = Some(now);
        }
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1) {
            (self.window, self.refused) = (now, 0);
        }
        self.refused += 1;
        Spend::Refuse {
            offence,
            flood: self.refused > FLOOD_REFUSALS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_served_and_a_flood_refused_with_one_offence_per_second() {
        let t0 = Instant::now();
        let mut b = Budget::new(100.0, 1_000.0, t0);
        for _ in 0..1_000 {
            assert_eq!(b.spend(t0), Spend::Serve);
        }
        assert_eq!(
            b.spend(t0),
            Spend::Refuse {
                offence: true,
                flood: false
            }
        );
        assert_eq!(
            b.spend(t0),
            Spend::Refuse {
                offence: false,
                flood: false
            }
        );
        // 10 ms later one token has come back
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(b.spend(t1), Spend::Serve);
        assert_eq!(
            b.spend(t1),
            Spend::Refuse {
                offence: false,
                flood: false
            }
        );
        let t2 = t0 + Duration::from_millis(1_005);
        assert_eq!(b.spend(t2), Spend::Serve, "refilled");
        let mut first_refusal = None;
        for _ in 0..200 {
            if let Spend::Refuse { offence, .. } = b.spend(t2) {
                first_refusal.get_or_insert(offence);
            }
        }
        assert_eq!(first_refusal, Some(true), "a new second, a new offence");
    }

    #[test]
    fn a_sustained_flood_is_told_apart_from_a_fast_peer() {
        let t0 = Instant::now();
        let mut b = Budget::new(100.0, 100.0, t0);
        let mut floods = 0;
        for _ in 0..(100 + FLOOD_REFUSALS + 5) {
            if let Spend::Refuse { flood: true, .. } = b.spend(t0) {
                floods += 1;
            }
        }
        assert_eq!(floods, 5, "past FLOOD_REFUSALS refusals in one second");
        // a second later the count starts again
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(
            b.spend(t1),
            Spend::Serve | Spend::Refuse { flood: false, .. }
        ));
    }
}

/// Full sync answers (records, control events, tasks) one address gets without waiting: a
/// reference node asks for each kind once per connection (0.6.3 again every 30 s or more), and
/// a few nodes may share an address behind one router.
pub const SYNC_BURST: f64 = 8.0;
/// After the burst, one answer of each kind per this long per address: each answer reads what
/// it serves from the store, so a peer that asks again and again (or reconnects to ask) would
/// otherwise make the node read its whole log over and over.
pub const SYNC_COOLDOWN: Duration = Duration::from_secs(30);
/// A request that would wait longer than this is dropped instead (the asker is far past any
/// honest pace, and every waiting answer holds a task).
pub const SYNC_MAX_WAIT: Duration = Duration::from_secs(300);

/// When each address may be answered next, per kind of sync (a token bucket per address and
/// kind whose debt is a wait): plain data, shared by the bridge's connections.
#[derive(Debug, Default)]
pub struct SyncTurns {
    /// (address, kind) → tokens (negative: answers already promised ahead) as of `at`.
    buckets: std::collections::HashMap<(std::net::IpAddr, u8), (f64, Instant)>,
}

impl SyncTurns {
    /// Most addresses remembered; past it, those whose bucket is full again are forgotten.
    const MAX: usize = 4_096;

    /// Takes a turn for an answer of `kind` to `address` (see
    /// [`crate::addresses::network_of`]): `Some(when it may start)`, or `None` when that would
    /// be more than [`SYNC_MAX_WAIT`] away (drop the request).
    pub fn reserve(
        &mut self,
        address: std::net::IpAddr,
        kind: u8,
        now: Instant,
    ) -> Option<Instant> {
        let per_second = 1.0 / SYNC_COOLDOWN.as_secs_f64();
        if self.buckets.len() >= Self::MAX {
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < SYNC_BURST
            });
            if self.buckets.len() >= Self::MAX {
                // thousands of addresses all asking at once: start over rather than scan on
                self.buckets.clear();
            }
        }
        let (tokens, at) = self
            .buckets
            .entry((address, kind))
            .or_insert((SYNC_BURST, now));
        let refilled = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second)
            .min(SYNC_BURST);
        let after = refilled - 1.0;
        let wait = if after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-after / per_second)
        };
        if wait > SYNC_MAX_WAIT {
            return None;
        }
        (*tokens, *at) = (after, now);
        Some(now + wait)
    }

    /// Gives back a turn taken for an answer that was never sent (its connection closed while
    /// it waited), so neighbours behind the same address do not wait for it.
    pub fn give_back(&mut self, address: std::net::IpAddr, kind: u8) {
        if let Some((tokens, _)) = self.buckets.get_mut(&(address, kind)) {
            *tokens = (*tokens + 1.0).min(SYNC_BURST);
        }
    }
}

#[cfg(test)]
mod sync_turn_tests {
    use super::*;

    #[test]
    fn an_address_gets_a_burst_of_answers_then_one_per_cooldown_and_then_none() {
        let mut turns = SyncTurns::default();
        let now = Instant::now();
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..SYNC_BURST as usize {
            assert_eq!(turns.reserve(a, 0, now), Some(now));
        }
        // the next waits a cool-down, the one after two
        assert_eq!(turns.reserve(a, 0, now), Some(now + SYNC_COOLDOWN));
        assert_eq!(turns.reserve(a, 0, now), Some(now + 2 * SYNC_COOLDOWN));
        // other kinds and other addresses are counted apart
        assert_eq!(turns.reserve(a, 1, now), Some(now));
        assert_eq!(turns.reserve(b, 0, now), Some(now));
        // past the longest wait: refused, and nothing is promised for it
        let mut last = None;
        for _ in 0..20 {
            last = turns.reserve(a, 0, now);
        }
        assert_eq!(last, None);
        let waits = SYNC_MAX_WAIT.as_secs() / SYNC_COOLDOWN.as_secs();
        assert_eq!(
            turns.reserve(a, 0, now + Duration::from_secs(1)),
            None,
            "still {waits} turns promised"
        );
        // a turn given back (its connection closed while it waited) is the next one's
        let c: std::net::IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..SYNC_BURST as usize {
            turns.reserve(c, 0, now);
        }
        assert_eq!(turns.reserve(c, 0, now), Some(now + SYNC_COOLDOWN));
        turns.give_back(c, 0);
        assert_eq!(turns.reserve(c, 0, now), Some(now + SYNC_COOLDOWN));
        // time pays the debt back
        let later = now + SYNC_COOLDOWN * (waits as u32 + SYNC_BURST as u32 + 2);
        assert_eq!(turns.reserve(a, 0, later), Some(later));
    }
}
