//! Verification and disputes between real nodes on loopback (issue #7): a researcher publishes
//! a record, verify-only nodes of the same class re-run it (real training children) and sign
//! verifications; a liar's fabricated claim is challenged, disputed and rejected everywhere; a
//! liar's challenge of an honest record ends upheld; a node joining later reaches the same
//! verdicts from the events alone.

mod support;

use std::path::Path;

use serde_json::Value as J;
use spore_spec::json::{object, Value};
use spore_spec::wire::Message;
use spore_spec::{ControlEvent, ExperimentRecord, Identity, Number, Signed};
use support::{http_get, import_lines, info, spored, wait_until, Node, LOOPBACK_RUN};

/// Seconds after which a challenge with a response is decided (all nodes of the test).
const TIMEOUT: &str = "20";

/// A node on loopback; `mode_args` picks research or verify-only.
fn start(dir: &Path, peers: &[&str], mode_args: &[&str]) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), "verify_probability = 1.0\n").unwrap();
    let mut cmd = spored(dir);
    cmd.args(LOOPBACK_RUN)
        .args(mode_args)
        .env("SPORE_CHALLENGE_TIMEOUT", TIMEOUT);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    support::launch(dir, cmd)
}

/// A task like the built-in one (its corpus, split and baseline) with a 4 s budget, created
/// on the data dir `dir` (so its node is the creator); its id.
fn create_task(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let default = spore_actors::default_task::manifest();
    let out = spored(dir)
        .args([
            "--json",
            "task",
            "create",
            "--name",
            "verify",
            "--artifact-type",
        ])
        .arg(&default.artifact_type)
        .args(["--dataset-cid", &default.dataset_cid])
        .args(["--prepare-cid", &default.prepare_cid])
        .args(["--base-code-cid", &default.base_code_cid])
        .args(["--time-budget", "4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task: J = serde_json::from_slice(&out.stdout).unwrap();
    task["task_id"].as_str().unwrap().to_string()
}

fn record(web: &str, id: &str) -> J {
    let (status, body) = http_get(web, &format!("/api/experiment/{id}"));
    if status != 200 {
        return J::Null;
    }
    serde_json::from_str(&body).unwrap()
}

/// The control events about record `id`, as the explorer lists them.
fn events(web: &str, id: &str) -> Vec<J> {
    let (status, body) = http_get(web, &format!("/api/experiment/{id}/events"));
    if status != 200 {
        return Vec::new();
    }
    serde_json::from_str::<J>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn frontier_ids(web: &str) -> Vec<String> {
    let (_, body) = http_get(web, "/api/frontier");
    let v: J = serde_json::from_str(&body).unwrap();
    v.as_array()
        .or_else(|| v["frontier"].as_array())
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn identity(dir: &Path) -> Identity {
    let hex = std::fs::read_to_string(dir.join("identity/private_key")).unwrap();
    let seed = spore_spec::crypto::from_hex(hex.trim()).unwrap();
    Identity::from_seed(seed.try_into().unwrap())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn records_are_verified_by_peers_and_a_liar_loses_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db, dc, dl) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
        tmp.path().join("liar"),
    );
    // A researches one experiment: the baseline of a task it created (the root of a task is
    // its creator's); B and C only verify; L is a liar
    let task = create_task(&da);
    let a = start(
        &da,
        &[],
        &[
            "--max-experiments",
            "1",
            "--time-budget",
            "4",
            "--task",
            &task,
        ],
    );
    let b = start(&db, &[&a.p2p], &["--verify-only"]);
    let c = start(&dc, &[&a.p2p, &b.p2p], &["--verify-only"]);
    let liar = start(&dl, &[&a.p2p], &["--no-train"]);

    // 1. the honest record is verified by both others
    wait_until("A's baseline record", 180, || {
        info(&da)["experiment_count"] == 1
    });
    let root_id = {
        let (_, body) = http_get(&a.web, "/api/recent");
        let v: J = serde_json::from_str(&body).unwrap();
        let list = v.as_array().cloned().unwrap_or_default();
        list[0]["id"].as_str().unwrap().to_string()
    };
    wait_until("B and C to verify A's record", 240, || {
        record(&a.web, &root_id)["verified_by"] == 2
    });
    let root = record(&a.web, &root_id);
    assert_eq!(root["verification"], "verified by 2");
    assert_eq!(root["dispute"], J::Null);

    // 2. the liar claims a far better result for the same config and steps
    let honest: ExperimentRecord = {
        // the explorer's record is the signed record plus what the node says of it
        let mut v = record(&a.web, &root_id);
        for local in [
            "node_display_name",
            "node_avatar_url",
            "verified",
            "is_frontier",
            "verified_by",
            "challenged",
            "dispute",
            "verification",
            "metric",
            "run_output",
            "rerun_output",
        ] {
            v.as_object_mut().unwrap().remove(local);
        }
        let value = spore_spec::json::parse(v.to_string().as_bytes()).unwrap();
        ExperimentRecord::from_json(value).unwrap()
    };
    let liar_id = identity(&dl);
    let mut fake = honest.clone();
    fake.parent = Some(honest.id.clone());
    fake.depth = 1;
    fake.val_bpb = Number::Float(honest.val_bpb.value() - 0.3);
    fake.description = "a much better result (fabricated)".into();
    fake.node_id = liar_id.node_id();
    fake.timestamp = now();
    fake.sign_with(&liar_id);
    // a browser has A's explorer open: the verdict reaches it live, without a reload
    let live_on_a = support::follow_live(&a.web);
    import_lines(&dl, &[Message::Experiment(fake.clone()).encode_body()]);
    // B challenges it, then restarts mid-dispute: it resumes from its store and signs the
    // dispute once the challenge is decided
    let b_id = identity(&db).node_id();
    let signed_by_b = |kind: &str| {
        events(&a.web, &fake.id)
            .iter()
            .any(|e| e["type"] == kind && e["node_id"] == b_id.as_str())
    };
    wait_until("B to challenge the fabricated record", 180, || {
        signed_by_b("challenge")
    });
    drop(b);
    let b = start(&db, &[&a.p2p], &["--verify-only"]);
    wait_until("B's dispute after its restart", 180, || {
        signed_by_b("dispute")
    });
    wait_until(
        "the fabricated record to be rejected everywhere",
        300,
        || {
            [&a.web, &b.web, &c.web, &liar.web]
                .iter()
                .all(|w| record(w, &fake.id)["dispute"] == "rejected")
        },
    );
    for w in [&a.web, &b.web, &c.web] {
        assert!(
            !frontier_ids(w).contains(&fake.id),
            "a rejected record left the frontier"
        );
        assert!(frontier_ids(w).contains(&honest.id), "its parent came back");
    }
    wait_until("the rejection on A's live stream", 10, || {
        live_on_a.lock().unwrap().iter().any(|e| {
            e["event"] == "verdict"
                && e["data"]["id"] == fake.id.as_str()
                && e["data"]["dispute"] == "rejected"
                && e["data"]["is_frontier"] == false
        })
    });
    {
        let seen = live_on_a.lock().unwrap();
        assert!(
            seen.iter()
                .any(|e| e["event"] == "experiment" && e["data"]["id"] == fake.id.as_str()),
            "the record itself arrived live first"
        );
        assert!(
            seen.iter().any(|e| e["event"] == "verdict"
                && e["data"]["id"] == fake.id.as_str()
                && e["data"]["challenged"] == true),
            "the challenge arrived live"
        );
    }

    // 3. the liar challenges the honest record; the others' reruns uphold it
    let mut challenge = ControlEvent {
        event_type: "challenge".into(),
        payload: object([
            (
                "event_id",
                Value::Str(format!("challenge:{}:{}", honest.id, liar_id.node_id())),
            ),
            ("experiment_id", Value::Str(honest.id.clone())),
            ("task_id", Value::Str(honest.task_id.clone())),
            ("challenger_id", Value::Str(liar_id.node_id())),
            ("challenger_bpb", Value::Float(honest.val_bpb.value() + 0.5)),
            ("challenger_gpu", Value::Str(honest.gpu_model.clone())),
        ]),
        node_id: liar_id.node_id(),
        timestamp: now(),
        signature: String::new(),
        id: String::new(),
        version: 1,
    };
    challenge.sign_with(&liar_id);
    import_lines(&dl, &[Message::Control(challenge).encode_body()]);
    wait_until("the liar's challenge to end upheld", 300, || {
        [&a.web, &b.web, &c.web]
            .iter()
            .all(|w| record(w, &honest.id)["dispute"] == "upheld")
    });
    assert!(
        frontier_ids(&a.web).contains(&honest.id),
        "an upheld record stays on the frontier"
    );
    // the liar never signed a dispute; the verdict came from the others' reruns
    assert!(!events(&a.web, &honest.id)
        .iter()
        .any(|e| e["type"] == "dispute"));

    // 4. a node joining later replays the events and reaches the same verdicts
    let dd = tmp.path().join("late");
    let late = start(&dd, &[&a.p2p], &["--no-train"]);
    wait_until("the late node's verdicts", 120, || {
        record(&late.web, &fake.id)["dispute"] == "rejected"
            && record(&late.web, &honest.id)["dispute"] == "upheld"
    });
    assert_eq!(
        record(&late.web, &honest.id)["verified_by"],
        record(&a.web, &honest.id)["verified_by"]
    );
    drop((a, b, c, liar, late));
}
