//! The legacy bridge against the real reference implementation (sporemesh 0.6.0, run by
//! `../shared/interop/pynode.sh`) and against a hostile peer speaking its wire protocol.
//!
//! The reference's venv is made by `../shared/interop/setup.sh` (PyPI); where that cannot run,
//! the tests that need it say they skipped, unless `SPORED_INTEROP_TEST=required` (set by
//! `.ci/run`), which makes it a failure.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use support::{http_get, import_lines as import, info, spored, start_with, vectors, wait_until};

/// `../shared/interop`, or `$SPORE_SHARED/interop`.
fn interop_dir() -> PathBuf {
    match std::env::var_os("SPORE_SHARED") {
        Some(dir) => PathBuf::from(dir).join("interop"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/interop"),
    }
}

/// The reference venv's python, after `setup.sh`; `None` (test skipped) where it cannot be made.
fn reference_python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    let py = PY.get_or_init(|| {
        let setup = interop_dir().join("setup.sh");
        let out = Command::new("bash").arg(&setup).output();
        match out {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                text.lines().last().map(|l| PathBuf::from(l.trim()))
            }
            Ok(out) => {
                eprintln!(
                    "setup.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("cannot run {}: {e}", setup.display());
                None
            }
        }
    });
    if py.is_none() {
        assert!(
            std::env::var("SPORED_INTEROP_TEST").as_deref() != Ok("required"),
            "the reference implementation is required (SPORED_INTEROP_TEST=required) but its venv could not be made"
        );
        eprintln!("skipped: no reference venv (run ../shared/interop/setup.sh)");
    }
    py.clone()
}

/// A reference node started by `pynode.sh`; stopped (and its dir removed) when dropped.
struct PyNode {
    dir: PathBuf,
    port: u16,
}

