//! The dispute cycle, end to end in one process (issue #18): four verify-only nodes built with
//! `Node::builder` on 127.0.0.1, their reruns given by a deterministic source instead of
//! training. An honest root is verified by all of them; a fabricated child is re-run, found
//! wrong, challenged, answered by the others' reruns, disputed by its challengers and rejected on
//! every node: off the frontier, its parent back. The real runner keeps its own end-to-end test
//! (`tests/verify.rs`); this one exercises the actors' wiring (events, planner, arbiter, writer)
//! in milliseconds. A second test moves the nodes' clock by hand past a challenge's 30-minute
//! deadline.

#![allow(clippy::disallowed_methods)] // this process owns its stores

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{identity, loopback_options, record, TASK};
use libp2p::Multiaddr;
use spore_actors::clock::Clock;
use spore_actors::experiment_runner::RunnerConfig;
use spore_actors::messages::GetListenAddrs;
use spore_actors::node::{Mode, Node, Work};
use spore_actors::verdict::Outcome;
use spore_actors::verifier::{RerunSource, VerifyOptions};
use spore_actors::Store;
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Goal, Signed as _, Status};

struct Verifier {
    _dir: tempfile::TempDir,
    node: Node,
    addr: Multiaddr,
}

/// A verify-only node that checks every record of class `CPU` (probability 1) with `rerun`.
async fn start_verifier(
    seed: u8,
    peers: Vec<Multiaddr>,
    rerun: RerunSource,
    clock: Clock,
) -> Verifier {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open_with_clock(&dir.path().join("db/spored.redb"), clock).unwrap());
    let work = Work {
        // never started: the rerun source answers
        runner: RunnerConfig {
            program: "/nonexistent/spored".into(),
            work_dir: dir.path().join("runs"),
            resource: 100,
            memory_limit_mb: 64,
            device: "cpu".into(),
            eval_tokens: None,
            show_progress: false,
            grace: None,
            kernel_cache: None,
            slots: Vec::new(),
        },
        verify: VerifyOptions {
            seed: [seed; 32],
            gpu_model: "CPU".into(),
            probability: 1.0,
            datasets_dir: dir.path().join("datasets"),
            sandbox: Default::default(),
            rerun: Some(rerun),
        },
    };
    let node = Node::builder(store, loopback_options(seed, peers))
        .mode(Mode::VerifyOnly(work))
        .spawn()
        .unwrap();
    let addr = loop {
        let addrs = node.registry.peers.send(GetListenAddrs).await.unwrap();
        if let Some(a) = addrs.into_iter().next() {
            break a.with(libp2p::multiaddr::Protocol::P2p(node.registry.peer_id));
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    Verifier {
        _dir: dir,
        node,
        addr,
    }
}

/// Polls `check` every 20 ms, for at most 30 s.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn outcome(v: &Verifier, id: &str) -> Option<Outcome> {
    let read = v.node.registry.store.read().unwrap();
    read.verdict_summary(id).unwrap().and_then(|s| s.outcome)
}

fn verified_by(v: &Verifier, id: &str) -> usize {
    let read = v.node.registry.store.read().unwrap();
    read.verdict_summary(id)
        .unwrap()
        .map_or(0, |s| s.verified_by as usize)
}

fn frontier(v: &Verifier) -> Vec<String> {
    let read = v.node.registry.store.read().unwrap();
    read.frontier_ids(TASK, Goal::Minimize).unwrap()
}

