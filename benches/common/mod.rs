//! Shared by the benches: a deterministic task of signed records shaped like a research run.
#![allow(dead_code)] // each bench uses its own part of this

use spore_spec::json::to_wire;
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Identity, Number, Signed, Status, TaskManifest};

const T0: i64 = 1_767_225_600;

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[allow(dead_code)] // used by some benches only
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The task manifest and `n` records as JSONL lines, parents before children.
pub fn generate(n: usize) -> (String, Vec<String>) {
    let identities: Vec<Identity> = (1..=8).map(|i| Identity::from_seed([i; 32])).collect();
    let mut manifest = TaskManifest {
        name: "tiny-gpt-bench".into(),
        description: "benchmark task".into(),
        task_type: "ml_train".into(),
        artifact_type: "burn_train_config".into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        time_budget: 60,
        created_by: identities[0].node_id(),
        timestamp: T0,
        version: 1,
        ..Default::default()
    };
    manifest.sign_with(&identities[0]);
    let task_id = manifest.task_id.clone();

    // Shape the tree the way the reference's research loop grows one (§g.3): each experiment
    // starts from a frontier record (the best one 70 % of the time, a random one otherwise), as
    // seen by a node whose view lags a few records behind (concurrent researchers); a keep
    // beats its parent, a discard does not, a crash scores 0.
    let mut rng = Rng(0x5eed);
    let mut values: Vec<f64> = vec![1.10];
    let mut frontier: Vec<usize> = vec![0];
    let mut plan: Vec<(Option<usize>, Status, f64, usize)> = vec![(None, Status::Keep, 1.10, 0)];
    for i in 1..n {
        let roll = rng.unit();
        let status = if roll < 0.3 {
            Status::Keep
        } else if roll < 0.9 {
            Status::Discard
        } else {
            Status::Crash
        };
        let mut parent = if rng.unit() < 0.7 {
            *frontier
                .iter()
                .min_by(|a, b| values[**a].total_cmp(&values[**b]))
                .unwrap()
        } else {
            frontier[rng.next() as usize % frontier.len()]
        };
        // a stale view: sometimes the parent was already displaced by a record not yet seen
        if rng.unit() < 0.05 {
            let back = 1 + rng.next() as usize % 8;
            parent = plan[..i]
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, p)| p.1 == Status::Keep)
                .nth(back)
                .map_or(parent, |(j, _)| j);
        }
        let parent_val = values[parent];
        let val = match status {
            Status::Keep => parent_val - 0.0005 * rng.unit() - 1e-6,
            Status::Discard => parent_val + 0.002 * rng.unit(),
            Status::Crash => 0.0,
        };
        values.push(val);
        if status == Status::Keep {
            frontier.retain(|f| *f != parent || val >= values[*f]);
            frontier.push(i);
        }
        plan.push((Some(parent), status, val, (rng.next() % 8) as usize));
    }

    let mut ids: Vec<String> = vec![String::new(); n];
    let mut lines: Vec<String> = vec![String::new(); n];
    // Parents precede children in `plan`, so sign in order of depth-free chunks: each record
    // needs its parent's id, so ids are computed in order but signatures (the cost) in parallel.
    let mut records: Vec<ExperimentRecord> = Vec::with_capacity(n);
    for (i, (parent, status, val, who)) in plan.iter().enumerate() {
        let mut r = ExperimentRecord {
            parent: parent.map(|p| ids[p].clone()),
            depth: 0,
            code_cid: spore_spec::crypto::sha256_hex(format!("config {i}").as_bytes()),
            diff: format!("--- config\n+++ config\n@@ -1 +1 @@\n-lr = 0.003\n+lr = 0.00{i}"),
            dataset_cid: "tiny-shakespeare".into(),
            prepare_cid: String::new(),
            time_budget: 60,
            val_bpb: Number::Float(*val),
            peak_vram_mb: Number::Float(0.0),
            num_steps: 200 + (i % 100) as i64,
            num_params: 110_000,
            status: *status,
            description: format!("experiment {i}: adjust the learning rate schedule"),
            hypothesis: "a shorter warmup lets the model fit the budget".into(),
            agent_model: "baseline".into(),
            gpu_model: "CPU".into(),
            cuda_version: "cpu".into(),
            torch_version: "burn-0.21".into(),
            node_id: identities[*who].node_id(),
            task_id: task_id.clone(),
            timestamp: T0 + i as i64,
            signature: String::new(),
            id: String::new(),
            version: 2,
        };
        r.id = r.computed_id();
        ids[i] = r.id.clone();
        records.push(r);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (records, lines) in records.chunks_mut(chunk).zip(lines.chunks_mut(chunk)) {
            let identities = &identities;
            s.spawn(move || {
                for (r, line) in records.iter_mut().zip(lines.iter_mut()) {
                    let who = identities
                        .iter()
                        .find(|id| id.node_id() == r.node_id)
                        .unwrap();
                    r.sign_with(who);
                    *line = Message::Experiment(r.clone()).encode_body();
                }
            });
        }
    });
    let manifest_line = to_wire(&spore_spec::json::object([
        ("type", spore_spec::Value::Str("task".into())),
        ("payload", manifest.to_value()),
    ]));
    (manifest_line, lines)
}

