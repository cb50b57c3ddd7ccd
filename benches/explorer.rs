//! Explorer latency (issue #5): a data dir with N records of one task (imported), served by
//! `spored explorer`; p50 / p99 of each route over 200 requests, each on a new connection.
//! With `--reference`, the same routes of a real sporemesh 0.6.0 node seeded with N records
//! (`../shared/interop`: run its `setup.sh` once), measured the same way in the same run.
//!
//!     cargo bench --bench explorer -- [--records 100000] [--requests 200]
//!                                     [--reference [--reference-requests 20]]

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Instant;

mod common;
use common::{free_port, pynode, Reference};

/// The whole response to `GET path` (it must be a 200).
fn get(host: &str, path: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
    raw
}

/// p50 / p99 (ms) and response size of `requests` GETs of each route, after one warm-up.
fn measure(host: &str, routes: &[String], task_id: &str, requests: usize) {
    for route in routes {
        get(host, route); // warm
        let mut times: Vec<f64> = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            bytes = get(host, route).len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        let mut name = route.split('?').next().unwrap().replace(task_id, "{id}");
        if route.contains("shape=dag") {
            name.push_str(" (dag)");
        }
        println!(
            "{name:<18} p50 {:9.2} ms  p99 {:9.2} ms  ({} KB)",
            pct(0.5),
            pct(0.99),
            bytes / 1024
        );
    }
}

fn routes(task_id: &str) -> Vec<String> {
    vec![
        "/api/tasks".to_string(),
        format!("/api/task/{task_id}"),
        format!("/api/graph?task_id={task_id}"),
        format!("/api/graph?shape=dag&task_id={task_id}"),
        format!("/api/frontier?task_id={task_id}"),
        "/api/stat".to_string(),
        format!("/api/recent?task_id={task_id}"),
        format!("/api/nodes?task_id={task_id}"),
        format!("/api/progress?task_id={task_id}"),
    ]
}

fn reference(n: usize, requests: usize) {
    let dir = tempfile::tempdir().unwrap().keep();
    let (port, web) = (free_port(), free_port());
    let started = Instant::now();
    let out = Command::new(pynode())
        .args(["start", &port.to_string(), "--web-port", &web.to_string()])
        .args(["--seed", &n.to_string(), "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let _node = Reference { dir };
    assert!(
        out.status.success(),
        "pynode.sh start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = format!("127.0.0.1:{web}");
    let raw = String::from_utf8(get(&host, "/api/tasks")).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let tasks: serde_json::Value = serde_json::from_str(body).unwrap();
    let task_id = tasks[0]["task_id"].as_str().unwrap().to_string();
    println!(
        "reference sporemesh 0.6.0: {n} records (seeded and started in {:.0} s); \
         {requests} requests per route",
        started.elapsed().as_secs_f64()
    );
    let mut routes = routes(&task_id);
    routes.retain(|r| {
        !r.contains("shape=dag") && !r.starts_with("/api/nodes") && !r.starts_with("/api/progress")
    });
    measure(&host, &routes, &task_id, requests);
}

fn main() {
    let n = common::arg("--records", 100_000);
    let requests = common::arg("--requests", 200);
    let explorer = common::Explorer::over_generated(n);
    let (host, task_id) = (explorer.host.clone(), explorer.task_id.clone());

    println!("spored: {n} records, one task; {requests} requests per route, one connection each");
    measure(&host, &routes(&task_id), &task_id, requests);
    drop(explorer);
    if std::env::args().any(|a| a == "--reference") {
        reference(n, common::arg("--reference-requests", 20));
    }
}
