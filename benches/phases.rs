//! Where one imported record's CPU time goes, phase by phase, single-threaded:
//!
//!     cargo bench --bench phases -- [--records 20000]

#![allow(clippy::disallowed_methods)] // this process owns its stores

use std::time::Instant;

use spore_spec::wire::Message;
use spore_spec::Signed;

mod common;

fn per_record(label: &str, n: usize, started: Instant) {
    println!(
        "{label:<28} {:7.1} us/record",
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let n = common::arg("--records", 20_000);
    let (_, lines) = common::generate(n);

    let t = Instant::now();
    for line in &lines {
        std::hint::black_box(spore_spec::json::parse(line.as_bytes()).unwrap());
    }
    per_record("json parse", n, t);

    let t = Instant::now();
    let mut records = Vec::with_capacity(n);
    for line in &lines {
        if let Some(Message::Experiment(r)) = Message::decode_body(line.as_bytes()).unwrap() {
            records.push(r);
        }
    }
    per_record("decode (parse + fields)", n, t);

    let t = Instant::now();
    for r in &records {
        std::hint::black_box(spore_spec::crypto::sha256_hex(&r.canonical_bytes()));
    }
    per_record("canonical bytes + sha256", n, t);

    let t = Instant::now();
    for r in &records {
        std::hint::black_box(r.to_wire_json());
    }
    per_record("wire json (stored form)", n, t);

    let sample = n.min(5_000);
    let t = Instant::now();
    for r in records.iter().take(sample) {
        r.verify().unwrap();
    }
    per_record("verify (id + Ed25519)", sample, t);

    let dir = tempfile::tempdir().unwrap();
    let store = spore_actors::Store::open(&dir.path().join("bench.redb")).unwrap();
    let t = Instant::now();
    store
        .write(|w| {
            for r in records {
                w.insert_experiment(r)?;
            }
            Ok(())
        })
        .unwrap();
    per_record("store insert + commit", n, t);
}
