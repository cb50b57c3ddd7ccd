//! Verdicts from signed control events, through the real store (issue #7): verification,
//! challenge → responses → decision, the frontier after a rejection, order independence, and the
//! events that must not count.

#![allow(clippy::disallowed_methods)] // this process owns its stores

use spore_actors::ingest::ingest;
use spore_actors::verdict::Outcome;
use spore_actors::Store;
use spore_spec::json::{object, Value};
use spore_spec::wire::Message;
use spore_spec::{
    ControlEvent, ExperimentRecord, Goal, Identity, Number, Signed, Status, TaskManifest,
};

/// Recent times: a challenge older than the timeout (30 min) would already be decided.
fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 100
    })
}
const CLASS: &str = "CPU_X86_64";

fn who(n: u8) -> Identity {
    Identity::from_seed([n; 32])
}

fn task() -> TaskManifest {
    let mut m = TaskManifest {
        name: "verdicts".into(),
        task_type: "ml_train".into(),
        artifact_type: "burn_train_config".into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        time_budget: 60,
        created_by: who(1).node_id(),
        timestamp: t0(),
        version: 1,
        ..Default::default()
    };
    m.sign_with(&who(1));
    m
}

fn record(by: &Identity, parent: Option<&ExperimentRecord>, val: f64, t: i64) -> ExperimentRecord {
    let mut r = ExperimentRecord {
        parent: parent.map(|p| p.id.clone()),
        depth: parent.map_or(0, |p| p.depth + 1),
        code_cid: spore_spec::crypto::sha256_hex(format!("config {t}").as_bytes()),
        dataset_cid: "kjv".into(),
        time_budget: 60,
        val_bpb: Number::Float(val),
        peak_vram_mb: Number::Float(0.0),
        num_steps: 100,
        num_params: 1000,
        status: Status::Keep,
        description: format!("record {t}"),
        agent_model: "baseline".into(),
        gpu_model: CLASS.into(),
        cuda_version: "cpu".into(),
        torch_version: "burn-0.21".into(),
        node_id: by.node_id(),
        task_id: task().task_id,
        timestamp: t0() + t,
        version: 2,
        ..Default::default()
    };
    r.sign_with(by);
    r
}

