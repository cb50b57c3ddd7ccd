//! The node's clock for true deadlines (a challenge's timeout): the system's, or one a test
//! moves by hand, so a dispute that waits 30 minutes for its deadline runs in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Unix seconds, from the system or moved by hand.
#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System,
    Manual {
        now: AtomicI64,
        moved: tokio::sync::watch::Sender<i64>,
    },
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual { now, .. } => {
                write!(f, "Clock::manual({})", now.load(Ordering::SeqCst))
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Source::System))
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: i64) -> Clock {
        Clock(Arc::new(Source::Manual {
            now: AtomicI64::new(start),
            moved: tokio::sync::watch::channel(start).0,
        }))
    }

    pub fn now(&self) -> i64 {
        match &*self.0 {
            Source::System => unix_now(),
            Source::Manual { now, .. } => now.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock `seconds` ahead (the system clock cannot be moved: no effect).
    pub fn advance(&self, seconds: i64) {
        if let Source::Manual { now, moved } = &*self.0 {
            let t = now.fetch_add(seconds, Ordering::SeqCst) + seconds;
            moved.send_replace(t);
        }
    }

    /// Resolves once this clock reads `at` or later.
    pub async fn until(&self, at: i64) {
        match &*self.0 {
            Source::System => loop {
                let left = at.saturating_sub(unix_now());
                if left <= 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(left as u64)).await;
            },
            Source::Manual { moved, .. } => {
                let mut moved = moved.subscribe();
                let _ = moved.wait_for(|now| *now >= at).await;
            }
        }
    }
}

/// Seconds since the Unix epoch (signed timestamps, challenge timeouts): the system clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_by_hand_and_wakes_its_waiters() {
        actix_rt::System::new().block_on(async {
            let clock = Clock::manual(1_000);
            assert_eq!(clock.now(), 1_000);
            let waiter = {
                let clock = clock.clone();
                actix_rt::spawn(async move { clock.until(1_060).await })
            };
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "woke before its time");
            clock.advance(59);
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "woke a second early");
            clock.advance(1);
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken when the clock reached its time")
                .unwrap();
            assert_eq!(clock.now(), 1_060);
        });
    }
}
