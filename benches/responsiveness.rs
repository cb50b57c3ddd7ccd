//! Responsiveness of the System thread (issue #18): a 1 ms ticker runs on the actix System
//! thread of an in-process node (built with `Node::builder`, explorer served from the same
//! System) and records how late each tick fires, p50 / p99 / max, while the node
//!   (idle)     does nothing,
//!   (a)        cold-syncs N records from a relay (a `spored run` process holding them),
//!   (b)        answers 200 explorer requests/s,
//!   (c) big    receives 1 MB JSON objects of distinct keys on the reference protocol, and
//!   (c) pings  receives a flood of pings on the reference protocol.
//!
//!     cargo bench --bench responsiveness -- [--records 100000] [--seconds 5]

#![allow(clippy::disallowed_methods)] // this process owns its stores

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spore_actors::net::NetConfig;
use spore_actors::node::{Node, NodeOptions};
use spore_actors::Store;

mod common;
use common::{arg, cpu_seconds, generate, spored, start_relay};

/// Lateness of each tick (µs) while a scenario runs.
type Ticks = Arc<Mutex<Vec<u64>>>;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// `{"type":"pex_response","payload":{"k0":0,…}}` of about `bytes` bytes, every key distinct.
fn distinct_keys(bytes: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"type":"pex_response","payload":{"#);
    let mut i = 0;
    while s.len() < bytes {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{i}\":{i}"));
        i += 1;
    }
    s.push_str("}}");
    s.into_bytes()
}

