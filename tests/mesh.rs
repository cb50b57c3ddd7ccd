//! End-to-end: real `spored run` processes on 127.0.0.1. Records published on one node reach
//! all; a node killed with SIGKILL and restarted catches up with nothing lost.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as J;

mod support;
use support::{info, spored, start, wait_until, Running};

/// GET `path` from the explorer at `base`, as JSON (it must answer 200).
fn http_json(base: &str, path: &str) -> J {
    let (status, body) = support::http_get(base, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn holds(dir: &Path, experiments: i64, tasks: i64, events: i64) -> bool {
    let i = info(dir);
    i["experiment_count"] == experiments
        && i["task_count"] == tasks
        && i["control_event_count"] == events
}

/// The reference's vectors as JSONL, split in two parts.
fn vector_parts(dir: &Path) -> (PathBuf, PathBuf) {
    let lines = support::vector_lines();
    let (first, second) = lines.split_at(20);
    let (a, b) = (dir.join("part1.jsonl"), dir.join("part2.jsonl"));
    std::fs::write(&a, first.join("\n")).unwrap();
    std::fs::write(&b, second.join("\n")).unwrap();
    (a, b)
}

fn import(dir: &Path, file: &Path) -> String {
    let out = spored(dir).arg("import").arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn three_nodes_share_records_and_a_killed_node_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db, dc) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let (part1, part2) = vector_parts(tmp.path());

    let a = start(&da, &[]);
    let b = start(&db, &[&a.addr]);
    let c = start(&dc, &[&a.addr, &b.addr]);
    let out = import(&da, &part1);
    assert!(out.contains("Sent 20 objects to the running node"), "{out}");
    // part 1: 4 tasks and 16 records
    for dir in [&da, &db, &dc] {
        wait_until("part 1 everywhere", 60, || holds(dir, 16, 4, 0));
    }

    // each node's explorer serves what it holds
    for node in [&a, &b, &c] {
        let stat = http_json(&node.web, "/api/stat");
        assert_eq!(stat["experiment_count"], 16, "{stat}");
    }

    // SIGKILL c, publish the rest, restart c: it catches up from its peers
    let mut c = c;
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    drop(c);
    import(&db, &part2);
    wait_until("part 2 at a", 60, || holds(&da, 32, 4, 6));
    let c = start(&dc, &[&a.addr]);
    wait_until("c caught up", 60, || holds(&dc, 32, 4, 6));
    assert_eq!(info(&dc)["held_count"], 0);

    // what c took from its peers reaches the disk within a second (`store_writer::LAZY_FOR`):
    // killed hard after that, its store holds all of it
    std::thread::sleep(Duration::from_millis(1500));
    let mut c = c;
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    drop(c);
    let offline = info(&dc);
    assert_eq!(
        (&offline["experiment_count"], &offline["task_count"]),
        (&J::from(32), &J::from(4)),
        "{offline}"
    );
    let c = start(&dc, &[&a.addr]);
    wait_until("c back", 60, || holds(&dc, 32, 4, 6));

    // stop everything cleanly; the stores are intact and agree
    for mut node in [a, b, c] {
        let pid = node.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "node {pid} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let frontier = |dir: &Path| {
        let out = spored(dir)
            .args(["--json", "frontier", "--limit", "0", "--task", "3094a2df"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(frontier(&da), frontier(&dc));
    assert_eq!(frontier(&da), frontier(&db));
    assert!(!da.join("spored.sock").exists(), "socket left behind");
}

#[test]
fn a_node_whose_stdout_reader_went_away_keeps_serving_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spored(tmp.path())
        .args(support::LOOPBACK_RUN)
        .arg("--no-train")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // read the first line, then close the pipe: later lines go to a reader that is gone
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let node = Running {
        child,
        addr: String::new(),
        legacy: String::new(),
        web: String::new(),
    };
    wait_until("the control socket", 60, || {
        tmp.path().join("spored.sock").exists()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(info(tmp.path())["experiment_count"], 0);
    let mut node = node;
    assert!(node.child.try_wait().unwrap().is_none(), "node died");
    let pid = node.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "node {pid} ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_control_socket_is_private_and_an_endless_line_costs_only_its_connection() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let node = start(tmp.path(), &[]);
    let socket = tmp.path().join("spored.sock");
    wait_until("the control socket", 60, || socket.exists());
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(tmp.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "data dir mode {dir_mode:o}");

    // a command line that never ends: the node reads 12 MiB of it, then hangs up
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut written = 0;
    while written < 64 {
        if stream.write_all(&chunk).is_err() {
            break; // the node closed the connection
        }
        written += 1;
    }
    assert!(
        written < 64,
        "the node kept reading a line of {written} MiB"
    );
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // and it still answers
    assert_eq!(info(tmp.path())["experiment_count"], 0);
    drop(node);
}
