//! Restarting failed actors: bounded retries with backoff. actix's `Supervisor` restarts a
//! stopped actor at once and forever, with the same address (so the registry stays valid);
//! [`Restarts`] adds the policy on top: each restart waits longer before the actor handles
//! messages again (they queue meanwhile), and too many restarts in a window give up and report
//! a [`Failure`], on which `spored run` stops the node with the reason instead of looping.
//!
//! An actor stops itself when it meets an error it cannot handle (the GossipRouter on a storage
//! error). A panic is a bug, not an error to retry: actix runs actors as tasks of the System's
//! runtime, which would catch the panic and leave the node running without that actor (serving
//! the explorer with no network, say). [`report_panics`] makes every panic, on any thread of the
//! process, a [`Failure`]: the node stops with the panic as its reason and exits non-zero, and a
//! service manager restarts it whole.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{error, warn};

/// How many restarts, how soon.
#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more gives up.
    pub max_restarts: usize,
    pub window: Duration,
    /// The wait before the first restart; doubles with each restart in the window.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What to do about one more restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    RestartAfter(Duration),
    GiveUp,
}

/// The node's first unrecoverable actor failure, for whoever runs the node.
#[derive(Clone, Default)]
pub struct Failure {
    inner: Arc<(Mutex<Option<String>>, tokio::sync::Notify)>,
}

impl Failure {
    pub fn report(&self, reason: String) {
        let mut first = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(reason);
        }
        self.inner.1.notify_waiters();
        self.inner.1.notify_one();
    }

    pub fn reason(&self) -> Option<String> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a failure is reported; returns its reason.
    pub async fn wait(&self) -> String {
        loop {
            let notified = self.inner.1.notified();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }
}

/// Makes every later panic in this process (an actor's handler, a blocking task, a worker
/// thread) report a [`Failure`] naming the thread, the message and the place, after the usual
/// panic message is printed.
pub fn report_panics(failure: Failure) {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let place = info
            .location()
            .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
        let reason = format!(
            "a panic on thread {}: {message}{place}",
            thread.name().unwrap_or("unnamed")
        );
        error!(reason, "panic: the node stops");
        failure.report(reason);
    }));
}

/// One actor's restart history; lives in the actor, which actix keeps across restarts.
pub struct Restarts {
    name: &'static str,
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    next: Option<Verdict>,
    failure: Failure,
}

impl Restarts {
    pub fn new(name: &'static str, policy: RestartPolicy, failure: Failure) -> Self {
        Restarts {
            name,
            policy,
            recent: VecDeque::new(),
            next: None,
            failure,
        }
    }