fn report(name: &str, ticks: &[u64], extra: &str) {
    let mut t = ticks.to_vec();
    t.sort_unstable();
    let q = |p: f64| t[((t.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "{name:<28} ticks {:>6}  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  {extra}",
        t.len(),
        q(0.5),
        q(0.99),
        *t.last().unwrap_or(&0) as f64 / 1000.0
    );
}

/// Runs `load` (on its own thread) for at most `seconds` while the ticker records; returns the
/// ticks and what the load said.
fn measure(
    ticks: &Ticks,
    seconds: u64,
    load: impl FnOnce(Instant) -> String + Send + 'static,
) -> (Vec<u64>, String) {
    ticks.lock().unwrap().clear();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let said = std::thread::spawn(move || load(deadline)).join().unwrap();
    let taken = std::mem::take(&mut *ticks.lock().unwrap());
    (taken, said)
}

fn main() {
    let records = arg("--records", 100_000);
    let seconds = arg("--seconds", 5) as u64;
    let tmp = tempfile::tempdir().unwrap();

    // the relay holding the records the node will sync (started first: importing takes a while)
    let relay_dir = tmp.path().join("relay");
    let (manifest, lines) = generate(records);
    let file = tmp.path().join("records.jsonl");
    std::fs::write(&file, format!("{manifest}\n{}\n", lines.join("\n"))).unwrap();
    let imported = spored(&relay_dir)
        .arg("import")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let relay = start_relay(&relay_dir, None, std::process::Stdio::null());

    // the node under test, its explorer and the ticker, all on one System thread
    let ticks: Ticks = Arc::default();
    let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
    let node_dir = tmp.path().join("node");
    let stop = Arc::new(AtomicBool::new(false));
    let system = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        std::thread::Builder::new()
            .name("system".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let store = Arc::new(Store::open(&node_dir.join("db/spored.redb")).unwrap());
                    let node = Node::builder(
                        store.clone(),
                        NodeOptions {
                            seed: [42; 32],
                            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                            peers: vec![],
                            net: NetConfig::default(),
                            legacy_listen: Some("127.0.0.1:0".into()),
                            legacy: Default::default(),
                        },
                    )
                    .spawn()
                    .unwrap();
                    let registry = node.registry.clone();
                    let explorer = spore_web::Explorer {
                        store,
                        node_id: "bench".into(),
                        pinned_task: Default::default(),
                        node: Some(registry.clone()),
                        events: registry.writer.events().clone(),
                    };
                    let (web, bound) =
                        spore_web::serve("127.0.0.1:0".parse().unwrap(), explorer).unwrap();
                    let legacy = registry
                        .legacy
                        .send(spore_actors::legacy::GetLegacyAddr)
                        .await
                        .unwrap()
                        .unwrap();
                    addrs_tx.send((bound, legacy, registry.clone())).unwrap();
                    // the ticker: 1 ms period, lateness of each tick
                    let mut next = tokio::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        next += Duration::from_millis(1);
                        tokio::time::sleep_until(next).await;
                        let late = tokio::time::Instant::now().saturating_duration_since(next);
                        ticks.lock().unwrap().push(late.as_micros() as u64);
                        if late > Duration::from_millis(1) {
                            next = tokio::time::Instant::now(); // no burst of catch-up ticks
                        }
                    }
                    web.stop(true).await;
                    node.shutdown().await;
                })
            })
            .unwrap()
    };
    let (web, legacy, registry) = addrs_rx.recv().unwrap();
    println!(
        "cpu: {}",
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .unwrap_or("?")
    );

    let (idle, _) = measure(&ticks, seconds, |deadline| {
        std::thread::sleep(deadline - Instant::now());
        String::new()
    });
    report("idle", &idle, "");

    // (b) 200 explorer requests/s
    let (explorer, said) = measure(&ticks, seconds, move |deadline| {
        let paths = [
            "/api/stat",
            "/api/frontier",
            "/api/recent",
            "/api/tasks",
            "/",
        ];
        let mut done = 0;
        let start = Instant::now();
        while Instant::now() < deadline {
            let due = start + Duration::from_millis(5 * done as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut s = TcpStream::connect(web).unwrap();
            let path = paths[done % paths.len()];
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
            done += 1;
        }
        format!(
            "{:.0} requests/s",
            done as f64 / start.elapsed().as_secs_f64()
        )
    });
    report("(b) explorer 200/s", &explorer, &said);

    // (c) hostile frames on the reference protocol: 1 MB objects of distinct keys
    let big = frame(&distinct_keys(1 << 20));
    let (hostile, said) = measure(&ticks, seconds, move |deadline| {
        let mut sent = 0;
        let start = Instant::now();
        while Instant::now() < deadline && sent < 20 {
            let Ok(mut s) = TcpStream::connect(legacy) else {
                break;
            };
            if s.write_all(&big).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        format!(
            "{sent} frames of 1 MiB in {:.1} s",
            start.elapsed().as_secs_f64()
        )
    });
    report("(c) 1 MB distinct keys", &hostile, &said);

    let ping = frame(br#"{"type":"ping","payload":{}}"#);
    let (pings, said) = measure(&ticks, seconds, move |deadline| {
        let mut s = TcpStream::connect(legacy).unwrap();
        s.set_nonblocking(false).unwrap();
        let burst: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1000)
            .collect();
        let mut sent = 0u64;
        while Instant::now() < deadline {
            if s.write_all(&burst).is_err() {
                break; // the node closed the flooding connection
            }
            sent += 1000;
        }
        format!("{sent} pings sent")
    });
    report("(c) ping flood", &pings, &said);

    // (a) cold sync of the relay's records: the node dials the relay and syncs everything
    let p2p: libp2p::Multiaddr = relay.p2p.parse().unwrap();
    let peers = registry.peers.clone();
    let cpu_before = cpu_seconds("self");
    let (sync, said) = measure(&ticks, 900, move |deadline| {
        peers.do_send(spore_actors::peer_manager::SetPeers(vec![p2p]));
        let start = Instant::now();
        let mut held = 0;
        while held < records && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            held = stat_count(web).unwrap_or(held);
        }
        let secs = start.elapsed().as_secs_f64();
        format!(
            "{held} records in {secs:.1} s, {:.0} records/s",
            held as f64 / secs
        )
    });
    let sync_cpu = cpu_seconds("self") - cpu_before;
    report("(a) cold sync", &sync, &said);

    // the check alone on the same records, single-threaded (`spored verify`), same run
    let verify_start = Instant::now();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_spored"))
        .arg("verify")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(verified.success());
    let verify_wall = verify_start.elapsed().as_secs_f64();
    println!(
        "sync cost: {:.1} µs CPU per record on the syncing node; `spored verify` of the same file: {:.1} µs per record (wall, one thread)",
        sync_cpu * 1e6 / records as f64,
        verify_wall * 1e6 / records as f64,
    );
    stop.store(true, Ordering::Relaxed);
    system.join().unwrap();
    drop(relay);
}

/// `experiment_count` of the explorer's `/api/stat`.
fn stat_count(web: std::net::SocketAddr) -> Option<usize> {
    let mut s = TcpStream::connect(web).ok()?;
    write!(
        s,
        "GET /api/stat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let body = reply.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["experiment_count"].as_u64().map(|n| n as usize)
}