/// The spored binary on the data dir `dir`.
pub fn spored(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spored"));
    cmd.arg("--data-dir").arg(dir);
    cmd
}

/// Imports `n` generated records of one task (and the task) into the data dir `dir`, through a
/// JSONL file written in `scratch`; returns the task's id and that file.
pub fn import_generated(
    n: usize,
    dir: &std::path::Path,
    scratch: &std::path::Path,
) -> (String, std::path::PathBuf) {
    let (manifest, lines) = generate(n);
    let task_id = serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["payload"]
        ["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = scratch.join("records.jsonl");
    std::fs::write(&file, format!("{manifest}\n{}\n", lines.join("\n"))).unwrap();
    drop(lines);
    let out = spored(dir).arg("import").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (task_id, file)
}

/// `spored explorer` over a fresh data dir holding `n` generated records of one task (imported);
/// stopped, and its data dir removed, when dropped.
pub struct Explorer {
    child: std::process::Child,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub task_id: String,
    _dir: tempfile::TempDir,
}

impl Explorer {
    pub fn over_generated(n: usize) -> Explorer {
        use std::io::BufRead as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        let (task_id, _) = import_generated(n, &dir, tmp.path());
        let mut child = spored(&dir)
            .args(["explorer", "--web-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let host = line
            .trim()
            .strip_prefix("explorer on http://")
            .unwrap_or_else(|| panic!("the explorer said {line:?}"))
            .to_string();
        Explorer {
            child,
            host,
            task_id,
            _dir: tmp,
        }
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `../shared/interop/pynode.sh`: runs a real sporemesh 0.6.0 node (its `setup.sh` first).
pub fn pynode() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/interop/pynode.sh")
}

/// A reference node started by `pynode.sh`, stopped (by its dir) when dropped.
pub struct Reference {
    pub dir: std::path::PathBuf,
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = std::process::Command::new(pynode())
            .arg("stop")
            .arg(&self.dir)
            .arg("--clean")
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay (`spored run --no-train`) on loopback with OS-chosen ports and no bootstrap peer;
/// SIGTERM when dropped.
pub struct Relay {
    pub child: std::process::Child,
    /// libp2p address (with `/p2p/<peer id>`), reference-protocol address, explorer host:port
    pub p2p: String,
    pub legacy: String,
    pub web: String,
    pub launched: std::time::Instant,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts a [`Relay`] on `dir` dialling `peer`, its log to `stderr`.
pub fn start_relay(
    dir: &std::path::Path,
    peer: Option<&str>,
    stderr: std::process::Stdio,
) -> Relay {
    let launched = std::time::Instant::now();
    let mut cmd = spored(dir);
    cmd.args([
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--p2p-port",
        "0",
    ])
    .args(["--web-port", "0", "--no-train", "--no-bootstrap"]);
    if let Some(p) = peer {
        cmd.args(["--peer", p]);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut p2p, mut legacy) = (String::new(), String::new());
    let web = loop {
        let line = lines.next().expect("spored printed its addresses").unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            p2p = a.to_string();
        } else if let Some(a) = line.strip_prefix("reference peers on ") {
            legacy = a.to_string();
        } else if let Some(a) = line.strip_prefix("explorer on http://") {
            break a.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Relay {
        child,
        p2p,
        legacy,
        web,
        launched,
    }
}

/// CPU seconds (user + system) process `pid` ("self": this one) has used so far.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The records the node on `dir` holds (`spored info`).
pub fn experiment_count(dir: &std::path::Path) -> u64 {
    let out = spored(dir).args(["--json", "info"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["experiment_count"].as_u64().unwrap_or(0)
}

/// Waits, looking every `poll`, until the node on `dir` holds `n` records; panics when it
/// gains none for 60 s.
pub fn wait_for_records(dir: &std::path::Path, n: u64, poll: std::time::Duration) {
    let (mut last, mut progress) = (0, std::time::Instant::now());
    while last < n {
        std::thread::sleep(poll);
        let now = experiment_count(dir);
        if now > last {
            (last, progress) = (now, std::time::Instant::now());
        }
        assert!(
            progress.elapsed() < std::time::Duration::from_secs(60),
            "{}: sync stalled at {last} of {n} records for 60 s",
            dir.display()
        );
    }
}
