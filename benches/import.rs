//! Import and query benchmark (issue #2 targets): `spored import` of N signed v2 records in one
//! task (a realistic tree: 30 % keep, 60 % discard, 10 % crash), then `spored frontier` and
//! `spored status` at that size, and the same work done by the reference when its venv exists.
//!
//!     cargo bench --bench import -- [--records 100000] [--reference-records 10000]
//!
//! Figures go to stdout; docs/benchmarks.md records them with the machine they ran on.

#![allow(clippy::disallowed_methods)] // this process owns its stores

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Goal, Signed};

mod common;
use common::{arg, generate};

fn spored(data_dir: &Path, args: &[&str]) -> (String, f64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_spored"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("spored runs");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "spored {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), elapsed)
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let n = arg("--records", 100_000);
    let reference_n = arg("--reference-records", 10_000);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let started = Instant::now();
    let (manifest_line, lines) = generate(n);
    let file = dir.path().join("records.jsonl");
    let mut text = manifest_line;
    text.push('\n');
    text.push_str(&lines.join("\n"));
    text.push('\n');
    std::fs::write(&file, &text).unwrap();
    println!(
        "generated {n} signed records ({:.1} MB) in {:.1} s",
        text.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if let Some(i) = std::env::args().position(|a| a == "--save") {
        let to = std::env::args().nth(i + 1).expect("--save PATH");
        std::fs::write(&to, &text).unwrap();
    }
    drop(text);
    drop(lines);

    let data = dir.path().join("node");
    let (out, wall) = spored(&data, &["--json", "import", file.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["experiments"].as_u64(), Some(n as u64));
    println!(
        "spored import: {n} records in {wall:.2} s wall (process) = {:.0} records/s; peak RSS {:.1} MiB",
        n as f64 / wall,
        report["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0
    );

    let (tasks, _) = spored(&data, &["--json", "tasks"]);
    let tasks: serde_json::Value = serde_json::from_str(tasks.trim()).unwrap();
    let task = tasks[0]["task_id"].as_str().unwrap().to_string();

    // Query latency inside the process (what a long-running node pays per request).
    let store = spore_actors::Store::open(&data.join("db/spored.redb")).unwrap();
    let (mut top, mut all, mut status_lat) = (Vec::new(), Vec::new(), Vec::new());
    let mut frontier_len = 0;
    for _ in 0..200 {
        // what `spored frontier` shows by default: the best 50, loaded
        let t = Instant::now();
        let read = store.read().unwrap();
        let ids = read
            .frontier_ids_limited(&task, Goal::Minimize, 50)
            .unwrap();
        let _records: Vec<_> = ids
            .iter()
            .map(|id| read.experiment(id).unwrap().unwrap())
            .collect();
        top.push(t.elapsed().as_secs_f64() * 1e3);

        // the whole frontier, every record loaded (`--limit 0`)
        let t = Instant::now();
        let read = store.read().unwrap();
        let ids = read.frontier_ids(&task, Goal::Minimize).unwrap();
        let records: Vec<_> = ids
            .iter()
            .map(|id| read.experiment(id).unwrap().unwrap())
            .collect();
        frontier_len = records.len();
        all.push(t.elapsed().as_secs_f64() * 1e3);

        // what `spored status` computes
        let t = Instant::now();
        let read = store.read().unwrap();
        let _stats = read.task_stats(&task).unwrap().unwrap();
        let _size = read.frontier_size(&task, Goal::Minimize).unwrap();
        let best = read.frontier_ids_limited(&task, Goal::Minimize, 1).unwrap();
        let _best = read.experiment(&best[0]).unwrap();
        let recent = read.recent_ids(&task, 10).unwrap();
        let _recent: Vec<_> = recent
            .iter()
            .map(|id| read.experiment(id).unwrap())
            .collect();
        status_lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(store);
    println!(
        "in-process at {n} records: frontier top 50 p50 {:.3} ms p99 {:.3} ms; whole frontier ({frontier_len} records) p50 {:.3} ms; status p50 {:.3} ms p99 {:.3} ms",
        percentile(top.clone(), 0.5),
        percentile(top, 0.99),
        percentile(all, 0.5),
        percentile(status_lat.clone(), 0.5),
        percentile(status_lat, 0.99)
    );

    // The Ed25519 ceiling on this machine, now: ring verifying these records on every core.
    let sample: Vec<ExperimentRecord> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .skip(1)
        .take(20_000)
        .map(|l| match Message::decode_body(l.as_bytes()).unwrap() {
            Some(Message::Experiment(r)) => r,
            _ => unreachable!(),
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in sample.chunks(sample.len().div_ceil(threads)) {
            s.spawn(move || chunk.iter().for_each(|r| r.verify().unwrap()));
        }
    });
    println!(
        "ring Ed25519 verify + id check alone on {threads} threads: {:.0} records/s",
        sample.len() as f64 / t.elapsed().as_secs_f64()
    );

    // The whole command, process start and store open included.
    let mut frontier_cmd = Vec::new();
    let mut status_cmd = Vec::new();
    for _ in 0..20 {
        frontier_cmd.push(spored(&data, &["frontier", "--task", &task]).1 * 1e3);
        status_cmd.push(spored(&data, &["status", "--task", &task]).1 * 1e3);
    }
    println!(
        "spored frontier command p50 {:.1} ms; spored status command p50 {:.1} ms (process start included)",
        percentile(frontier_cmd, 0.5),
        percentile(status_cmd, 0.5)
    );

    if reference_n == 0 {
        return;
    }
    let venv = std::env::var("PYSPORE_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/spore-interop/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = Path::new(&venv).join("bin/python");
    if !python.exists() {
        println!("reference: skipped (run ../shared/interop/setup.sh to install it)");
        return;
    }
    let refdir = dir.path().join("reference");
    std::fs::create_dir_all(&refdir).unwrap();
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/reference_import.py"
        ))
        .arg(&file)
        .arg(reference_n.to_string())
        .arg(&refdir)
        .output()
        .unwrap();
    if !out.status.success() {
        println!(
            "reference: failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "reference at {} records: verify {:.0}/s, insert {:.0}/s, import {:.0}/s; frontier p50 {:.1} ms; status p50 {:.1} ms",
        r["records"], r["verify_per_s"].as_f64().unwrap(), r["insert_per_s"].as_f64().unwrap(),
        r["import_per_s"].as_f64().unwrap(), r["frontier_ms_p50"].as_f64().unwrap(), r["status_ms_p50"].as_f64().unwrap()
    );
}
