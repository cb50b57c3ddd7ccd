//! Cold sync between two `spored run` processes on 127.0.0.1 (issue #3): node A holds N records,
//! node B starts empty with A as its peer; records/s until B holds them all, and the peak RSS of
//! both (A is a relay holding N records).
//!
//!     cargo bench --bench sync -- [--records 100000]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{cpu_seconds, spored, start_relay, wait_for_records};

/// `$BENCH_LOG_DIR/<name>.log` when that is set.
fn log(name: &str) -> Stdio {
    match std::env::var_os("BENCH_LOG_DIR") {
        Some(d) => {
            Stdio::from(std::fs::File::create(Path::new(&d).join(format!("{name}.log"))).unwrap())
        }
        None => Stdio::null(),
    }
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n = common::arg("--records", 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let (_, file) = common::import_generated(n, &da, tmp.path());

    let a = start_relay(&da, None, log("a"));
    std::thread::sleep(Duration::from_secs(1));
    let pa = a.child.id();
    println!(
        "A started, before serving: RSS {:.1} MiB ({} KiB anonymous)",
        proc_kib(pa, "VmRSS:") as f64 / 1024.0,
        proc_kib(pa, "RssAnon:")
    );
    let started = Instant::now();
    let b = start_relay(&db, Some(&a.p2p), log("b"));
    wait_for_records(&db, n as u64, Duration::from_millis(250));
    let secs = started.elapsed().as_secs_f64();
    let pb = b.child.id();
    let cpu_b = cpu_seconds(&pb.to_string());
    println!(
        "CPU used: A {:.1} s, B {:.1} s (of {:.1} s available on {} cores)",
        cpu_seconds(&pa.to_string()),
        cpu_b,
        secs * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "cold sync of {n} records: {secs:.1} s = {:.0} records/s (includes B's start-up)",
        n as f64 / secs
    );
    println!(
        "peak RSS: A (relay serving {n} records) {:.1} MiB, now {:.1} MiB; B (syncing) {:.1} MiB, now {:.1} MiB",
        proc_kib(pa, "VmHWM:") as f64 / 1024.0,
        proc_kib(pa, "VmRSS:") as f64 / 1024.0,
        proc_kib(pb, "VmHWM:") as f64 / 1024.0,
        proc_kib(pb, "VmRSS:") as f64 / 1024.0,
    );
    println!(
        "A now: {} KiB anonymous, {} KiB file-backed (the binary's pages)",
        proc_kib(pa, "RssAnon:"),
        proc_kib(pa, "RssFile:"),
    );
    if std::env::var_os("BENCH_SMAPS").is_some() {
        let smaps = std::fs::read_to_string(format!("/proc/{pa}/smaps")).unwrap_or_default();
        let mut region = String::new();
        for line in smaps.lines() {
            if !line.contains(':')
                || line
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('-'))
            {
                region = line.to_string();
            } else if let Some(kib) = line.strip_prefix("Rss:") {
                let kib: u64 = kib
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                if kib > 1024 {
                    println!("  {kib:>7} KiB  {region}");
                }
            }
        }
    }
    // the check alone on the same records (parse, id, signature; `spored verify`, one thread),
    // with both nodes idle
    let verify_start = Instant::now();
    let verified = spored(&da)
        .arg("verify")
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(verified.success());
    let check = verify_start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let synced = cpu_b * 1e6 / n as f64;
    println!(
        "sync cost: {synced:.1} µs CPU per record on the syncing node (start-up included); the check alone: {check:.1} µs per record; ratio {:.2}",
        synced / check
    );
}
