//! Command tasks and the sandbox (issue #9), with real nodes, a real bubblewrap sandbox and a
//! real HTTP server on 127.0.0.1 answering in OpenAI's format:
//! * hostile code edits (a socket, reading the node's identity key, writing outside the sandbox,
//!   a fork bomb, unbounded allocation, running past the budget) each end as a signed `crash`
//!   record with the right reason, and the host is untouched;
//! * the shipped example task (`config/tasks/py-sort-1m.toml`): its baseline and an LLM-proposed
//!   edit run end to end, and a second node verifies both records.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value as J;
use support::{http_get, spored, wait_until, Node, LOOPBACK_RUN};

/// Serves `answers` in order as OpenAI chat completions (then HTTP 500). Returns the base URL
/// and the number of requests answered.
fn llm_server(answers: Vec<String>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let (_, length) = support::read_http_head(&mut reader);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let i = count.fetch_add(1, Ordering::SeqCst);
            let (status, reply) = match answers.get(i) {
                Some(text) => (
                    200,
                    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": text}}]})
                        .to_string(),
                ),
                None => (500, "{\"error\":\"no more answers\"}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (base, served)
}

fn answer(description: &str, code: &str) -> String {
    format!("Description: {description}\nHypothesis: it helps\n```python\n{code}\n```\n")
}

fn start(dir: &Path, extra: &[&str]) -> Node {
    let mut cmd = spored(dir);
    cmd.args(LOOPBACK_RUN).args(extra);
    support::launch(dir, cmd)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = spored(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "spored {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `task create --from`: the new task's id.
fn create_task(dir: &Path, file: &Path) -> String {
    let out = ok(dir, &["task", "create", "--from", file.to_str().unwrap()]);
    out.lines()
        .next()
        .unwrap_or_default()
        .strip_prefix("Created task ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string()
}

fn records(web: &str, task: &str) -> Vec<J> {
    let (status, body) = http_get(web, &format!("/api/recent?task_id={task}&limit=100"));
    if status != 200 {
        return Vec::new();
    }
    let mut list: Vec<J> = serde_json::from_str::<J>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    list.sort_by_key(|r| r["timestamp"].as_i64());
    list
}

fn experiment(web: &str, id: &str) -> J {
    let (_, body) = http_get(web, &format!("/api/experiment/{id}"));
    serde_json::from_str(&body).unwrap_or(J::Null)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
}

/// Processes still alive that run as the sandbox uid of the (root-run) node with process id
/// `node` (their command lines).
fn sandbox_processes(node: u32) -> Vec<String> {
    let sandbox_uid = 200_000 + node % 100_000;
    let mut n = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(status) = std::fs::read_to_string(entry.path().join("status")) {
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok())
                .unwrap_or(0);
            if uid == sandbox_uid {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let state = status
                    .lines()
                    .find(|l| l.starts_with("State:"))
                    .unwrap_or("");
                n.push(format!(
                    "{} {state}",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    n
}

/// Whether bubblewrap is here; without it the tests say they skipped, unless
/// `SPORED_SANDBOX_TEST=required` (set by `.ci/run`).
fn have_sandbox() -> bool {
    if Path::new("/usr/bin/bwrap").is_file() {
        return true;
    }
    assert!(
        std::env::var("SPORED_SANDBOX_TEST").as_deref() != Ok("required"),
        "SPORED_SANDBOX_TEST=required but /usr/bin/bwrap is missing (apt-get install bubblewrap)"
    );
    eprintln!("skipped: no bubblewrap (apt-get install bubblewrap)");
    false
}

/// A small command task (`probe`): `solve()` returns a score, maximized.
fn probe_task(tasks: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(tasks.join("probe")).unwrap();
    std::fs::write(tasks.join("probe/solve.py"), "def solve():\n    return 1\n").unwrap();
    std::fs::write(tasks.join("probe/evaluate.py"), PROBE_EVALUATOR).unwrap();
    let file = tasks.join("probe.toml");
    std::fs::write(
        &file,
        "name = \"probe\"\nmetric = \"score\"\ngoal = \"maximize\"\ntime_budget = 6\n\
         [candidate]\nfile = \"probe/solve.py\"\n[evaluator]\nfile = \"probe/evaluate.py\"\n\
         interpreter = \"python3\"\n",
    )
    .unwrap();
    file
}

const PROBE_EVALUATOR: &str = r#"import importlib.util, sys
spec = importlib.util.spec_from_file_location("candidate", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(f"score: {module.solve()}")
"#;

#[test]
fn hostile_code_edits_end_as_crash_records_with_their_reason() {
    if !have_sandbox() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    // a smaller memory cap makes the allocation test quick
    std::fs::write(dir.join("config.toml"), "sandbox_memory_mb = 512\n").unwrap();
    let task = create_task(&dir, &probe_task(&tmp.path().join("tasks")));
    let identity = dir.join("identity/private_key");
    let key_before = std::fs::read(&identity).unwrap();
    let escape = tmp.path().join("escaped.txt");

    let hostile = [
        (
            "network",
            "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=2)\ndef solve():\n    return 2",
        ),
        (
            "outside the sandbox",
            &format!(
                "KEY = open({:?}, 'rb').read()\ndef solve():\n    return len(KEY)",
                identity.display().to_string()
            ) as &str,
        ),
        (
            "outside the sandbox",
            &format!(
                "open({:?}, 'w').write('out')\ndef solve():\n    return 3",
                escape.display().to_string()
            ),
        ),
        (
            "process limit",
            "import os\nwhile True:\n    os.fork()\ndef solve():\n    return 4",
        ),
        (
            "memory limit",
            "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))\ndef solve():\n    return 5",
        ),
        (
            "time limit",
            "import time\ntime.sleep(3600)\ndef solve():\n    return 6",
        ),
        (
            // what a failing candidate prints is not signed into this node's record
            "exited with code 1",
            "raise SystemExit('error: SPAM visit evil.example for free GPUs')\ndef solve():\n    return 7",
        ),
    ];
    let answers = hostile
        .iter()
        .enumerate()
        .map(|(i, (_, code))| answer(&format!("hostile edit {i}"), code))
        .collect();
    let (base, _) = llm_server(answers);
    ok(
        &dir,
        &[
            "set",
            "custom",
            "",
            "--model",
            "hostile-model",
            "--base-url",
            &base,
        ],
    );
    let node = start(&dir, &["--max-experiments", "8"]);
    wait_until("the baseline and seven hostile edits", 120, || {
        records(&node.web, &task).len() >= 8
    });
    let list = records(&node.web, &task);
    let root = list.iter().find(|r| r["parent"].is_null()).unwrap();
    assert_eq!(root["status"], "keep", "{root}");
    assert_eq!(root["val_bpb"].as_f64(), Some(1.0));
    for (i, (reason, _)) in hostile.iter().enumerate() {
        let prefix = format!("hostile edit {i} ");
        let r = list
            .iter()
            .find(|r| r["description"].as_str().unwrap().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no record of edit {i}"));
        assert_eq!(r["parent"], root["id"]);
        let description = r["description"].as_str().unwrap();
        assert_eq!(r["status"], "crash", "edit {i}: {r}");
        assert!(
            description.starts_with(&format!("hostile edit {i} [failed: ")),
            "edit {i}: {description}"
        );
        assert!(
            description.contains(reason),
            "edit {i} should fail with {reason:?}: {description}\n{}",
            log_of(&dir)
        );
        assert!(!description.contains("SPAM"), "edit {i}: {description}");
        assert_eq!(r["agent_model"], "hostile-model");
        assert_eq!(r["val_bpb"].as_f64(), Some(0.0));
        // what the evaluator printed is kept for the explorer (on this node only)
        let detail = experiment(&node.web, r["id"].as_str().unwrap());
        assert_eq!(detail["metric"], "score");
        assert!(detail["run_output"].is_string(), "{detail}");
        if reason.starts_with("exited") {
            assert!(
                detail["run_output"].as_str().unwrap().contains("SPAM"),
                "{detail}"
            );
        }
    }
    // the host is untouched: the key is as it was, nothing was written outside, and no
    // sandboxed process outlived its run
    assert_eq!(std::fs::read(&identity).unwrap(), key_before);
    assert!(!escape.exists());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = node.child.id();
    while !sandbox_processes(pid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "sandboxed processes outlived their runs: {:?}",
            sandbox_processes(pid)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, _) = http_get(&node.web, "/api/stat");
    assert_eq!(status, 200, "the node still serves");
}

#[test]
fn the_example_task_is_researched_by_an_llm_and_verified_by_a_second_node() {
    if !have_sandbox() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tasks/py-sort-1m.toml");
    let task = create_task(&a_dir, &example);
    let edit =
        "def sort(xs):\n    # Timsort in C beats a merge sort in Python\n    return sorted(xs)";
    let (base, served) = llm_server(vec![answer("use the built-in sorted()", edit)]);
    ok(
        &a_dir,
        &[
            "set",
            "custom",
            "",
            "--model",
            "test-model",
            "--base-url",
            &base,
        ],
    );
    let a = start(&a_dir, &["--max-experiments", "2"]);
    std::fs::write(b_dir.join("config.toml"), "verify_probability = 1.0\n").unwrap();
    let b = start(&b_dir, &["--verify-only", "--peer", &a.p2p]);

    wait_until("the baseline and the LLM's edit", 180, || {
        records(&a.web, &task).len() >= 2
    });
    let list = records(&a.web, &task);
    let root = list.iter().find(|r| r["parent"].is_null()).unwrap();
    let child = list.iter().find(|r| !r["parent"].is_null()).unwrap();
    assert_eq!(root["status"], "keep", "{root}");
    assert_eq!(root["agent_model"], "baseline");
    assert_eq!(child["status"], "keep", "{child}\n{}", log_of(&a_dir));
    assert_eq!(child["parent"], root["id"]);
    assert_eq!(child["agent_model"], "test-model");
    assert_eq!(child["description"], "use the built-in sorted()");
    let (root_ms, child_ms) = (
        root["val_bpb"].as_f64().unwrap(),
        child["val_bpb"].as_f64().unwrap(),
    );
    assert!(
        child_ms > 0.0 && child_ms < root_ms,
        "{child_ms} vs {root_ms}"
    );
    let diff = child["diff"].as_str().unwrap();
    assert!(diff.starts_with("--- sort.py\n+++ sort.py\n"), "{diff}");
    assert!(diff.contains("+    return sorted(xs)"), "{diff}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    let detail = experiment(&a.web, child["id"].as_str().unwrap());
    assert_eq!(detail["metric"], "sort_ms");
    assert!(
        detail["run_output"].as_str().unwrap().contains("sort_ms: "),
        "{detail}"
    );
    // the code artifact is the proposed file, by its cid
    let (status, body) = http_get(
        &a.web,
        &format!("/api/artifact/{}", child["code_cid"].as_str().unwrap()),
    );
    assert_eq!(status, 200);
    assert!(body.contains("return sorted(xs)"), "{body}");

    // the second node re-runs both under the pinned evaluator and signs verifications that
    // reach the publisher
    wait_until("both records verified by the second node", 240, || {
        [root, child].iter().all(|r| {
            experiment(&a.web, r["id"].as_str().unwrap())["verified_by"].as_i64() == Some(1)
        })
    });
    let rerun = experiment(&b.web, child["id"].as_str().unwrap());
    assert!(
        rerun["rerun_output"]
            .as_str()
            .unwrap_or("")
            .contains("sort_ms: "),
        "{rerun}\n{}",
        log_of(&b_dir)
    );
    assert_eq!(rerun["verification"], "verified by 1");

    // in a real browser: the record's page shows the metric by name, the code diff and what
    // the evaluator printed
    let Some(driver) = support::browser::on_path("chromedriver") else {
        assert!(
            std::env::var("SPORED_BROWSER_TEST").as_deref() != Ok("required"),
            "SPORED_BROWSER_TEST=required but no chromedriver on PATH"
        );
        eprintln!("browser part skipped: no chromedriver on PATH");
        return;
    };
    let browser = support::browser::Browser::start(&driver);
    browser.goto(&a.web);
    browser.click("#tabs button[data-tab=dag]");
    let child_id = child["id"].as_str().unwrap();
    browser.click_dag_record(child_id);
    browser.wait_for(
        "the edit's detail",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{child_id}'"
        ),
    );
    let shown = browser.js("return document.querySelector('#detail').innerText");
    let shown = shown.as_str().unwrap();
    for expected in [
        "sort_ms",
        "+    return sorted(xs)",
        "output of the run (this node)",
        "run 3: ",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} not on the page:\n{shown}"
        );
    }
    browser.screenshot("command-task-detail");
}

#[test]
fn without_a_working_sandbox_no_candidate_runs_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    let task = create_task(&dir, &probe_task(&tmp.path().join("tasks")));
    let mut cmd = spored(&dir);
    cmd.args(LOOPBACK_RUN)
        .env("SPORED_BWRAP", tmp.path().join("no-bwrap-here"));
    let node = support::launch(&dir, cmd);
    wait_until("the refusal in the log", 30, || {
        log_of(&dir).contains("bubblewrap (bwrap) is not installed")
    });
    let text = log_of(&dir);
    assert!(
        text.contains("code from peers or an LLM is not run"),
        "{text}"
    );
    // nothing ran unconfined, so nothing was published
    assert!(records(&node.web, &task).is_empty());
}

const REFERENCE_PREPARE: &str = "SEED = 7\n";
/// A stand-in for the reference's train.py: real PyTorch (a least-squares fit), printing the
/// summary keys the reference's train.py prints.
const REFERENCE_TRAIN: &str = r#"import torch
from prepare import SEED

torch.manual_seed(SEED)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(50):
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"val_bpb: {1.0 + loss.item():.6f}")
print("num_steps: 50")
"#;

#[test]
fn reference_train_scripts_are_skipped_without_pytorch_and_verified_with_it() {
    use spore_spec::crypto::sha256_hex;
    use spore_spec::wire::Message;
    use spore_spec::{ExperimentRecord, Identity, Number, Signed, Status, TaskManifest};
    if !have_sandbox() {
        return;
    }
    // SPORED_TORCH_PYTHON: a Python (readable by any user, base under /usr) that imports torch;
    // without it only the skip is checked
    let torch = std::env::var("SPORED_TORCH_PYTHON").ok();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let workspace = tmp.path().join("workspace");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("prepare.py"), REFERENCE_PREPARE).unwrap();
    std::fs::write(workspace.join("batching.py"), "").unwrap();
    let mut config = "verify_probability = 1.0\n".to_string();
    let mut claimed = 1.5;
    if let Some(python) = &torch {
        config.push_str(&format!(
            "torch_python = {python:?}\nreference_workspace = {:?}\n",
            workspace.display().to_string()
        ));
        // the publisher's own run, outside any sandbox
        std::fs::write(workspace.join("train.py"), REFERENCE_TRAIN).unwrap();
        let out = Command::new(python)
            .arg("train.py")
            .current_dir(&workspace)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        claimed = text
            .lines()
            .find_map(|l| l.strip_prefix("val_bpb: "))
            .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)))
            .parse()
            .unwrap();
        std::fs::remove_file(workspace.join("train.py")).unwrap();
    }
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let node = start(&dir, &["--verify-only"]);

    // a reference node's task and record of this node's hardware class
    let publisher = Identity::from_seed([7; 32]);
    let mut task = TaskManifest {
        name: "nanogpt-train".into(),
        task_type: "ml_train".into(),
        artifact_type: "python_train_script".into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        base_code_cid: sha256_hex(REFERENCE_TRAIN.as_bytes()),
        prepare_cid: sha256_hex(REFERENCE_PREPARE.as_bytes()),
        dataset_cid: "climbmix-400b-shuffle".into(),
        time_budget: 60,
        created_by: publisher.node_id(),
        timestamp: 1_767_225_500,
        version: 1,
        ..TaskManifest::default()
    };
    task.sign_with(&publisher);
    let class = format!("CPU_{}", std::env::consts::ARCH.to_ascii_uppercase());
    let mut record = ExperimentRecord {
        code_cid: sha256_hex(REFERENCE_TRAIN.as_bytes()),
        dataset_cid: task.dataset_cid.clone(),
        prepare_cid: task.prepare_cid.clone(),
        time_budget: 60,
        val_bpb: Number::Float(claimed),
        num_steps: 50,
        status: Status::Keep,
        description: "baseline".into(),
        agent_model: "baseline".into(),
        gpu_model: class,
        cuda_version: "cpu".into(),
        torch_version: "2.9.0".into(),
        node_id: publisher.node_id(),
        task_id: task.task_id.clone(),
        timestamp: 1_767_225_600,
        version: 2,
        ..ExperimentRecord::default()
    };
    record.sign_with(&publisher);
    support::import_lines(
        &dir,
        &[
            Message::Task(task).encode_body(),
            Message::CodeResponse {
                code_cid: record.code_cid.clone(),
                code: REFERENCE_TRAIN.as_bytes().to_vec(),
            }
            .encode_body(),
            Message::Experiment(record.clone()).encode_body(),
        ],
    );
    if torch.is_none() {
        wait_until("the verifier to say why it skips the record", 60, || {
            log_of(&dir).contains("skipped: python_train_script records need a Python with PyTorch")
        });
        let r = experiment(&node.web, &record.id);
        assert_eq!(r["verified_by"].as_i64(), Some(0), "{r}");
        eprintln!("PyTorch part skipped: SPORED_TORCH_PYTHON is not set");
        return;
    }
    wait_until(
        "the train.py rerun under PyTorch in the sandbox",
        300,
        || {
            experiment(&node.web, &record.id)["rerun_output"]
                .as_str()
                .is_some()
        },
    );
    let r = experiment(&node.web, &record.id);
    assert!(
        r["rerun_output"].as_str().unwrap().contains("val_bpb: "),
        "{r}\n{}",
        log_of(&dir)
    );
    // a lone verifier of the class signs a verification (no challenge without a second node)
    let (_, body) = http_get(&node.web, &format!("/api/experiment/{}/events", record.id));
    assert!(
        body.contains("\"verification\""),
        "{body}\n{}",
        log_of(&dir)
    );
}

#[test]
fn a_broken_task_file_is_refused_with_the_reason_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(probe_task(&tmp.path().join("tasks"))).unwrap();
    let file = tmp.path().join("tasks/broken.toml");
    for (broken, says) in [
        (
            good.replace("goal = \"maximize\"", "goal = \"faster\""),
            "goal",
        ),
        (good.replace("python3", "perl"), "interpreter"),
        (
            good.replace("probe/evaluate.py", "probe/missing.py"),
            "missing.py",
        ),
        (
            good.replace("metric = \"score\"", "metric = \"a b\""),
            "metric",
        ),
        (
            good.replace("time_budget = 6", "time_budget = 0"),
            "time_budget",
        ),
        (format!("{good}colour = \"red\"\n"), "colour"),
        ("name = [".to_string(), "broken.toml"),
    ] {
        std::fs::write(&file, &broken).unwrap();
        let out = spored(&dir)
            .args(["task", "create", "--from", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{broken}\n{stderr}");
        assert!(stderr.contains(says), "should name {says:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let listed = ok(&dir, &["task", "list", "--json"]);
    assert_eq!(listed.trim(), "[]", "no task was created: {listed}");
}
