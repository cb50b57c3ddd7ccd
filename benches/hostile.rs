//! An honest cold sync from a node under the mixed hostile load of issue #19's tests (issue #19's
//! benchmark). Node A (a `spored run` relay on 127.0.0.1) holds N records; node B starts empty
//! with A as its peer and syncs them all, first with nobody else around, then again (a fresh B)
//! while strangers on the reference protocol, from 127.0.0.2–9, at once:
//!   - hold silent connections (8 from each of four addresses),
//!   - flood pings,
//!   - send 1 MB JSON objects of distinct keys,
//!   - send invalid objects until they are cut off, and reconnect,
//!   - push a flood of signed orphans (records naming parents nobody has) from one key,
//!   - push a flood of signed votes (verifications under fresh event ids) about one record,
//!   - answer with pex_responses nobody asked for, naming loopback listeners,
//!   - ask for a full sync and never read the answer.
//!
//! Prints records/s of both syncs and their ratio (target ≥ 0.8), and what A and the strangers
//! spent.
//!
//!     cargo bench --bench hostile -- [--records 10000] [--seconds-between 2] [--attacks 63]
//!
//! `--attacks` picks attacks by bit: 1 silent connections, 2 pings, 4 big objects, 8 invalid
//! objects and unasked pex_responses, 16 orphans and votes, 32 the peer that never reads.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spore_spec::json::{object, Value};
use spore_spec::wire::Message;
use spore_spec::{ControlEvent, ExperimentRecord, Identity, Number, Signed, Status};

mod common;
use common::{arg, cpu_seconds, start_relay, wait_for_records};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A TCP connection to `to` from the loopback address `127.0.0.<last>`.
fn connect_from(last: u8, to: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket
        .bind(&SocketAddr::from(([127, 0, 0, last], 0)).into())
        .ok()?;
    socket.connect(&to.into()).ok()?;
    let stream: TcpStream = socket.into();
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    Some(stream)
}

/// Cold-syncs a fresh node from `a`; records/s, and the syncing node's CPU seconds.
fn cold_sync(tmp: &Path, name: &str, a: &str, n: u64) -> (f64, f64) {
    let dir = tmp.join(name);
    let started = Instant::now();
    let b = start_relay(&dir, Some(a), Stdio::null());
    wait_for_records(&dir, n, Duration::from_millis(100));
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&b.child.id().to_string());
    (n as f64 / secs, cpu)
}

/// Signed records of one key, each naming a parent nobody has.
fn orphans(who: &Identity, task: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut r = ExperimentRecord {
                parent: Some(spore_spec::crypto::sha256_hex(
                    format!("nobody {i}").as_bytes(),
                )),
                depth: 1,
                code_cid: "c".repeat(64),
                dataset_cid: "kjv".into(),
                time_budget: 60,
                val_bpb: Number::Float(1.0),
                peak_vram_mb: Number::Float(0.0),
                status: Status::Keep,
                description: format!("orphan {i}"),
                agent_model: "flood".into(),
                gpu_model: "CPU".into(),
                cuda_version: "cpu".into(),
                torch_version: "x".into(),
                node_id: who.node_id(),
                task_id: task.into(),
                timestamp: 1_767_225_600 + i as i64,
                version: 2,
                ..Default::default()
            };
            r.sign_with(who);
            frame(Message::Experiment(r).encode_body().as_bytes())
        })
        .collect()
}

/// Signed verifications by one key of record `id`, each under a fresh event id.
fn votes(who: &Identity, id: &str, task: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let s = |x: &str| Value::Str(x.into());
            let mut e = ControlEvent {
                event_type: "verification".into(),
                payload: object([
                    ("event_id", s(&format!("verification:{id}:{i}"))),
                    ("experiment_id", s(id)),
                    ("task_id", s(task)),
                    ("verifier_id", s(&who.node_id())),
                    ("verifier_bpb", Value::Float(1.0)),
                    ("verifier_gpu", s("CPU")),
                ]),
                node_id: who.node_id(),
                timestamp: 1_767_225_600 + (n - i) as i64,
                signature: String::new(),
                id: String::new(),
                version: 1,
            };
            e.sign_with(who);
            frame(Message::Control(e).encode_body().as_bytes())
        })
        .collect()
}