/// A signed event of `kind` about record `r`: its id and task, then `extra`.
fn event(
    kind: &str,
    by: &Identity,
    r: &ExperimentRecord,
    t: i64,
    extra: Vec<(&str, Value)>,
) -> ControlEvent {
    let mut payload = vec![("experiment_id", s(&r.id)), ("task_id", s(&r.task_id))];
    payload.extend(extra);
    let mut e = ControlEvent {
        event_type: kind.into(),
        payload: object(payload),
        node_id: by.node_id(),
        timestamp: t0() + t,
        signature: String::new(),
        id: String::new(),
        version: 1,
    };
    e.sign_with(by);
    e
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn verification(by: &Identity, r: &ExperimentRecord, bpb: f64, t: i64) -> ControlEvent {
    event(
        "verification",
        by,
        r,
        t,
        vec![
            (
                "event_id",
                s(&format!("verification:{}:{}", r.id, by.node_id())),
            ),
            ("verified_node_id", s(&r.node_id)),
            ("verifier_id", s(&by.node_id())),
            ("verifier_bpb", Value::Float(bpb)),
            ("verifier_gpu", s(CLASS)),
            ("is_frontier", Value::Bool(true)),
        ],
    )
}

fn challenge(by: &Identity, r: &ExperimentRecord, bpb: f64, t: i64) -> ControlEvent {
    event(
        "challenge",
        by,
        r,
        t,
        vec![
            (
                "event_id",
                s(&format!("challenge:{}:{}", r.id, by.node_id())),
            ),
            ("challenger_id", s(&by.node_id())),
            ("challenger_bpb", Value::Float(bpb)),
            ("challenger_gpu", s(CLASS)),
        ],
    )
}

fn response(
    by: &Identity,
    r: &ExperimentRecord,
    challenger: &Identity,
    bpb: f64,
    t: i64,
) -> ControlEvent {
    event(
        "challenge_response",
        by,
        r,
        t,
        vec![
            ("challenger_id", s(&challenger.node_id())),
            ("verifier_id", s(&by.node_id())),
            ("verifier_bpb", Value::Float(bpb)),
            ("verifier_gpu", s(CLASS)),
        ],
    )
}

fn dispute(
    by: &Identity,
    r: &ExperimentRecord,
    challenger_bpb: f64,
    outcome: &str,
    truth: f64,
    winners: &[&Identity],
    t: i64,
) -> ControlEvent {
    let ids = |l: &[&Identity]| Value::Array(l.iter().map(|i| s(&i.node_id())).collect());
    event(
        "dispute",
        by,
        r,
        t,
        vec![
            ("original_node_id", s(&r.node_id)),
            ("challenger_id", s(&by.node_id())),
            ("challenger_bpb", Value::Float(challenger_bpb)),
            ("outcome", s(outcome)),
            ("ground_truth_bpb", Value::Float(truth)),
            ("verifier_count", Value::Int(winners.len() as i64)),
            ("winner_verifier_ids", ids(winners)),
            ("loser_verifier_ids", Value::Array(vec![])),
        ],
    )
}

fn body(m: Message) -> String {
    m.encode_body()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db/spored.redb")).unwrap();
    (dir, store)
}

/// Ingests `bodies` one by one; the number refused.
fn put(store: &Store, bodies: &[String]) -> u64 {
    bodies
        .iter()
        .map(|b| {
            ingest(store, std::slice::from_ref(b), None, false)
                .unwrap()
                .summary
                .rejected
        })
        .sum()
}

fn frontier(store: &Store) -> Vec<String> {
    store
        .read()
        .unwrap()
        .frontier_ids(&task().task_id, Goal::Minimize)
        .unwrap()
}

/// A root by the publisher, a keep child claiming 1.5, verifiers 2..=4, a challenger 5.
struct World {
    root: ExperimentRecord,
    child: ExperimentRecord,
}

fn world() -> World {
    let root = record(&who(1), None, 2.0, 1);
    let child = record(&who(1), Some(&root), 1.5, 2);
    World { root, child }
}

fn records(w: &World) -> Vec<String> {
    vec![
        body(Message::Task(task())),
        body(Message::Experiment(w.root.clone())),
        body(Message::Experiment(w.child.clone())),
    ]
}

#[test]
fn verifications_of_other_nodes_of_the_class_count_once_each() {
    let (_d, store) = open();
    let w = world();
    assert_eq!(put(&store, &records(&w)), 0);
    let refused = put(
        &store,
        &[
            body(Message::Control(verification(
                &who(2),
                &w.child,
                1.5004,
                10,
            ))),
            body(Message::Control(verification(
                &who(3),
                &w.child,
                1.4999,
                11,
            ))),
        ],
    );
    assert_eq!(refused, 0);
    let read = store.read().unwrap();
    let v = read.verdict_summary(&w.child.id).unwrap().unwrap();
    assert_eq!(v.verified_by, 2);
    assert_eq!(v.outcome, None);
    assert!(read.index_entry(&w.child.id).unwrap().unwrap().verified);
    drop(read);

    // the publisher verifying itself, and a node of another class: refused at the door
    let mut foreign = verification(&who(4), &w.child, 1.5, 12);
    foreign.payload = object([
        ("experiment_id", s(&w.child.id)),
        ("verified_node_id", s(&w.child.node_id)),
        ("verifier_id", s(&who(4).node_id())),
        ("verifier_bpb", Value::Float(1.5)),
        ("verifier_gpu", s("H100")),
    ]);
    foreign.sign_with(&who(4));
    assert_eq!(
        put(
            &store,
            &[
                body(Message::Control(verification(&who(1), &w.child, 1.5, 12))),
                body(Message::Control(foreign)),
            ]
        ),
        2
    );
    // signed by one node in another's name: refused (the actor field must be the signer)
    let mut impostor = verification(&who(2), &w.child, 1.5, 12);
    impostor.node_id = who(3).node_id();
    impostor.sign_with(&who(3));
    assert_eq!(put(&store, &[body(Message::Control(impostor))]), 1);
    // a second, later vote by the same node, even with another figure: not stored, not counted
    let before = store
        .read()
        .unwrap()
        .events_about(&w.child.id)
        .unwrap()
        .len();
    let mut again = verification(&who(2), &w.child, 1.5001, 13);
    again.payload = object([
        ("event_id", s("verification:second")),
        ("experiment_id", s(&w.child.id)),
        ("verified_node_id", s(&w.child.node_id)),
        ("verifier_id", s(&who(2).node_id())),
        ("verifier_bpb", Value::Float(1.5001)),
        ("verifier_gpu", s(CLASS)),
    ]);
    again.sign_with(&who(2));
    assert_eq!(put(&store, &[body(Message::Control(again))]), 0);
    let read = store.read().unwrap();
    assert_eq!(
        read.verdict_summary(&w.child.id)
            .unwrap()
            .unwrap()
            .verified_by,
        2
    );
    assert_eq!(read.events_about(&w.child.id).unwrap().len(), before);
}

#[test]
fn a_fabricated_claim_is_rejected_by_three_reruns_and_leaves_the_frontier() {
    let (_d, store) = open();
    let w = world();
    put(&store, &records(&w));
    assert_eq!(frontier(&store), vec![w.child.id.clone()]);
    // the child claims 1.5; reruns give 1.9
    let liar_check = [
        challenge(&who(5), &w.child, 1.9, 20),
        response(&who(2), &w.child, &who(5), 1.9001, 21),
        response(&who(3), &w.child, &who(5), 1.8999, 22),
    ];
    put(&store, &liar_check.map(|e| body(Message::Control(e))));
    let v = store
        .read()
        .unwrap()
        .verdict_summary(&w.child.id)
        .unwrap()
        .unwrap();
    assert!(v.challenged, "two responses: still open");
    assert_eq!(v.outcome, None);
    assert_eq!(frontier(&store), vec![w.child.id.clone()]);
    put(
        &store,
        &[body(Message::Control(response(
            &who(4),
            &w.child,
            &who(5),
            1.9,
            23,
        )))],
    );
    let v = store
        .read()
        .unwrap()
        .verdict_summary(&w.child.id)
        .unwrap()
        .unwrap();
    assert_eq!(v.outcome, Some(Outcome::Rejected));
    assert_eq!(v.ground_truth, Some(1.9));
    assert!(!v.challenged);
    // the child is off the frontier; the root, no longer beaten by a valid child, is back
    assert_eq!(frontier(&store), vec![w.root.id.clone()]);
    // and the dispute counts (reference §f.4): challenger and responders won, publisher lost
    let read = store.read().unwrap();
    let stats = |n: u8| read.node_stats("", &who(n).node_id()).unwrap().unwrap();
    assert_eq!((stats(5).disputes_won, stats(5).disputes_lost), (1, 0));
    assert_eq!((stats(1).disputes_won, stats(1).disputes_lost), (0, 1));
    for n in [2, 3, 4] {
        assert_eq!(stats(n).disputes_won, 1);
    }
    assert!(
        stats(1).score <= -5.0,
        "the publisher of a rejected claim loses standing"
    );
}

#[test]
fn an_honest_record_challenged_by_a_liar_is_upheld_by_the_challengers_dispute_or_the_reruns() {
    let (_d, store) = open();
    let w = world();
    put(&store, &records(&w));
    put(
        &store,
        &[
            challenge(&who(5), &w.child, 1.9, 20),
            response(&who(2), &w.child, &who(5), 1.5001, 21),
        ]
        .map(|e| body(Message::Control(e))),
    );
    // a dispute that names a node that never responded is refused
    let forged = dispute(&who(5), &w.child, 1.9, "rejected", 1.9, &[&who(3)], 30);
    put(&store, &[body(Message::Control(forged))]);
    let read = store.read().unwrap();
    assert_eq!(
        read.verdict_summary(&w.child.id).unwrap().unwrap().outcome,
        None
    );
    assert!(read
        .verdict(&w.child.id)
        .unwrap()
        .unwrap()
        .refused
        .iter()
        .any(|(_, why)| why.contains("did not respond")));
    drop(read);
    // the dispute that follows from the responses decides it: upheld
    let (outcome, truth) = spore_actors::verdict::decide(1.5, 1.9, &[1.5001], 0.002);
    assert_eq!(outcome, Outcome::Upheld);
    let honest = dispute(&who(5), &w.child, 1.9, "upheld", truth, &[&who(2)], 31);
    // a second dispute by the same challenger is a second vote; use a fresh challenger
    let (_d2, store2) = open();
    put(&store2, &records(&w));
    put(
        &store2,
        &[
            challenge(&who(5), &w.child, 1.9, 20),
            response(&who(2), &w.child, &who(5), 1.5001, 21),
            honest,
        ]
        .map(|e| body(Message::Control(e))),
    );
    let v = store2
        .read()
        .unwrap()
        .verdict_summary(&w.child.id)
        .unwrap()
        .unwrap();
    assert_eq!(v.outcome, Some(Outcome::Upheld));
    assert_eq!(frontier(&store2), vec![w.child.id.clone()]);
    let liar = store2
        .read()
        .unwrap()
        .node_stats("", &who(5).node_id())
        .unwrap()
        .unwrap();
    assert_eq!((liar.disputes_won, liar.disputes_lost), (0, 1));
}

#[test]
fn events_before_their_record_give_the_same_verdict() {
    let w = world();
    let events: Vec<String> = [
        challenge(&who(5), &w.child, 1.9, 20),
        response(&who(2), &w.child, &who(5), 1.9001, 21),
        response(&who(3), &w.child, &who(5), 1.8999, 22),
        response(&who(4), &w.child, &who(5), 1.9, 23),
    ]
    .map(|e| body(Message::Control(e)))
    .to_vec();
    let (_a, first) = open();
    put(&first, &records(&w));
    put(&first, &events);
    let (_b, later) = open();
    put(&later, &events);
    put(&later, &records(&w));
    let summary = |s: &Store| s.read().unwrap().verdict_summary(&w.child.id).unwrap();
    assert_eq!(summary(&first), summary(&later));
    assert_eq!(summary(&later).unwrap().outcome, Some(Outcome::Rejected));
    assert_eq!(frontier(&first), frontier(&later));
}

#[test]
fn an_honest_event_id_cannot_be_pre_empted_by_another_signer() {
    let (_d, store) = open();
    let w = world();
    put(&store, &records(&w));
    let honest = verification(&who(2), &w.child, 1.5, 10);
    // node 3 signs first, under node 2's event id
    let mut squat = verification(&who(3), &w.child, 1.5, 9);
    squat.payload = object([
        (
            "event_id",
            s(&format!("verification:{}:{}", w.child.id, who(2).node_id())),
        ),
        ("experiment_id", s(&w.child.id)),
        ("verified_node_id", s(&w.child.node_id)),
        ("verifier_id", s(&who(3).node_id())),
        ("verifier_bpb", Value::Float(1.5)),
        ("verifier_gpu", s(CLASS)),
    ]);
    squat.sign_with(&who(3));
    put(&store, &[body(Message::Control(squat))]);
    let summary = ingest(&store, &[body(Message::Control(honest))], None, false)
        .unwrap()
        .summary;
    assert_eq!(summary.accepted, 1, "{summary:?}");
    assert_eq!(
        store
            .read()
            .unwrap()
            .verdict_summary(&w.child.id)
            .unwrap()
            .unwrap()
            .verified_by,
        2
    );
}

/// The verifier's planner, as a function of the store: which claims to re-run and which
/// challenges to answer, page by page, never its own or another class's records.
#[test]
fn the_verifier_plans_reruns_of_others_claims_of_its_class_and_answers_challenges() {
    use spore_actors::verifier::{Job, Planner};
    let (_d, store) = open();
    let w = world();
    let mine = record(&who(3), Some(&w.root), 1.9, 3);
    let mut gpu = record(&who(1), Some(&w.root), 1.8, 4);
    gpu.gpu_model = "H100".into();
    gpu.sign_with(&who(1));
    let mut crash = record(&who(1), Some(&w.root), 0.0, 5);
    crash.status = Status::Crash;
    crash.sign_with(&who(1));
    let mut bodies = records(&w);
    bodies.extend([mine, gpu, crash].map(|r| body(Message::Experiment(r))));
    assert_eq!(put(&store, &bodies), 0);
    let planner = |probability| Planner {
        me: who(3).node_id(),
        draw_key: Planner::draw_key(&[3; 32]),
        class: CLASS.into(),
        probability,
    };
    let read = store.read().unwrap();
    let plan = planner(1.0).plan(&read, 0, &[]).unwrap();
    assert_eq!(
        plan.jobs,
        vec![
            Job::Verify(w.root.id.clone()),
            Job::Verify(w.child.id.clone())
        ],
        "not its own record, not another class's, not a crash"
    );
    assert!(plan.read_some);
    let next = planner(1.0).plan(&read, plan.cursor, &[]).unwrap();
    assert!(
        next.jobs.is_empty() && !next.read_some,
        "nothing read twice"
    );
    assert!(planner(0.0).plan(&read, 0, &[]).unwrap().jobs.is_empty());
    drop(read);

    // a challenge by node 5 of a record that has not arrived: it waits, then is answered
    let late = record(&who(1), Some(&w.child), 1.4, 6);
    put(
        &store,
        &[body(Message::Control(challenge(&who(5), &late, 1.7, 7)))],
    );
    let read = store.read().unwrap();
    let waiting = planner(0.0).plan(&read, plan.cursor, &[]).unwrap();
    assert!(waiting.jobs.is_empty());
    assert_eq!(waiting.waiting, vec![(late.id.clone(), who(5).node_id())]);
    drop(read);
    put(&store, &[body(Message::Experiment(late.clone()))]);
    let read = store.read().unwrap();
    let answered = planner(0.0)
        .plan(&read, waiting.cursor, &waiting.waiting)
        .unwrap();
    assert_eq!(
        answered.jobs,
        vec![Job::Respond {
            record: late.id.clone(),
            challenger: who(5).node_id(),
        }]
    );
    assert!(answered.waiting.is_empty());
}

/// The challenge arbiter, as a function of the store and the time: nothing while a challenge
/// is open, the dispute with winners and losers once it is decided, closed once disputed.
#[test]
fn the_arbiter_signs_a_dispute_once_its_challenge_is_decided() {
    use spore_actors::verifier::{arbitrate, Arbitration};
    let (_d, store) = open();
    let w = world();
    put(&store, &records(&w));
    let me = who(5).node_id();
    let mine: std::collections::HashSet<String> = [w.child.id.clone()].into();
    let now = t0() + 60;
    put(
        &store,
        &[
            body(Message::Control(challenge(&who(5), &w.child, 1.9, 20))),
            body(Message::Control(response(
                &who(2),
                &w.child,
                &who(5),
                1.9,
                21,
            ))),
            body(Message::Control(response(
                &who(3),
                &w.child,
                &who(5),
                1.5,
                22,
            ))),
        ],
    );
    assert!(
        arbitrate(&store.read().unwrap(), &me, &mine, now).is_empty(),
        "two of three responses: still open"
    );
    put(
        &store,
        &[body(Message::Control(response(
            &who(4),
            &w.child,
            &who(5),
            1.9001,
            23,
        )))],
    );
    let decided = arbitrate(&store.read().unwrap(), &me, &mine, now);
    let [Arbitration::Dispute { record, payload }] = decided.as_slice() else {
        panic!("one dispute expected: {decided:?}");
    };
    assert_eq!(record, &w.child.id);
    let field = |name: &str| {
        payload
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("outcome"), Some(s("rejected")));
    assert_eq!(
        field("winner_verifier_ids"),
        Some(Value::Array(vec![
            s(&who(2).node_id()),
            s(&who(4).node_id())
        ]))
    );
    assert_eq!(
        field("loser_verifier_ids"),
        Some(Value::Array(vec![s(&who(3).node_id())]))
    );
    // once this node's dispute is stored, the challenge is closed
    put(
        &store,
        &[body(Message::Control(dispute(
            &who(5),
            &w.child,
            1.9,
            "rejected",
            1.9,
            &[&who(2), &who(4)],
            24,
        )))],
    );
    assert_eq!(
        arbitrate(&store.read().unwrap(), &me, &mine, now),
        vec![Arbitration::Closed(w.child.id.clone())]
    );
}

#[test]
fn one_vote_per_signer_and_record_is_kept_and_the_rest_cost_nothing() {
    let (a, b, c) = (who(1), who(2), who(3));
    let r = record(&a, None, 2.0, 1);
    // one signer's flood of verifications of one record, each under a fresh event id, with
    // ever earlier timestamps
    let flood: Vec<ControlEvent> = (0..300)
        .map(|i| {
            event(
                "verification",
                &b,
                &r,
                400 - i,
                vec![
                    ("event_id", s(&format!("verification:{}:{i}", r.id))),
                    ("verified_node_id", s(&r.node_id)),
                    ("verifier_id", s(&b.node_id())),
                    ("verifier_bpb", Value::Float(2.0)),
                    ("verifier_gpu", s(CLASS)),
                ],
            )
        })
        .collect();
    let honest = verification(&c, &r, 2.0, 5);
    for order in [false, true] {
        let (_dir, store) = open();
        let mut bodies = vec![
            body(Message::Task(task())),
            body(Message::Experiment(r.clone())),
        ];
        let mut events = flood.clone();
        if order {
            events.reverse();
        }
        let first = events[0].id.clone();
        bodies.extend(events.into_iter().map(|e| body(Message::Control(e))));
        bodies.push(body(Message::Control(honest.clone())));
        assert_eq!(
            put(&store, &bodies),
            0,
            "later votes are duplicates, not refusals"
        );
        let read = store.read().unwrap();
        let events = read.events_about(&r.id).unwrap();
        assert_eq!(events.len(), 2, "one vote each of the two verifiers");
        assert_eq!(read.control_event_count().unwrap(), 2);
        assert_eq!(read.verdict_summary(&r.id).unwrap().unwrap().verified_by, 2);
        let kept = events.iter().find(|e| e.node_id == b.node_id()).unwrap();
        assert_eq!(kept.id, first, "the first that came");
        // counted once as verification work, served once to a syncing peer
        let stats = read.node_stats("", &b.node_id()).unwrap().unwrap();
        assert_eq!(stats.verifications_performed, 1);
        let served = read.log_after(0, 10_000, usize::MAX).unwrap();
        assert_eq!(served.len(), 4, "task, record, two votes");
    }
}

/// Item 6 of issue #19: many signers (fresh keys are free) voting once each about one record.
/// Verifications are counted one by one, as a full computation from all events counts them;
/// challenges, responses and disputes beyond a bound are not kept, and what is kept still
/// decides the record as before.
#[test]
fn many_signers_voting_on_one_record_are_counted_one_by_one_and_contests_are_bounded() {
    use spore_actors::store::MAX_CONTESTED_VOTES;
    let w = world();
    // 600 verifiers: every third outside the tolerance (does not count)
    let verifications: Vec<String> = (0..600u32)
        .map(|i| {
            let by = Identity::from_seed(spore_spec::crypto::sha256(&i.to_be_bytes()));
            let bpb = if i % 3 == 0 { 1.7 } else { 1.5 };
            body(Message::Control(verification(
                &by,
                &w.child,
                bpb,
                10 + i as i64,
            )))
        })
        .collect();
    // events first, then the record: its verdict is computed once from all of them; record
    // first: counted one by one. Same verdict.
    let (_a, after) = open();
    put(&after, &records(&w));
    assert_eq!(put(&after, &verifications), 0);
    let (_b, before) = open();
    put(
        &before,
        &[
            body(Message::Task(task())),
            body(Message::Experiment(w.root.clone())),
        ],
    );
    put(&before, &verifications);
    put(&before, &[body(Message::Experiment(w.child.clone()))]);
    for store in [&after, &before] {
        let read = store.read().unwrap();
        let summary = read.verdict_summary(&w.child.id).unwrap().unwrap();
        assert_eq!(summary.verified_by, 400);
        assert!(read.index_entry(&w.child.id).unwrap().unwrap().verified);
    }

    // a flood of challenges from fresh keys: the first MAX_CONTESTED_VOTES are kept, the rest
    // refused as no room (no offence)
    let challenges: Vec<String> = (0..MAX_CONTESTED_VOTES as u32 + 40)
        .map(|i| {
            let by = Identity::from_seed(spore_spec::crypto::sha256(&(10_000 + i).to_be_bytes()));
            body(Message::Control(challenge(
                &by,
                &w.child,
                3.0,
                1_000 + i as i64,
            )))
        })
        .collect();
    let out = ingest(&after, &challenges, None, false).unwrap();
    assert_eq!(out.summary.accepted, MAX_CONTESTED_VOTES as u64);
    assert_eq!(out.summary.rejected, 40);
    assert_eq!(spore_actors::ingest::points(&out.summary.problems), 0);
    let read = after.read().unwrap();
    let summary = read.verdict_summary(&w.child.id).unwrap().unwrap();
    assert!(summary.challenged, "the kept challenges are open");
    // a verification now goes through the full computation, and still counts
    drop(read);
    let late = verification(&who(99), &w.child, 1.5, 5_000);
    assert_eq!(put(&after, &[body(Message::Control(late))]), 0);
    let summary = after
        .read()
        .unwrap()
        .verdict_summary(&w.child.id)
        .unwrap()
        .unwrap();
    assert_eq!(summary.verified_by, 401);

    // a publisher filling the challenge places of its record with junk before publishing it
    // (challenges that agree with the claim, which can never count): once the record is here
    // the junk gives its places back, and an honest challenge gets in
    let (_c, prefilled) = open();
    put(
        &prefilled,
        &[
            body(Message::Task(task())),
            body(Message::Experiment(w.root.clone())),
        ],
    );
    let junk: Vec<String> = (0..MAX_CONTESTED_VOTES as u32)
        .map(|i| {
            let by = Identity::from_seed(spore_spec::crypto::sha256(&(20_000 + i).to_be_bytes()));
            body(Message::Control(challenge(
                &by,
                &w.child,
                1.5,
                100 + i as i64,
            )))
        })
        .collect();
    assert_eq!(
        put(&prefilled, &junk),
        0,
        "the record is unknown: nothing to judge by yet"
    );
    let honest = body(Message::Control(challenge(&who(5), &w.child, 3.0, 2_000)));
    assert_eq!(
        put(&prefilled, std::slice::from_ref(&honest)),
        1,
        "no place left"
    );
    put(&prefilled, &[body(Message::Experiment(w.child.clone()))]);
    assert_eq!(put(&prefilled, &[honest]), 0);
    let summary = prefilled
        .read()
        .unwrap()
        .verdict_summary(&w.child.id)
        .unwrap()
        .unwrap();
    assert!(summary.challenged);
    // and junk sent once the record is known is refused at the door
    let late_junk = challenge(&who(6), &w.child, 1.5, 3_000);
    assert_eq!(put(&prefilled, &[body(Message::Control(late_junk))]), 1);
}
