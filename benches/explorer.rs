//! Explorer latency (issue #5): a data dir with N records of one task (imported), served by
//! `spored explorer`; p50 / p99 of each route over 200 requests, each on a new connection.
//!
//!     cargo bench --bench explorer -- [--records 100000] [--requests 200]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

mod common;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spored(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spored"));
    cmd.arg("--data-dir").arg(dir);
    cmd
}

fn get(host: &str, path: &str) -> usize {
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
    raw.len()
}

fn main() {
    let n = common::arg("--records", 100_000);
    let requests = common::arg("--requests", 200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let (manifest, lines) = common::generate(n);
    let task_id = serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["payload"]
        ["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = tmp.path().join("records.jsonl");
    std::fs::write(&file, format!("{manifest}\n{}\n", lines.join("\n"))).unwrap();
    drop(lines);
    let out = spored(&dir).arg("import").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = spored(&dir)
        .args(["explorer", "--web-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _node = Running(child);
    let host = line
        .trim()
        .strip_prefix("explorer on http://")
        .unwrap()
        .to_string();

    println!("{n} records, one task; {requests} requests per route, one connection each");
    for route in [
        "/api/tasks".to_string(),
        format!("/api/task/{task_id}"),
        format!("/api/graph?task_id={task_id}"),
        format!("/api/frontier?task_id={task_id}"),
        "/api/stat".to_string(),
        format!("/api/recent?task_id={task_id}"),
    ] {
        get(&host, &route); // warm
        let mut times: Vec<f64> = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            bytes = get(&host, &route);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        let name = route.split('?').next().unwrap().replace(&task_id, "{id}");
        println!(
            "{name:<18} p50 {:8.2} ms  p99 {:8.2} ms  ({} KB)",
            pct(0.5),
            pct(0.99),
            bytes / 1024
        );
    }
}
