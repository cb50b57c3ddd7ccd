//! Cold sync across the legacy bridge (issue #6), in one run on one disk: a node holding N
//! records (one task, one artifact each, seeded by the reference's own code) and a fresh node
//! that dials it; seconds from the fresh node's launch until it holds all N records.
//!
//! * reference → reference: two sporemesh 0.6.0 nodes (`../shared/interop/pynode.sh`);
//! * reference → spored: spored dials the reference node (the reference protocol);
//! * spored → reference: a fresh reference node dials spored's legacy listener;
//! * spored → spored: over libp2p (the native link), and over the reference protocol.
//!
//! The reference node's time is read from its status file (`t_expect_reached - t_launch`: its
//! interpreter's start is included, as spored's process start is).
//!
//!     cargo bench --bench interop_sync -- [--records N]   (default: 1,000 then 5,000)

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, pynode, spored, start_relay, Reference, Relay};

fn get_json(host: &str, path: &str) -> serde_json::Value {
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return serde_json::Value::Null;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_default()
}

/// Seconds from the node's launch until it holds `n` records (polled every 20 ms).
fn spored_time(node: &Relay, n: u64) -> f64 {
    let mut last = (0, Instant::now());
    loop {
        let count = get_json(&node.web, "/api/stat")["experiment_count"]
            .as_u64()
            .unwrap_or(0);
        if count >= n {
            return node.launched.elapsed().as_secs_f64();
        }
        if count > last.0 {
            last = (count, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(120),
            "sync stalled at {count} of {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn artifacts(dir: &Path) -> u64 {
    let out = spored(dir).args(["--json", "info"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["artifact_count"].as_u64().unwrap_or(0)
}

/// A reference node: seeded with `seed` records, or dialling `peer` and expecting `expect`.
fn start_reference(seed: u64, peer: Option<&str>, expect: u64) -> (Reference, String) {
    let dir = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let mut cmd = Command::new(pynode());
    cmd.args(["start", &port.to_string(), "--dir"]).arg(&dir);
    if seed > 0 {
        cmd.args(["--seed", &seed.to_string()]);
    }
    if let Some(p) = peer {
        cmd.args(["--peer", p, "--expect", &expect.to_string()]);
    }
    let out = cmd.output().unwrap();
    let node = Reference { dir };
    assert!(
        out.status.success(),
        "pynode.sh start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (node, format!("127.0.0.1:{port}"))
}

/// Seconds from the reference node's launch until it held `expect` records.
fn reference_time(node: &Reference) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status: serde_json::Value = std::fs::read_to_string(node.dir.join("status.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        if let (Some(reached), Some(launch)) = (
            status["t_expect_reached"].as_f64(),
            status["t_launch"].as_f64(),
        ) {
            return reached - launch;
        }
        assert!(
            Instant::now() < deadline,
            "the reference node never got there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn row(n: u64, path: &str, secs: f64) {
    println!("| {n} | {path} | {secs:.2} | {:.0} |", n as f64 / secs);
}

fn run(n: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (source, source_addr) = start_reference(n, None, 0);

    let (sink, _) = start_reference(0, Some(&source_addr), n);
    row(n, "reference → reference", reference_time(&sink));
    drop(sink);

    let holder = start_relay(
        &tmp.path().join("holder"),
        Some(&source_addr),
        Stdio::null(),
    );
    row(n, "reference → spored", spored_time(&holder, n));
    // the holder becomes the source: it fetches every artifact, then the reference leaves
    let deadline = Instant::now() + Duration::from_secs(300);
    while artifacts(&tmp.path().join("holder")) < n {
        assert!(Instant::now() < deadline, "artifacts not fetched");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(source);

    let (sink, _) = start_reference(0, Some(&holder.legacy), n);
    row(n, "spored → reference", reference_time(&sink));
    drop(sink);

    let sink = start_relay(&tmp.path().join("p2p"), Some(&holder.p2p), Stdio::null());
    row(n, "spored → spored (libp2p)", spored_time(&sink, n));
    drop(sink);

    let sink = start_relay(
        &tmp.path().join("legacy"),
        Some(&holder.legacy),
        Stdio::null(),
    );
    row(
        n,
        "spored → spored (reference protocol)",
        spored_time(&sink, n),
    );
}

fn main() {
    let sizes: Vec<u64> = match common::arg("--records", 0) {
        0 => vec![1_000, 5_000],
        n => vec![n as u64],
    };
    println!(
        "{} cores; time from the fresh node's launch until it holds every record",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| records | from → to | seconds | records/s |");
    println!("|---|---|---|---|");
    for n in sizes {
        run(n);
    }
}