#[test]
fn a_fabricated_claim_is_challenged_answered_disputed_and_rejected_on_every_node() {
    actix_rt::System::new().block_on(async {
        // every rerun of the fabricated record gives 1.9; any other record reruns to its claim
        let rerun = RerunSource(Arc::new(|r: &ExperimentRecord| {
            if r.description == "fabricated" {
                1.9
            } else {
                r.val_bpb.value()
            }
        }));
        let mut nodes: Vec<Verifier> = Vec::new();
        for seed in 1..=4 {
            let peers = nodes.iter().map(|n| n.addr.clone()).collect();
            nodes.push(start_verifier(seed, peers, rerun.clone(), Clock::system()).await);
        }
        let publish = |node: &Verifier, r: &ExperimentRecord| {
            let registry = node.node.registry.clone();
            let body = Message::Experiment(r.clone()).encode_body();
            async move { registry.publish_local(vec![body]).await.unwrap() }
        };

        // an honest root (its publisher is no node here): all four verify it
        let root = record(&identity(20), None, TASK, Status::Keep, 2.0, 1_767_225_600);
        assert_eq!(publish(&nodes[0], &root).await.accepted, 1);
        wait_until("four verifications of the root on every node", || {
            nodes.iter().all(|n| verified_by(n, &root.id) == 4)
        })
        .await;

        // a liar claims 1.5 for a child that reruns to 1.9
        let mut fake = record(
            &identity(21),
            Some(&root.id),
            TASK,
            Status::Keep,
            1.5,
            1_767_225_700,
        );
        fake.description = "fabricated".into();
        fake.sign_with(&identity(21));
        let started = Instant::now();
        assert_eq!(publish(&nodes[1], &fake).await.accepted, 1);
        wait_until("the fabricated record rejected on every node", || {
            nodes
                .iter()
                .all(|n| outcome(n, &fake.id) == Some(Outcome::Rejected))
        })
        .await;
        let rejected = started.elapsed();
        for n in &nodes {
            assert_eq!(
                frontier(n),
                vec![root.id.clone()],
                "the parent is back alone"
            );
        }
        // the challengers' arbiters sign their disputes once their challenges are decided
        let kinds = |n: &Verifier| -> Vec<String> {
            let read = n.node.registry.store.read().unwrap();
            let events = read.events_about(&fake.id).unwrap();
            events.into_iter().map(|e| e.event_type).collect()
        };
        wait_until("the disputes on every node", || {
            nodes
                .iter()
                .all(|n| kinds(n).iter().any(|k| k == "dispute"))
        })
        .await;
        eprintln!(
            "4 nodes: rejected {:.0} ms after the claim, disputed after {:.0} ms",
            rejected.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
        for n in &nodes {
            let kinds = kinds(n);
            for kind in ["challenge", "challenge_response", "dispute"] {
                assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
            }
            assert_eq!(outcome(n, &fake.id), Some(Outcome::Rejected));
        }
        for n in &nodes {
            n.node.shutdown().await;
        }
    });
}

/// Rerun figures: the fabricated record gives 1.9, any other its claim.
fn honest_reruns() -> RerunSource {
    RerunSource(Arc::new(|r: &ExperimentRecord| {
        if r.description == "fabricated" {
            1.9
        } else {
            r.val_bpb.value()
        }
    }))
}

fn events_of(v: &Verifier, id: &str, kind: &str) -> usize {
    let read = v.node.registry.store.read().unwrap();
    let events = read.events_about(id).unwrap();
    events.iter().filter(|e| e.event_type == kind).count()
}

/// With two verifiers, each challenge gets one response (the other's): too few to decide at
/// once, so it waits for its deadline. The nodes' clock is moved past it by hand; the arbiters
/// then have the store decide it by the responses, sign their disputes, and the record is
/// rejected on both.
#[test]
fn a_challenge_with_too_few_responses_is_decided_at_its_deadline_by_the_nodes_clock() {
    actix_rt::System::new().block_on(async {
        let clock = Clock::manual(spore_actors::unix_now());
        let a = start_verifier(1, vec![], honest_reruns(), clock.clone()).await;
        let b = start_verifier(2, vec![a.addr.clone()], honest_reruns(), clock.clone()).await;
        let root = record(
            &identity(20),
            None,
            TASK,
            Status::Keep,
            2.0,
            clock.now() - 60,
        );
        let mut fake = record(
            &identity(21),
            Some(&root.id),
            TASK,
            Status::Keep,
            1.5,
            clock.now(),
        );
        fake.description = "fabricated".into();
        fake.sign_with(&identity(21));
        for r in [&root, &fake] {
            let body = Message::Experiment(r.clone()).encode_body();
            let summary = a.node.registry.publish_local(vec![body]).await.unwrap();
            assert_eq!(summary.accepted, 1);
        }
        wait_until("two challenges, each answered once, on both nodes", || {
            [&a, &b].iter().all(|n| {
                events_of(n, &fake.id, "challenge") == 2
                    && events_of(n, &fake.id, "challenge_response") == 2
            })
        })
        .await;
        // nothing decides it before its time
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        for n in [&a, &b] {
            assert_eq!(outcome(n, &fake.id), None, "decided before the deadline");
        }
        let started = Instant::now();
        clock.advance(31 * 60);
        wait_until("the record rejected at the deadline on both nodes", || {
            [&a, &b].iter().all(|n| {
                outcome(n, &fake.id) == Some(Outcome::Rejected)
                    && events_of(n, &fake.id, "dispute") == 2
            })
        })
        .await;
        eprintln!(
            "2 nodes: decided and disputed {:.0} ms after the clock passed the deadline",
            started.elapsed().as_secs_f64() * 1000.0
        );
        for n in [&a, &b] {
            assert_eq!(frontier(n), vec![root.id.clone()]);
            n.node.shutdown().await;
        }
    });
}