impl PyNode {
    fn start(args: &[&str]) -> PyNode {
        let port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("pynode.")
            .tempdir()
            .unwrap()
            .keep();
        let out = Command::new("bash")
            .arg(interop_dir().join("pynode.sh"))
            .args(["start", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        let node = PyNode { dir, port };
        assert!(
            out.status.success(),
            "pynode.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        node
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the node's databases hold: experiment ids, manifest task ids, control event ids,
    /// profile ids, and its artifacts (how many files, how many whose name is their SHA-256).
    fn state(&self, py: &Path) -> J {
        const SCRIPT: &str = r#"
import hashlib, json, os, sqlite3, sys
d = os.path.join(sys.argv[1], "home", ".spore")
def rows(db, sql):
    p = os.path.join(d, "db", db)
    if not os.path.exists(p):
        return []
    c = sqlite3.connect("file:" + p + "?mode=ro", uri=True, timeout=10)
    try:
        return sorted(r[0] for r in c.execute(sql))
    except sqlite3.OperationalError as e:
        if "no such table" in str(e) and db != "profile.sqlite":
            return []  # not created yet
        raise
    finally:
        c.close()
files = ok = 0
for root, _, names in os.walk(os.path.join(d, "artifact")):
    for n in names:
        files += 1
        with open(os.path.join(root, n), "rb") as f:
            ok += hashlib.sha256(f.read()).hexdigest() == n
print(json.dumps({
    "experiments": rows("graph.sqlite", "select id from experiment"),
    "tasks": rows("task.sqlite", "select task_id from task where source = 'manifest'"),
    "control": rows("control.sqlite", "select event_id from control_event"),
    "profiles": rows("profile.sqlite", "select id from node_profile"),
    "artifact_files": files,
    "artifacts_matching_cid": ok,
}))
"#;
        let out = Command::new(py)
            .args(["-c", SCRIPT])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for PyNode {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(interop_dir().join("pynode.sh"))
            .args(["stop"])
            .arg(&self.dir)
            .arg("--clean")
            .stdout(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ids of the records the explorer at `web` shows for its active task.
fn spored_ids(web: &str) -> Vec<String> {
    let (status, body) = http_get(web, "/api/graph?limit=50000");
    assert_eq!(status, 200, "{body}");
    let graph: J = serde_json::from_str(&body).unwrap();
    let mut ids: Vec<String> = graph["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The vector `name` of `file`.
fn vector(file: &str, name: &str) -> J {
    vectors(file)["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name} in {file}"))
        .clone()
}

/// A vector's frame body.
fn vector_body(file: &str, name: &str) -> String {
    let v = vector(file, name);
    format!(
        "{{\"type\":{},\"payload\":{}}}",
        v["wire"]["msg_type"],
        v["wire"]["payload_json"].as_str().unwrap()
    )
}

fn vector_id(file: &str, name: &str) -> String {
    vector(file, name)["id"].as_str().unwrap().to_string()
}

/// A raw peer speaking the reference wire protocol.
struct Wire(TcpStream);

impl Wire {
    fn connect(addr: &str) -> Wire {
        Wire::connect_from([127, 0, 0, 1], addr)
    }

    /// From another loopback address: the node keeps offences per address.
    fn connect_from(source: [u8; 4], addr: &str) -> Wire {
        let to: std::net::SocketAddr = addr.parse().unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from((source, 0)).into())
            .unwrap();
        socket.connect(&to.into()).unwrap();
        let s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Wire(s)
    }

    fn send(&mut self, body: &str) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body.as_bytes());
        self.0.write_all(&frame).unwrap();
    }

    /// The next frame's body, or `None` when the peer closed the connection.
    fn recv(&mut self) -> Option<J> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).ok()?;
        Some(serde_json::from_slice(&body).unwrap())
    }

    /// Frames up to and including the first of type `until`.
    fn read_until(&mut self, until: &str) -> Vec<J> {
        let mut frames = Vec::new();
        loop {
            let frame = self
                .recv()
                .unwrap_or_else(|| panic!("closed before `{until}`; got {frames:?}"));
            let done = frame["type"] == until;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// True when the peer closes the connection within `secs` (frames it sends are skipped).
    fn closed_within(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            match self.0.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn a_thousand_records_sync_from_the_reference_and_back_to_a_fresh_reference_node() {
    let Some(py) = reference_python() else { return };
    let source = PyNode::start(&["--seed", "1000"]);
    let tmp = tempfile::tempdir().unwrap();
    let node = start_with(tmp.path(), &[&source.addr()], &[]);
    wait_until(
        "spored to hold the 1,000 records and their artifacts",
        120,
        || {
            let i = info(tmp.path());
            i["experiment_count"] == 1000 && i["artifact_count"] == 1000 && i["task_count"] == 1
        },
    );
    let theirs = source.state(&py);
    let ours = spored_ids(&node.web);
    assert_eq!(
        json!(ours),
        theirs["experiments"],
        "the same records, same ids"
    );
    // artifacts were fetched by cid and checked: the explorer serves bytes hashing to it
    let (_, body) = http_get(&node.web, &format!("/api/experiment/{}", ours[17]));
    let record: J = serde_json::from_str(&body).unwrap();
    let cid = record["code_cid"].as_str().unwrap().to_string();
    let (status, body) = http_get(&node.web, &format!("/api/artifact/{cid}"));
    assert_eq!(status, 200);
    let artifact: J = serde_json::from_str(&body).unwrap();
    assert_eq!(
        spore_spec::crypto::sha256_hex(artifact["content"].as_str().unwrap().as_bytes()),
        cid
    );
    drop(source);

    // a fresh reference node dials spored and syncs everything from it (records, the task,
    // the artifacts), with no other source
    let fresh = PyNode::start(&["--peer", &node.legacy, "--expect", "1000"]);
    wait_until("the fresh reference node to hold everything", 120, || {
        let s = fresh.state(&py);
        s["experiments"].as_array().unwrap().len() == 1000
            && s["artifact_files"] == 1000
            && s["tasks"].as_array().unwrap().len() == 1
    });
    let state = fresh.state(&py);
    assert_eq!(state["experiments"], json!(ours));
    assert_eq!(state["tasks"], theirs["tasks"]);
    assert_eq!(
        state["artifacts_matching_cid"], 1000,
        "every artifact hashes to its cid"
    );
}

#[test]
fn records_tasks_control_events_and_profiles_published_live_reach_the_other_side() {
    let Some(py) = reference_python() else { return };
    let reference = PyNode::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let node = start_with(tmp.path(), &[&reference.addr()], &[]);
    wait_until("spored to connect to the reference node", 30, || {
        info(tmp.path())["legacy_peers"] == 1
    });

    // the reference side: a peer hands the reference node objects; it floods them live
    let mut publisher = Wire::connect(&reference.addr());
    for (file, name) in [
        ("tasks.json", "task_cli_defaults"),
        ("experiments_v2.json", "v2_genesis_keep_parent_null"),
        ("experiments_v2.json", "v2_child_keep_parent_set"),
        ("control_events.json", "verification_spot_check_passed"),
        ("profiles.json", "profile_defaults"),
    ] {
        publisher.send(&vector_body(file, name));
    }
    wait_until("the reference node's objects to reach spored", 30, || {
        let i = info(tmp.path());
        i["experiment_count"] == 2 && i["task_count"] == 2 && i["control_event_count"] == 1
    });
    let genesis = vector_id("experiments_v2.json", "v2_genesis_keep_parent_null");
    assert_eq!(
        http_get(&node.web, &format!("/api/experiment/{genesis}")).0,
        200
    );
    let defaults_signer = vectors("profiles.json")["vectors"][0]["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = http_get(&node.web, &format!("/api/node/{defaults_signer}/profile"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&vector_id("profiles.json", "profile_defaults")),
        "{body}"
    );

    // spored's side: objects published on spored reach the reference node live (it never
    // asks spored for a sync: it did not dial it)
    let ours = [
        ("tasks.json", "task_nanogpt_minimize"),
        ("experiments_v2.json", "v2_float_0.1"),
        // `"val_bpb": 1` must reach the reference as an int, or its id no longer matches
        ("experiments_v2.json", "v2_int_in_float_fields"),
        ("control_events.json", "challenge"),
        ("profiles.json", "profile_full"),
    ];
    import(tmp.path(), ours.map(|(f, n)| vector_body(f, n)).as_ref());
    let want = |file: &str, name: &str| json!(vector_id(file, name));
    wait_until("spored's objects to reach the reference node", 30, || {
        let s = reference.state(&py);
        s["experiments"]
            .as_array()
            .unwrap()
            .contains(&want("experiments_v2.json", "v2_float_0.1"))
            && s["tasks"]
                .as_array()
                .unwrap()
                .contains(&want("tasks.json", "task_nanogpt_minimize"))
            && s["control"]
                .as_array()
                .unwrap()
                .contains(&want("control_events.json", "challenge"))
            && s["profiles"]
                .as_array()
                .unwrap()
                .contains(&want("profiles.json", "profile_full"))
    });
    drop(node);
}

#[test]
fn the_bridge_carries_objects_between_the_reference_network_and_the_libp2p_mesh() {
    let Some(py) = reference_python() else { return };
    let reference = PyNode::start(&[]);
    // A speaks both protocols; B is a spored node on the libp2p mesh only
    let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_with(ta.path(), &[&reference.addr()], &[]);
    let b = start_with(tb.path(), &[&a.addr], &[]);
    wait_until("A to reach the reference node", 30, || {
        info(ta.path())["legacy_peers"] == 1
    });
    assert_eq!(info(tb.path())["legacy_peers"], 0);

    // reference network -> A -> mesh -> B
    let mut publisher = Wire::connect(&reference.addr());
    publisher.send(&vector_body("tasks.json", "task_nanogpt_minimize"));
    publisher.send(&vector_body(
        "experiments_v2.json",
        "v2_genesis_keep_parent_null",
    ));
    wait_until("the reference node's record to reach B", 30, || {
        let i = info(tb.path());
        i["experiment_count"] == 1 && i["task_count"] == 1
    });

    // B -> mesh -> A -> reference network
    import(
        tb.path(),
        &[
            vector_body("experiments_v2.json", "v2_child_keep_parent_set"),
            vector_body("control_events.json", "dispute_upheld"),
        ],
    );
    let child = json!(vector_id("experiments_v2.json", "v2_child_keep_parent_set"));
    let dispute = json!(vector_id("control_events.json", "dispute_upheld"));
    wait_until("B's objects to reach the reference node", 30, || {
        let s = reference.state(&py);
        s["experiments"].as_array().unwrap().contains(&child)
            && s["control"].as_array().unwrap().contains(&dispute)
    });
    drop((a, b));
}

/// An artifact line for `spored import`, and its cid.
fn artifact_line(bytes: &[u8]) -> (String, String) {
    let cid = spore_spec::crypto::sha256_hex(bytes);
    let line = spore_spec::wire::Message::CodeResponse {
        code_cid: cid.clone(),
        code: bytes.to_vec(),
    }
    .encode_body();
    (line, cid)
}

#[test]
fn a_hostile_legacy_peer_gets_no_files_and_cannot_break_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let node = start_with(tmp.path(), &[], &[]);
    let (line, cid) = artifact_line(b"print('served by cid only')\n");
    import(tmp.path(), &[line]);
    let key = std::fs::read_to_string(tmp.path().join("identity/private_key")).unwrap();

    let mut peer = Wire::connect(&node.legacy);
    // path traversal, absolute paths, a cid prefix, an upper-case cid: no answer at all
    let dir = tmp.path().display().to_string();
    for bad in [
        format!("../../../../../../../..{dir}/identity/private_key"),
        format!("{dir}/identity/private_key"),
        "../identity/private_key".to_string(),
        "/etc/passwd".to_string(),
        cid[..8].to_string(),
        cid.to_uppercase(),
    ] {
        peer.send(&json!({"type": "code_request", "payload": {"code_cid": bad}}).to_string());
    }
    peer.send(&json!({"type": "code_request", "payload": {"code_cid": cid}}).to_string());
    peer.send(r#"{"type":"ping","payload":{}}"#);
    let frames = peer.read_until("pong");
    let served: Vec<&J> = frames
        .iter()
        .filter(|f| f["type"] == "code_response")
        .collect();
    assert_eq!(
        served.len(),
        1,
        "only the exact cid is answered: {frames:?}"
    );
    assert_eq!(served[0]["payload"]["code_cid"], cid.as_str());
    let everything = serde_json::to_string(&frames).unwrap();
    assert!(!everything.contains(key.trim()), "the private key leaked");

    // bad objects are refused one by one; the good one after them is stored
    let good = vector_body("experiments_v2.json", "v2_genesis_keep_parent_null");
    let unknown_field = good.replacen("\"agent_model\"", "\"surprise\":1,\"agent_model\"", 1);
    let forged = good.replacen("\"val_bpb\":", "\"val_bpb\":0.5,\"x\":", 1);
    peer.send("this is not json");
    peer.send(&unknown_field);
    peer.send(&forged);
    peer.send(r#"{"type":"experiment","payload":[]}"#);
    peer.send(&good);
    peer.send(r#"{"type":"ping","payload":{}}"#);
    peer.read_until("pong");
    wait_until("the good record to be stored", 20, || {
        info(tmp.path())["experiment_count"] == 1
    });

    // a length prefix over the 10 MiB cap ends the connection at once
    let mut big = Wire::connect_from([127, 0, 0, 2], &node.legacy);
    big.0
        .write_all(&(11u32 * 1024 * 1024).to_be_bytes())
        .unwrap();
    assert!(
        big.closed_within(10),
        "an oversized frame closes the connection"
    );

    // a peer that keeps sending invalid data is disconnected, and its address refused
    for _ in 0..20 {
        peer.send("{\"type\":\"experiment\",\"payload\":{\"id\":1}}");
    }
    assert!(peer.closed_within(10), "a flood of invalid data is cut off");
    let mut back = Wire::connect(&node.legacy);
    assert!(back.closed_within(5), "the offender's address is refused");

    // the node is up for everyone else, and nothing stored was lost
    let i = info(tmp.path());
    assert_eq!(i["experiment_count"], 1);
    assert_eq!(i["artifact_count"], 1);
    let mut again = Wire::connect_from([127, 0, 0, 3], &node.legacy);
    again.send(r#"{"type":"ping","payload":{}}"#);
    again.read_until("pong");
}

#[test]
fn an_unreachable_bootstrap_peer_is_logged_once_and_the_node_works_on() {
    let tmp = tempfile::tempdir().unwrap();
    // a port nothing listens on
    let closed = free_port();
    std::fs::write(
        tmp.path().join("config.toml"),
        format!("bootstrap = [\"127.0.0.1:{closed}\"]\n"),
    )
    .unwrap();
    let log = tmp.path().join("stderr.log");
    let mut child = spored(tmp.path())
        // the loopback run, but with the configured bootstrap peer
        .args(
            support::LOOPBACK_RUN
                .iter()
                .filter(|a| **a != "--no-bootstrap"),
        )
        .arg("--no-train")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let node = scopeguard(&mut child);
    wait_until("the node's control socket", 30, || {
        tmp.path().join("spored.sock").exists()
    });
    // the first dial fails at once, the second after 5 s
    std::thread::sleep(Duration::from_secs(8));
    import(
        tmp.path(),
        &[vector_body(
            "experiments_v2.json",
            "v2_genesis_keep_parent_null",
        )],
    );
    assert_eq!(info(tmp.path())["experiment_count"], 1, "the node works on");
    drop(node);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("cannot reach legacy peer").count(),
        1,
        "logged once: {text}"
    );

    // the legacy port in use is a clear error at start
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let other = tempfile::tempdir().unwrap();
    let out = spored(other.path())
        .args(["run", "--host", "127.0.0.1", "--port", &port])
        .args([
            "--p2p-port",
            "0",
            "--web-port",
            "0",
            "--no-train",
            "--no-bootstrap",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen for reference peers"), "{err}");
}

/// Stops (SIGTERM, then waits) the node when dropped.
fn scopeguard(child: &mut std::process::Child) -> impl Drop + '_ {
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Stop(child)
}
