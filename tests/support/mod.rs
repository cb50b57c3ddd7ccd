//! Shared by the end-to-end tests.
#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value as J;

pub mod browser;

/// `spored run` on 127.0.0.1 with OS-chosen ports (reference protocol, libp2p, explorer) and
/// no public bootstrap peer.
pub const LOOPBACK_RUN: [&str; 10] = [
    "run",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--p2p-port",
    "0",
    "--web-port",
    "0",
    "--no-bootstrap",
];

/// The spored binary on its own data dir (and HOME), never the user's.
pub fn spored(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spored"));
    cmd.arg("--data-dir")
        .arg(dir)
        .env_remove("SPORE_HOME")
        .env("HOME", dir);
    cmd
}

/// A running node; killed when dropped, so a failing test leaves no process behind.
pub struct Running {
    pub child: Child,
    /// Its libp2p listen address.
    pub addr: String,
    /// Its listener for reference peers (`127.0.0.1:port`).
    pub legacy: String,
    /// The explorer's base URL (`http://127.0.0.1:<port>`).
    pub web: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a relay node (`--no-train`) on loopback with OS-chosen ports, dialling `peers`, and
/// waits for its listen and explorer addresses.
pub fn start(dir: &Path, peers: &[&str]) -> Running {
    start_with(dir, peers, &[])
}

/// [`start`] with extra flags.
pub fn start_with(dir: &Path, peers: &[&str], extra: &[&str]) -> Running {
    let mut cmd = spored(dir);
    cmd.args(LOOPBACK_RUN).arg("--no-train").args(extra);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let [addr, legacy, web] = printed(
        &mut child,
        ["listening on ", "reference peers on ", "explorer on "],
    );
    Running {
        child,
        addr,
        legacy,
        web,
    }
}

/// Reads an HTTP head (after the request or status line) up to the blank line: its headers
/// and the body's Content-Length (0 when absent).
pub fn read_http_head(reader: &mut impl BufRead) -> (Vec<(String, String)>, usize) {
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    (headers, length)
}

/// A file of `spec/vectors/`, parsed.
pub fn vectors(name: &str) -> J {
    let path = format!("{}/spec/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The reference's signed vectors (tasks, v2 records, control events, profiles) as JSONL lines
/// of message envelopes, in that order.
pub fn vector_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for file in [
        "tasks.json",
        "experiments_v2.json",
        "control_events.json",
        "profiles.json",
    ] {
        for v in vectors(file)["vectors"].as_array().unwrap() {
            lines.push(format!(
                "{{\"type\":{},\"payload\":{}}}",
                v["wire"]["msg_type"],
                v["wire"]["payload_json"].as_str().unwrap()
            ));
        }
    }
    lines
}

/// GET `path` from the explorer at `base` (`http://host:port` or `host:port`), one connection:
/// (status code, body).
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let host = base.strip_prefix("http://").unwrap_or(base);
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `spored --json info` of the node running on `dir` (through its control socket).
pub fn info(dir: &Path) -> J {
    let out = spored(dir).args(["--json", "info"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `check` every 200 ms until it holds; fails after `secs` seconds naming `what`.
pub fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Publishes JSONL frame bodies through the running node's control socket.
pub fn import_lines(dir: &Path, lines: &[String]) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("import-{n}.jsonl"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = spored(dir).arg("import").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A starting node's libp2p address and explorer URL (the rest of its stdout is drained).
pub fn addresses(child: &mut Child) -> (String, String) {
    let [p2p, web] = printed(child, ["listening on ", "explorer on "]);
    (p2p, web)
}

/// What a starting node printed after each of `prefixes` (in that order, within 30 s); the
/// rest of its stdout is drained on a thread.
pub fn printed<const N: usize>(child: &mut Child, prefixes: [&'static str; N]) -> [String; N] {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            for prefix in prefixes {
                if let Some(value) = line.strip_prefix(prefix) {
                    let _ = tx.send(value.to_string());
                }
            }
        }
    });
    std::array::from_fn(|_| {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("node printed its addresses")
    })
}

/// Stops the background node of a data dir (`spored stop`, then SIGKILL by its pid file) when
/// dropped, so a failing test leaves no node behind.
pub struct StopOnDrop(pub std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let stopped = spored(&self.0)
            .arg("stop")
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            if let Ok(pid) = std::fs::read_to_string(self.0.join("spored.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .status();
            }
        }
    }
}

/// A node whose log (stderr) goes to `<dir>/node.log`; stopped with SIGTERM, and waited for,
/// when dropped.
pub struct Node {
    pub child: Child,
    /// Its libp2p listen address.
    pub p2p: String,
    /// The explorer's base URL.
    pub web: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (`spored(dir)` with its `run` arguments) at log level info, its log in
/// `<dir>/node.log`, and waits for its addresses.
pub fn launch(dir: &Path, mut cmd: Command) -> Node {
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let (p2p, web) = addresses(&mut child);
    Node { child, p2p, web }
}

/// Follows a node's live stream (`/api/events`) as a browser does; every event it sends is
/// collected until the node closes the stream.
pub fn follow_live(web: &str) -> std::sync::Arc<std::sync::Mutex<Vec<J>>> {
    use std::io::Write as _;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stream = std::net::TcpStream::connect(web.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    // subscribed once the stream's first comment (": live") arrives: nothing after is missed
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !line.starts_with(": live") {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the live stream closed before it began");
        }
    }
    let collected = seen.clone();
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.trim().strip_prefix("data: ") {
                if let Ok(event) = serde_json::from_str::<J>(data) {
                    collected.lock().unwrap().push(event);
                }
            }
        }
    });
    seen
}

/// A signed record of `who` in `task`.
pub fn signed_record(
    who: &spore_spec::Identity,
    task: &str,
    parent: Option<&spore_spec::ExperimentRecord>,
    status: spore_spec::Status,
    val_bpb: f64,
    description: &str,
    timestamp: i64,
) -> spore_spec::ExperimentRecord {
    let mut r = spore_spec::ExperimentRecord {
        parent: parent.map(|p| p.id.clone()),
        depth: parent.map_or(0, |p| p.depth + 1),
        task_id: task.to_string(),
        code_cid: "c".repeat(64),
        dataset_cid: "d".repeat(64),
        time_budget: 60,
        val_bpb: spore_spec::Number::Float(val_bpb),
        peak_vram_mb: spore_spec::Number::Float(512.0),
        num_steps: 100,
        num_params: 131_392,
        status,
        description: description.to_string(),
        hypothesis: "seeded by a test".into(),
        agent_model: "builtin".into(),
        gpu_model: "CPU_TEST".into(),
        diff: if parent.is_some() {
            "--- a\n+++ b\n@@ -1 +1 @@\n-lr = 0.003\n+lr = 0.004\n".into()
        } else {
            String::new()
        },
        node_id: who.node_id(),
        timestamp,
        version: 2,
        ..Default::default()
    };
    spore_spec::Signed::sign_with(&mut r, who);
    r
}

/// A signed task manifest of `who` for a GPT task spored trains, named and described as given.
pub fn signed_task(
    who: &spore_spec::Identity,
    name: &str,
    description: &str,
) -> spore_spec::TaskManifest {
    let mut task = spore_spec::TaskManifest {
        name: name.into(),
        description: description.into(),
        task_type: "ml_train".into(),
        artifact_type: "spore_gpt_config".into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        time_budget: 60,
        created_by: who.node_id(),
        timestamp: 1_767_225_600,
        version: 1,
        ..Default::default()
    };
    spore_spec::Signed::sign_with(&mut task, who);
    task
}
