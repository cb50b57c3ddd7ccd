//! The command line against a running node: every command answers the same whether the node
//! runs or not, writes go through the node, the README tour works as written, Ctrl-C during an
//! experiment publishes nothing, and text from peers reaches the terminal as plain text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value as J;
use spore_spec::wire::Message;
use spore_spec::{Identity, Status};

mod support;

use support::{signed_record, signed_task, spored, vector_lines, wait_until};

/// A `spored run` whose stdout lines are read as they come; stopped (SIGTERM, then waited
/// for) when dropped, so a failing test leaves no process behind.
struct Run {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Run {
    fn start(dir: &Path, extra: &[&str]) -> Run {
        let mut child = spored(dir)
            .args(support::LOOPBACK_RUN)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("node.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Run { child, lines }
    }

    /// The first line (from now) that contains `text`, within `secs`.
    fn line_with(&self, text: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("the node printed no line with {text:?} within {secs} s"),
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The vectors' task with the most records.
const TASK: &str = "3094a2dfd2296bef1d10bad5bd5636e6b84fe0b57c823b043cb6c98cf3fbb371";

fn output(dir: &Path, args: &[&str]) -> Output {
    spored(dir)
        .args(args)
        .env("GROQ_API_KEY", "gsk-test-0123456789abcdef")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs and expects success: stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = output(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spored {args:?} failed: {stderr}");
    assert!(!stderr.contains("error"), "spored {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> J {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(dir, &all);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn write_jsonl(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// What every read command prints, as JSON and as text, and what export writes.
fn every_read(dir: &Path) -> Vec<(String, String)> {
    let export = dir.join("export.jsonl");
    let _ = std::fs::remove_file(&export);
    let reads: [&[&str]; 9] = [
        &["status", "--task", TASK],
        &["tasks"],
        &["task", "list"],
        &["task", "show", &TASK[..10]],
        &["frontier", "--task", TASK, "--limit", "0"],
        &["frontier", "--task", TASK, "--gpu", "H100"],
        &["graph", "--task", TASK, "--depth", "3"],
        &["profile", "show"],
        &["set"],
    ];
    let mut seen = Vec::new();
    for args in reads {
        seen.push((format!("{args:?} --json"), json(dir, args).to_string()));
        seen.push((format!("{args:?}"), ok(dir, args)));
    }
    ok(
        dir,
        &[
            "export",
            "--task",
            &TASK[..8],
            "-o",
            export.to_str().unwrap(),
        ],
    );
    seen.push(("export".into(), std::fs::read_to_string(&export).unwrap()));
    seen
}

fn assert_same(before: &[(String, String)], after: &[(String, String)], when: &str) {
    assert_eq!(before.len(), after.len());
    for ((what, a), (_, b)) in before.iter().zip(after) {
        assert_eq!(a, b, "`spored {what}` differs {when}");
    }
}

#[test]
fn every_command_answers_the_same_with_the_node_running_or_stopped_and_writes_go_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    let config = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.insert_str(0, "# my node: keep this comment\n");
    std::fs::write(&config, text).unwrap();
    write_jsonl(&dir.join("vectors.jsonl"), &vector_lines());
    ok(
        dir,
        &["import", dir.join("vectors.jsonl").to_str().unwrap()],
    );
    ok(dir, &["profile", "set", "--display-name", "Ada"]);
    ok(dir, &["set", "groq", "--api-key-env", "GROQ_API_KEY"]);
    let stopped = every_read(dir);

    let node = support::start(dir, &[]);
    // the node holds the store: nothing but the node may open it
    let running = every_read(dir);
    assert_same(&stopped, &running, "with the node running");

    // writes through the running node, seen by the node at once
    let created = ok(dir, &["task", "create", "--name", "tiny-gpt"]);
    let task_id = created.lines().next().unwrap()["Created task ".len()..].to_string();
    assert!(created.contains("Pinned"), "{created}");
    let tasks = json(dir, &["tasks"]);
    let mine = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == task_id.as_str())
        .expect("the new task is listed by the running node");
    assert_eq!(mine["is_active"], true);
    assert_eq!(mine["task_type"], "ml_train");
    let shown = json(dir, &["task", "show", &task_id]);
    assert_eq!(shown["artifact_type"], "spore_gpt_config");
    let second = ok(dir, &["task", "create", "--name", "tiny-gpt-2"]);
    let second = second.lines().next().unwrap()["Created task ".len()..].to_string();
    // a task spored cannot train is refused with the reason, and the pin stays
    let out = output(dir, &["task", "use", &TASK[..12]]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot train tasks of artifact type \"python_train_script\""),
        "{err}"
    );
    let used = json(dir, &["task", "use", &task_id[..12]]);
    assert_eq!(used["task_id"], task_id.as_str());
    assert_eq!(used["running_node"], true);
    let tasks = json(dir, &["tasks"]);
    let active: Vec<&J> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["is_active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["task_id"], task_id.as_str());
    assert_ne!(task_id, second);
    // the explorer of the running node follows the pin
    let (code, body) = support::http_get(&node.web, "/api/stat");
    assert_eq!(code, 200, "{body}");
    let stat: J = serde_json::from_str(&body).unwrap();
    assert_eq!(stat["active_task_id"], task_id.as_str(), "{body}");
    ok(dir, &["profile", "set", "--display-name", "Bob"]);
    assert_eq!(json(dir, &["profile", "show"])["display_name"], "Bob");
    // the API key from stdin, never on the command line
    let mut child = spored(dir)
        .args(["--json", "set", "openai", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.take().unwrap(), "sk-from-stdin-0123456789").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let set: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["running_node"], true);
    assert_eq!(set["api_key"], "sk-from-...6789");
    let llm = std::fs::read_to_string(dir.join("llm.toml")).unwrap();
    assert!(llm.contains("sk-from-stdin-0123456789"), "{llm}");
    // config.toml changed in its one key: the user's comment is still there
    let config = std::fs::read_to_string(&config).unwrap();
    assert!(
        config.contains(&format!("task_id = \"{task_id}\"")),
        "{config}"
    );
    assert!(
        config.starts_with("# my node: keep this comment\n"),
        "{config}"
    );

    let after_writes = every_read(dir);
    drop(node);
    wait_until("the store is free again", 20, || {
        output(dir, &["status", "--task", TASK]).status.success()
    });
    let stopped_again = every_read(dir);
    assert_same(&after_writes, &stopped_again, "after the node stopped");
}

#[test]
fn text_from_peers_prints_as_plain_text() {
    const PAYLOAD: &str = "\x1b]0;pwned\x07\x1b[2Jfaster\u{202e}lr\r\nfake line\u{9b}31m";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let who = Identity::from_seed([7; 32]);
    let task = signed_task(&who, &format!("evil{PAYLOAD}"), PAYLOAD);
    let t = task.task_id.as_str();
    let root = signed_record(&who, t, None, Status::Keep, 2.0, "baseline", 1_767_225_700);
    let child = signed_record(
        &who,
        t,
        Some(&root),
        Status::Keep,
        1.5,
        PAYLOAD,
        1_767_225_710,
    );
    let lines: Vec<String> = [
        Message::Task(task.clone()),
        Message::Experiment(root),
        Message::Experiment(child),
    ]
    .iter()
    .map(Message::encode_body)
    .collect();
    write_jsonl(&dir.join("evil.jsonl"), &lines);
    ok(dir, &["import", dir.join("evil.jsonl").to_str().unwrap()]);
    for args in [
        vec!["status", "--task", t],
        vec!["frontier", "--task", t],
        vec!["graph", "--task", t],
        vec!["tasks"],
        vec!["task", "show", t],
    ] {
        let text = ok(dir, &args);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n') && !text.contains('\u{202e}'),
            "spored {args:?} printed control characters: {text:?}"
        );
        assert!(!text.contains("pwned"), "{text:?}");
        assert!(text.contains("evil") || text.contains("faster"), "{text:?}");
    }
    // the JSON keeps the signed text exactly (escaped), for programs
    let status = json(dir, &["status", "--task", t]);
    assert_eq!(status["recent"][0]["description"], PAYLOAD);
}

/// The README's tour block: the commands it runs against the node in the other terminal.
fn readme_tour() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let tour = readme
        .split("## A short tour")
        .nth(1)
        .expect("README has a tour")
        .split("```bash")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    tour.lines()
        .map(|l| l.split(" #").next().unwrap().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_tour_works_as_written_against_a_running_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spore");
    std::fs::create_dir(&dir).unwrap();
    let tour = readme_tour();
    assert_eq!(
        tour.first().map(String::as_str),
        Some("spored run"),
        "the tour starts the node"
    );
    // the node of the first line, on loopback ports of its own and without the public peer
    let node = Run::start(&dir, &["--time-budget", "3", "--max-experiments", "2"]);
    node.line_with("explorer on ", 30);
    let cwd = tempfile::tempdir().unwrap();
    for line in &tour[1..] {
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(args[0], "spored", "{line}");
        let out = Command::new(env!("CARGO_BIN_EXE_spored"))
            .args(&args[1..])
            .current_dir(cwd.path())
            .env("SPORE_HOME", &dir)
            .env("HOME", tmp.path())
            .env("GROQ_API_KEY", "gsk-tour-0123456789abcdef")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "`{line}` failed: {stderr}");
        assert!(!stderr.contains("error"), "`{line}`: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if line.starts_with("spored task create") {
            assert!(stdout.contains("Pinned"), "`{line}`: {stdout}");
        }
        if line.starts_with("spored info") {
            assert!(stdout.contains("(running)"), "`{line}`: {stdout}");
        }
    }
    // the node took each pin as it came, and researched without a complaint
    wait_until("the node's two experiments", 180, || {
        std::fs::read_to_string(dir.join("node.log"))
            .is_ok_and(|log| log.contains("experiments done (max reached)"))
    });
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    assert_eq!(log.matches("pinned task changed").count(), 1, "{log}");
    assert_eq!(log.matches("task unpinned").count(), 1, "{log}");
    assert!(!log.contains("WARN spore_actors::research"), "{log}");
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // the parent pid is the second field after the command's closing parenthesis
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn ctrl_c_during_an_experiment_stops_its_child_and_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spore");
    std::fs::create_dir(&dir).unwrap();
    let mut node = Run::start(&dir, &["--time-budget", "60"]);
    let pid = node.child.id();
    let web = node.line_with("explorer on ", 30)["explorer on ".len()..].to_string();
    // training has started: a progress line of the first experiment (on stderr, the log)
    wait_until("a training progress line", 60, || {
        std::fs::read_to_string(dir.join("node.log")).is_ok_and(|log| log.contains(" step "))
    });
    // the explorer's header knows what trains
    wait_until("the explorer to show the run", 20, || {
        let (_, body) = support::http_get(&web, "/api/training");
        let now: J = serde_json::from_str(&body).unwrap();
        now["training"]["step"].as_i64().unwrap_or(0) >= 1
            && now["training"]["budget"].as_f64() == Some(60.0)
    });
    let trainers = children_of(pid);
    assert!(!trainers.is_empty(), "no training child under the node");
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let status = node.child.wait().unwrap();
    assert!(status.success(), "Ctrl-C is a clean stop: {status}");
    for child in trainers {
        wait_until("the training child to end", 10, || !alive(child));
    }
    // only the default task's pinned root: nothing about the cut-short experiment
    let info = json(&dir, &["info"]);
    assert_eq!(info["experiment_count"], 1, "{info}");
    let db: PathBuf = dir.join("db");
    assert!(db.exists());

    // the next start begins a fresh experiment and publishes it
    let node = Run::start(&dir, &["--time-budget", "2", "--max-experiments", "1"]);
    let line = node.line_with("experiment ", 60);
    assert!(line.contains("val_bpb="), "{line}");
    drop(node);
    std::thread::sleep(Duration::from_millis(200));
    wait_until("the store is free again", 20, || {
        output(&dir, &["--json", "info"]).status.success()
    });
    assert_eq!(json(&dir, &["info"])["experiment_count"], 2);
}

/// `/metrics` parsed as Prometheus does: the value of `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(x)
            | prometheus_parse::Value::Gauge(x)
            | prometheus_parse::Value::Untyped(x) => x,
            _ => f64::NAN,
        })
}