    /// Counts a restart at `now` and decides how it goes.
    pub fn record(&mut self, now: Instant) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts {
            return Verdict::GiveUp;
        }
        self.recent.push_back(now);
        let doublings = (self.recent.len() - 1).min(16) as u32;
        Verdict::RestartAfter(
            self.policy
                .first_backoff
                .saturating_mul(1 << doublings)
                .min(self.policy.max_backoff),
        )
    }

    /// For `Supervised::restarting`.
    pub fn restarting(&mut self) {
        let verdict = self.record(Instant::now());
        match verdict {
            Verdict::RestartAfter(wait) => {
                warn!(
                    actor = self.name,
                    wait_ms = wait.as_millis() as u64,
                    "actor failed: restarting"
                )
            }
            Verdict::GiveUp => error!(
                actor = self.name,
                restarts = self.policy.max_restarts,
                window_s = self.policy.window.as_secs(),
                "actor keeps failing: giving up"
            ),
        }
        self.next = Some(verdict);
    }

    /// For `Actor::started`: after a restart, holds the mailbox for the backoff; after giving
    /// up, holds it for good and reports the failure.
    pub fn started<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        match self.next.take() {
            None => {}
            Some(Verdict::RestartAfter(wait)) => {
                ctx.wait(actix::fut::wrap_future(actix_rt::time::sleep(wait)));
            }
            Some(Verdict::GiveUp) => {
                self.failure.report(format!(
                    "{} failed {} times within {} s",
                    self.name,
                    self.policy.max_restarts + 1,
                    self.policy.window.as_secs()
                ));
                ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up_within_the_window() {
        let mut r = Restarts::new("x", policy(), Failure::default());
        let t0 = Instant::now();
        let ms = |v| Verdict::RestartAfter(Duration::from_millis(v));
        assert_eq!(r.record(t0), ms(100));
        assert_eq!(r.record(t0 + Duration::from_secs(1)), ms(200));
        assert_eq!(r.record(t0 + Duration::from_secs(2)), ms(300), "capped");
        assert_eq!(r.record(t0 + Duration::from_secs(3)), Verdict::GiveUp);
        // restarts age out of the window: an actor that fails rarely is always restarted
        let mut rare = Restarts::new("y", policy(), Failure::default());
        for i in 0..20 {
            assert_eq!(rare.record(t0 + Duration::from_secs(61 * i)), ms(100));
        }
    }

    /// A real actor under actix's Supervisor, stopping itself on request.
    struct Flaky {
        restarts: Restarts,
        handled: Arc<Mutex<Vec<Instant>>>,
    }

    impl Actor for Flaky {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            self.restarts.started(ctx);
        }
    }

    impl Supervised for Flaky {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarts.restarting();
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Work {
        fail: bool,
    }

    impl Handler<Work> for Flaky {
        type Result = ();
        fn handle(&mut self, msg: Work, ctx: &mut Context<Self>) {
            self.handled.lock().unwrap().push(Instant::now());
            if msg.fail {
                ctx.stop();
            }
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Panic;

    impl Handler<Panic> for Flaky {
        type Result = ();
        fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
            panic!("an actor's bug");
        }
    }

    #[test]
    fn a_panic_in_an_actor_is_reported_as_the_nodes_failure() {
        actix_rt::System::new().block_on(async {
            let failure = Failure::default();
            report_panics(failure.clone());
            let addr = Flaky {
                restarts: Restarts::new("panicky", policy(), failure.clone()),
                handled: Arc::default(),
            }
            .start();
            addr.do_send(Panic);
            let reason = tokio::time::timeout(Duration::from_secs(5), failure.wait())
                .await
                .expect("the panic was reported");
            let _ = std::panic::take_hook(); // the default hook again, for the other tests
            assert!(reason.contains("an actor's bug"), "{reason}");
            assert!(reason.contains("supervision.rs:"), "{reason}");
            // without the report the System would go on as if nothing happened: it does run on
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        });
    }

    #[test]
    fn a_failing_actor_is_restarted_after_its_backoff_and_given_up_on_after_too_many_failures() {
        actix_rt::System::new().block_on(async {
            let failure = Failure::default();
            let handled = Arc::new(Mutex::new(Vec::new()));
            let addr = {
                let (failure, handled) = (failure.clone(), handled.clone());
                Supervisor::start(move |_| Flaky {
                    restarts: Restarts::new("flaky", policy(), failure.clone()),
                    handled: handled.clone(),
                })
            };
            // fail, then work: the second message waits for the 100 ms backoff, same address
            addr.send(Work { fail: true }).await.unwrap();
            addr.send(Work { fail: false }).await.unwrap();
            {
                let h = handled.lock().unwrap();
                assert_eq!(h.len(), 2);
                assert!(h[1] - h[0] >= Duration::from_millis(100), "no backoff");
            }
            assert!(failure.reason().is_none());
            // three more failures: 200, 300 ms, then it gives up and reports
            for _ in 0..3 {
                addr.send(Work { fail: true }).await.unwrap();
            }
            let reason = tokio::time::timeout(Duration::from_secs(5), failure.wait())
                .await
                .expect("failure reported");
            assert!(reason.contains("flaky failed 4 times"), "{reason}");
            // and it no longer handles anything
            addr.do_send(Work { fail: false });
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(handled.lock().unwrap().len(), 5);
        });
    }
}