/// Runs every attack against `legacy` until `stop`; frames and connections made, in `sent`.
fn attack(
    which: usize,
    legacy: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    floods: Vec<Vec<u8>>,
    listeners: Vec<String>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<_>, f: Box<dyn FnOnce() + Send>| {
        threads.push(std::thread::spawn(f));
    };
    // silent connections, 8 from each of four addresses (the per-address cap), reopened when
    // the first-frame deadline closes them
    if which & 1 != 0 {
        let (stop, sent) = (stop.clone(), sent.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    held.retain(|s: &TcpStream| {
                        let mut b = [0u8; 1];
                        let _ = s.set_nonblocking(true);
                        !matches!((&*s).read(&mut b), Ok(0))
                    });
                    for last in 2..6 {
                        while held.len() < 32 {
                            match connect_from(last, legacy) {
                                Some(s) => {
                                    held.push(s);
                                    sent.fetch_add(1, Ordering::Relaxed);
                                }
                                None => break,
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }),
        );
    }
    // a ping flood, 1 MB objects of distinct keys, invalid objects (reconnecting when cut off),
    // and the floods of orphans and votes: each its own connection from its own address
    let ping = frame(br#"{"type":"ping","payload":{}}"#);
    let mut big = String::from(r#"{"type":"pex_response","payload":{"#);
    let mut i = 0;
    while big.len() < 1_000_000 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!("\"k{i}\":{i}"));
        i += 1;
    }
    big.push_str("}}");
    let big = frame(big.as_bytes());
    let invalid = frame(br#"{"type":"experiment","payload":{"id":"x"}}"#);
    let unasked = frame(
        Message::PexResponse { peers: listeners }
            .encode_body()
            .as_bytes(),
    );
    let streams: Vec<(u8, Vec<Vec<u8>>, Duration)> = vec![
        (6, vec![ping], Duration::ZERO),
        (7, vec![big], Duration::from_millis(50)),
        (8, vec![invalid, unasked], Duration::from_millis(5)),
        (9, floods, Duration::ZERO),
    ];
    for (bit, (last, frames, pause)) in streams.into_iter().enumerate() {
        if which & (2 << bit) == 0 {
            continue;
        }
        let (stop, sent) = (stop.clone(), sent.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Some(mut s) = connect_from(last, legacy) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    // drain what the node says, so only the slow reader below is slow
                    let mut r = s.try_clone().unwrap();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
                    });
                    while !stop.load(Ordering::Relaxed) {
                        if s.write_all(&frames[i % frames.len()]).is_err() {
                            break;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }),
        );
    }
    // a peer that asks for everything and never reads
    if which & 32 != 0 {
        let (stop, sent) = (stop.clone(), sent.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let ask = frame(br#"{"type":"sync_request","payload":{"since":0}}"#);
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if held.len() < 4 {
                        if let Some(mut s) = connect_from(10, legacy) {
                            let _ = s.write_all(&ask);
                            sent.fetch_add(1, Ordering::Relaxed);
                            held.push(s);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }),
        );
    }
    threads
}

fn main() {
    let n = arg("--records", 10_000);
    let between = arg("--seconds-between", 2) as u64;
    let tmp = tempfile::tempdir().unwrap();
    let da = tmp.path().join("a");
    let (task_id, file) = common::import_generated(n, &da, tmp.path());
    // the file's first line is the task, the second the first record
    let records = std::fs::read_to_string(&file).unwrap();
    let first = records.lines().nth(1).unwrap();
    let first_id = serde_json::from_str::<serde_json::Value>(first).unwrap()["payload"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(records);
    let a = start_relay(&da, None, Stdio::null());
    let legacy: SocketAddr = a.legacy.parse().unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let (quiet, quiet_cpu) = cold_sync(tmp.path(), "b-quiet", &a.p2p, n as u64);
    println!("honest cold sync of {n} records, no attack: {quiet:.0} records/s (B used {quiet_cpu:.1} s CPU)");
    std::thread::sleep(Duration::from_secs(between));

    // loopback listeners that count the connections a pex_response makes A dial
    let dialled = Arc::new(AtomicU64::new(0));
    let mut listeners = Vec::new();
    for _ in 0..4 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listeners.push(l.local_addr().unwrap().to_string());
        let dialled = dialled.clone();
        std::thread::spawn(move || {
            for _ in l.incoming() {
                dialled.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let stranger = Identity::from_seed([0x66; 32]);
    let mut floods = orphans(&stranger, &task_id, 3_000);
    floods.extend(votes(&stranger, &first_id, &task_id, 3_000));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let me_before = cpu_seconds("self");
    let a_before = cpu_seconds(&a.child.id().to_string());
    let which = arg("--attacks", 63);
    let threads = attack(which, legacy, stop.clone(), sent.clone(), floods, listeners);
    std::thread::sleep(Duration::from_secs(2));
    let (hostile, hostile_cpu) = cold_sync(tmp.path(), "b-attacked", &a.p2p, n as u64);
    stop.store(true, Ordering::Relaxed);
    let me = cpu_seconds("self") - me_before;
    let a_cpu = cpu_seconds(&a.child.id().to_string()) - a_before;
    println!(
        "honest cold sync of {n} records under attack: {hostile:.0} records/s (B used {hostile_cpu:.1} s CPU)"
    );
    println!(
        "ratio {:.2} (target >= 0.8); the strangers made {} frames and connections, using {me:.1} s CPU; A used {a_cpu:.1} s CPU meanwhile; A dialled {} loopback listeners named in unasked pex_responses",
        hostile / quiet,
        sent.load(Ordering::Relaxed),
        dialled.load(Ordering::Relaxed)
    );
    let pa = a.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pa}/status")).unwrap_or_default();
    let kib = |f: &str| {
        status
            .lines()
            .find(|l| l.starts_with(f))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    println!(
        "A: peak RSS {} KiB, now {} KiB, open files {}",
        kib("VmHWM:"),
        kib("VmRSS:"),
        std::fs::read_dir(format!("/proc/{pa}/fd")).map_or(0, |d| d.count())
    );
    drop(threads);
}