#[test]
fn metrics_and_health_are_served_and_counters_move_when_records_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = support::start(dir, &[]);
    let (code, body) = support::http_get(&node.web, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, before) = support::http_get(&node.web, "/metrics");
    assert_eq!(code, 200, "{before}");
    assert_eq!(
        sample(&before, "spored_objects", &[("kind", "experiment")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "spored_peers", &[("transport", "libp2p")]),
        Some(0.0)
    );
    assert!(sample(&before, "spored_store_bytes", &[]).unwrap() > 0.0);
    assert_eq!(sample(&before, "spored_sse_clients", &[]), Some(0.0));
    assert_eq!(sample(&before, "spored_verifier_queue", &[]), Some(0.0));

    // the reference's vectors through the running node, one of them forged
    let mut lines = vector_lines();
    let forged = lines
        .iter()
        .position(|l| l.contains("\"experiment\""))
        .unwrap();
    let good = lines.len() - 1;
    lines[forged] = lines[forged].replacen("\"val_bpb\":", "\"val_bpb\":1", 1);
    let file = dir.join("with-forged.jsonl");
    write_jsonl(&file, &lines);
    let out = output(dir, &["import", file.to_str().unwrap()]);
    assert!(!out.status.success(), "a forged line refuses the import");
    lines.remove(forged);
    write_jsonl(&file, &lines);
    ok(dir, &["import", file.to_str().unwrap()]);
    let (_, after) = support::http_get(&node.web, "/metrics");
    let local = |text: &str, outcome| {
        sample(
            text,
            "spored_ingested_total",
            &[("origin", "local"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    // stored now, or held until what they need arrives (a parent, their task's root)
    assert!(local(&after, "accepted") > 0.0, "{after}");
    assert_eq!(
        local(&after, "accepted") + local(&after, "held") + local(&after, "duplicate"),
        good as f64,
        "{after}"
    );
    let stored = json(dir, &["info"])["experiment_count"].as_f64().unwrap();
    assert_eq!(
        sample(&after, "spored_objects", &[("kind", "experiment")]),
        Some(stored)
    );
    // the same objects again: duplicates, counted as such
    ok(dir, &["import", file.to_str().unwrap()]);
    let (_, again) = support::http_get(&node.web, "/metrics");
    assert_eq!(
        local(&again, "accepted") + local(&again, "held") + local(&again, "duplicate"),
        2.0 * good as f64,
        "{again}"
    );
    assert!(
        local(&again, "duplicate") > local(&after, "duplicate"),
        "{again}"
    );
    assert_eq!(
        local(&again, "accepted"),
        local(&after, "accepted"),
        "{again}"
    );
    // a name the explorer does not serve under is refused here too (its bind rules)
    let host = node.web.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(!raw.starts_with("HTTP/1.1 200"), "{raw}");
}
