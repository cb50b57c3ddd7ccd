//! The explorer API on a real socket (127.0.0.1, OS-chosen port) over a real redb store holding
//! the reference explorer's fixture (`spec/vectors/explorer_examples.json`: task T with 3 records,
//! Alpha's profile, a verified record, an artifact; its legacy task's record is in no response,
//! so the answers that count it are compared without it). Every route the reference
//! answered is compared field by field with its response; unknown ids get 404, bad parameters 400.

#![allow(clippy::disallowed_methods)] // this process owns its stores

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;

use serde_json::Value as J;
use spore_actors::Store;
use spore_spec::crypto::Identity;
use spore_spec::json;
use spore_spec::{ExperimentRecord, NodeProfile, Signed as _, TaskManifest};

fn vectors(name: &str) -> J {
    let path = format!("{}/../spec/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parse<T>(v: &J, from: impl Fn(&json::Value) -> Result<T, spore_spec::Reject>) -> T {
    let text = serde_json::to_string(v).unwrap();
    from(&json::parse(text.as_bytes()).unwrap()).unwrap()
}

/// Every record the reference's responses contain, by id.
fn fixture_records(examples: &J) -> Vec<ExperimentRecord> {
    fn walk(v: &J, out: &mut std::collections::BTreeMap<String, J>) {
        match v {
            J::Object(m) => {
                if m.contains_key("signature") && m.contains_key("code_cid") {
                    let mut r = m.clone();
                    for extra in [
                        "verified",
                        "is_frontier",
                        "node_display_name",
                        "node_avatar_url",
                    ] {
                        r.remove(extra);
                    }
                    out.insert(m["id"].as_str().unwrap().to_string(), J::Object(r));
                }
                m.values().for_each(|x| walk(x, out));
            }
            J::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut found = std::collections::BTreeMap::new();
    walk(&examples["responses"], &mut found);
    let mut records: Vec<ExperimentRecord> = found
        .values()
        .map(|v| parse(v, ExperimentRecord::from_value))
        .collect();
    records.sort_by_key(|r| (r.depth, r.timestamp));
    records
}

/// The control vectors' verification event, signed by node B.
fn verification_by_b() -> spore_spec::ControlEvent {
    let events = vectors("control_events.json");
    let event = events["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "verification_spot_check_passed")
        .unwrap()["object"]
        .clone();
    parse(&event, spore_spec::ControlEvent::from_value)
}

/// In the reference's data set node B also published the legacy task's one record, which is in
/// no response (so not in our store): its all-tasks publication count is one lower here.
fn without_legacy_record(value: &mut J) {
    const B: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
    match value {
        J::Object(m) => {
            if m.get("node_id").and_then(J::as_str) == Some(B) {
                if let Some(n) = m.get_mut("experiments_published") {
                    *n = J::from(n.as_i64().unwrap() - 1);
                }
            }
            m.values_mut().for_each(without_legacy_record);
        }
        J::Array(a) => a.iter_mut().for_each(without_legacy_record),
        _ => {}
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    examples: J,
}

fn fixture() -> Fixture {
    let examples = vectors("explorer_examples.json");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
    let tasks = vectors("tasks.json");
    let manifest_json = tasks["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "task_nanogpt_minimize")
        .unwrap()["object"]
        .clone();
    let manifest: TaskManifest = parse(&manifest_json, TaskManifest::from_value);
    let records = fixture_records(&examples);
    // the legacy task's one record appears in no response (only in counts), so it is not here
    assert_eq!(records.len(), 3, "the 3 records of task T");
    // Alpha's profile, signed with signer A's seed from the vectors: same bytes, same id
    let a = Identity::from_seed([1; 32]);
    let mut alpha = NodeProfile {
        node_id: a.node_id(),
        display_name: "Alpha".into(),
        bio: "researcher".into(),
        website: "https://alpha.example".into(),
        avatar_url: "https://alpha.example/a.png".into(),
        donation_address: String::new(),
        timestamp: 1767225610,
        schema_version: 1,
        ..NodeProfile::default()
    };
    alpha.sign_with(&a);
    assert_eq!(
        alpha.id,
        "510278a02f2eed431231555c34446e1e15ca69f99b3d8c4c1a0bb0174ee46ffe"
    );
    store
        .write(|w| {
            w.insert_manifest(&manifest)?;
            for r in &records {
                w.insert_experiment(r.clone())?;
            }
            w.insert_profile(&alpha)?;
            // node B's spot-check verification (of a record not in this graph): verifier work
            w.insert_control_event(&verification_by_b())?;
            w.mark_verified("3afa58063e3ba1e68ca559a8d02b38c0377b55df736c3f215f176e2489c79b0d")?;
            w.put_artifact(
                "2d7114360f6cd5b496e5af51f669138235f2cdc2f41f4f4226812debcd059be1",
                b"print('baseline')\n",
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.read().unwrap().experiment_count().unwrap(), 3);
    Fixture {
        _dir: dir,
        store,
        examples,
    }
}

/// An explorer on a real socket, in its own actix System thread; stopped when dropped.
struct Server {
    port: u16,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(store: Arc<Store>, node_id: &str) -> Server {
        Self::start_with(store, node_id, spore_actors::store_writer::quiet_events())
    }

    fn start_with(
        store: Arc<Store>,
        node_id: &str,
        events: tokio::sync::broadcast::Sender<spore_actors::store_writer::EventBatch>,
    ) -> Server {
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let node_id = node_id.to_string();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let explorer = spore_web::Explorer {
                    store,
                    node_id,
                    pinned_task: Default::default(),
                    node: None,
                    events,
                };
                let (handle, bound) =
                    spore_web::serve("127.0.0.1:0".parse().unwrap(), explorer).unwrap();
                port_tx.send(bound.port()).unwrap();
                while matches!(
                    stop_rx.try_recv(),
                    Err(std::sync::mpsc::TryRecvError::Empty)
                ) {
                    actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                handle.stop(true).await;
            })
        });
        let port = port_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Server {
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// GET `path`: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        self.get_as(path, "127.0.0.1")
    }

    /// GET `path` with `host` as its `Host`: (status, body).
    fn get_as(&self, path: &str, host: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    /// Opens the live stream (it must answer 200); the reader is past the status line.
    fn follow_live(&self) -> std::io::BufReader<TcpStream> {
        use std::io::BufRead as _;
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut reader = std::io::BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        reader
    }

    fn json(&self, path: &str) -> J {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn path_with_query(example: &J) -> String {
    let mut path = example["path"].as_str().unwrap().to_string();
    let params = example["params"].as_object().unwrap();
    if !params.is_empty() {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| match v {
                J::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        path = format!("{path}?{}", q.join("&"));
    }
    path
}

/// The first place where `ours` and `theirs` differ, ignoring object keys in `ignore`.
fn difference(ours: &J, theirs: &J, at: &str, ignore: &[&str]) -> Option<String> {
    match (ours, theirs) {
        (J::Object(a), J::Object(b)) => {
            for (k, v) in b {
                if ignore.contains(&k.as_str()) {
                    continue;
                }
                let Some(mine) = a.get(k) else {
                    return Some(format!("{at}.{k}: missing"));
                };
                if let Some(d) = difference(mine, v, &format!("{at}.{k}"), ignore) {
                    return Some(d);
                }
            }
            None
        }
        (J::Array(a), J::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{at}: {} items, the reference has {}",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| difference(x, y, &format!("{at}[{i}]"), ignore))
        }
        (J::Number(a), J::Number(b)) => {
            (a.as_f64() != b.as_f64()).then(|| format!("{at}: {a} vs {b}"))
        }
        (a, b) => (a != b).then(|| format!("{at}: {a} vs {b}")),
    }
}

/// The reference fixture's legacy task (its record is not in the vectors).
const LEGACY: &str = "970057dd17f1778fb564a4fdbbd1c75d6c6fe45473fc5d5cafe1fc9b7b119cfd";

#[test]
fn every_implemented_route_answers_as_the_reference_did_and_errors_get_proper_statuses() {
    let f = fixture();
    let node_id = f.examples["node_id"].as_str().unwrap();
    let server = Server::start(f.store.clone(), node_id);
    let mut compared = 0;
    for example in f.examples["responses"].as_array().unwrap() {
        let path = path_with_query(example);
        if path.contains(LEGACY) {
            continue;
        }
        let mut expected = example["body"].clone();
        if let J::Array(items) = &mut expected {
            items.retain(|t| t["task_id"] != LEGACY);
        }
        without_legacy_record(&mut expected);
        let expected = &expected;
        if example["status"] == 422 {
            // the reference's FastAPI answers a bad query type with 422; we say 400
            let (status, body) = server.get(&path);
            assert_eq!(status, 400, "{path}: {body}");
            continue;
        }
        if expected.get("error").is_some() {
            // the reference says 200 {"error": "not found"}; we say 400 for a malformed id,
            // 404 for a well-formed unknown one
            let (status, body) = server.get(&path);
            assert!(status == 404 || status == 400, "{path}: {status} {body}");
            assert!(serde_json::from_str::<J>(&body).unwrap()["error"].is_string());
            continue;
        }
        let ours = server.json(&path);
        // the fixture's node is not the reference's, and this explorer has no peers or live clients
        let ignore = ["peer_count", "ws_client", "task_count"];
        if let Some(d) = difference(&ours, expected, &path, &ignore) {
            panic!("{d}\nours: {ours}\nreference: {expected}");
        }
        compared += 1;
    }
    assert!(compared >= 21, "compared only {compared} routes");

    // unknown well-formed ids: 404 with a JSON error
    let unknown = "f".repeat(64);
    for path in [
        format!("/api/task/{unknown}"),
        format!("/api/experiment/{unknown}"),
        format!("/api/experiment/{unknown}/ancestor"),
        format!("/api/experiment/{unknown}/children"),
        format!("/api/artifact/{unknown}"),
        format!("/api/node/{unknown}/profile"),
        format!("/api/node/{unknown}"),
        format!("/api/nodes?task_id={unknown}"),
        format!("/api/graph?task_id={unknown}"),
        "/api/no-such-route".to_string(),
    ] {
        let (status, body) = server.get(&path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            serde_json::from_str::<J>(&body).unwrap()["error"].is_string(),
            "{body}"
        );
    }
    // bad parameters: 400 naming the problem
    for path in [
        "/api/recent?limit=abc",
        "/api/frontier?task_id=not-hex",
        "/api/experiment/..%2F..%2Fetc%2Fpasswd",
        "/api/artifact/ABC",
        "/api/feed?limit=1e999",
        "/api/search?q=a",
        "/api/nodes/search?q=a",
        "/api/graph?shape=svg",
        "/api/nodes?sort=best",
        "/api/nodes?activity=lurker",
        "/api/nodes?status=maybe",
        "/api/tasks/hot?limit=x",
        "/api/node/8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c?offset=-1",
        "/api/node/8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c/experiment?status=maybe",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            serde_json::from_str::<J>(&body).unwrap()["error"].is_string(),
            "{body}"
        );
    }
    // the DAG shape: the same records and edges as the full graph, only what a DAG view draws
    let full = server.json("/api/graph");
    let dag = server.json("/api/graph?shape=dag");
    assert_eq!(dag["edge"], full["edge"]);
    assert_eq!(dag["frontier_id"], full["frontier_id"]);
    let ids = |g: &J| -> Vec<J> {
        g["node"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].clone())
            .collect()
    };
    assert_eq!(ids(&dag), ids(&full));
    assert!(dag["node"][0]["signature"].is_null() && dag["node"][0]["status"].is_string());
    assert!(dag.to_string().len() * 2 < full.to_string().len());
    // node filters and paging do what they say
    let alpha = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
    let verifiers = server.json("/api/nodes?activity=hybrid");
    assert_eq!(verifiers.as_array().unwrap().len(), 1, "{verifiers}");
    assert_ne!(verifiers[0]["node_id"], alpha);
    let with_profile = server.json("/api/nodes?has_profile=true&sort=published");
    assert_eq!(with_profile.as_array().unwrap().len(), 1);
    assert_eq!(with_profile[0]["node_id"], alpha);
    let by_gpu = server.json("/api/nodes/search?q=rtx_30");
    assert_eq!(by_gpu.as_array().unwrap().len(), 2);
    let page = server.json(&format!("/api/node/{alpha}?limit=1&offset=1"));
    assert_eq!(page["total_experiments"], 2);
    assert_eq!(page["experiments"].as_array().unwrap().len(), 1);
    assert_eq!(page["experiments"][0]["val_bpb"], 0.95);
    let none = server.json(&format!("/api/node/{alpha}?status=crash"));
    assert_eq!(none["total_experiments"], 0);
    // the OpenAPI document lists the routes
    let doc = server.json("/api/openapi.json");
    assert!(doc["paths"]["/api/graph"]["get"].is_object());
    for route in [
        "/api/nodes",
        "/api/nodes/search",
        "/api/node/{node_id}",
        "/api/tasks/hot",
    ] {
        assert!(
            doc["paths"][route]["get"].is_object(),
            "{route} not documented"
        );
    }
    // the page
    let (status, html) = server.get("/");
    assert_eq!(status, 200);
    assert!(html.contains("spored explorer"));
}

#[test]
fn a_record_with_a_non_finite_metric_is_served_as_json_not_a_500() {
    let f = fixture();
    // a NaN metric is a valid signed record in the reference's format (vectors/floats.json)
    let who = Identity::from_seed([7; 32]);
    let mut r = ExperimentRecord {
        parent: None,
        depth: 0,
        task_id: "9".repeat(64),
        code_cid: "c".repeat(64),
        dataset_cid: "d".into(),
        time_budget: 60,
        val_bpb: spore_spec::Number::Float(f64::NAN),
        peak_vram_mb: spore_spec::Number::Float(f64::INFINITY),
        status: spore_spec::Status::Crash,
        description: "nan".into(),
        agent_model: "x".into(),
        gpu_model: "CPU".into(),
        node_id: who.node_id(),
        timestamp: 1767229000,
        version: 2,
        ..ExperimentRecord::default()
    };
    r.sign_with(&who);
    let id = r.id.clone();
    let task = r.task_id.clone();
    f.store.write(|w| w.insert_experiment(r)).unwrap();
    let server = Server::start(f.store.clone(), "n");
    let rec = server.json(&format!("/api/experiment/{id}"));
    assert!(
        rec["val_bpb"].is_null() && rec["peak_vram_mb"].is_null(),
        "{rec}"
    );
    for path in [
        format!("/api/recent?task_id={task}"),
        format!("/api/graph?task_id={task}"),
        format!("/api/feed?task_id={task}"),
        format!("/api/progress?task_id={task}"),
        "/api/tasks".to_string(),
    ] {
        server.json(&path);
    }
    // the NaN record is a mark with no value and no step of the best line
    let progress = server.json(&format!("/api/progress?task_id={task}"));
    assert_eq!(progress["rows"][0][0], id.as_str());
    assert!(progress["rows"][0][2].is_null(), "{progress}");
    assert_eq!(progress["rows"][0][3], 2, "crash");
    assert_eq!(progress["best"], serde_json::json!([]));
}

#[test]
fn the_progress_route_lists_every_record_oldest_first_with_the_best_as_steps() {
    let f = fixture();
    let server = Server::start(f.store.clone(), "n");
    let tasks = server.json("/api/tasks");
    let task = tasks[0]["task_id"].as_str().unwrap().to_string();
    let progress = server.json(&format!("/api/progress?task_id={task}"));
    let rows = progress["rows"].as_array().unwrap();
    let count = server.json(&format!("/api/stat?task_id={task}"))["experiment_count"]
        .as_u64()
        .unwrap();
    assert_eq!(rows.len() as u64, count, "one row per record");
    let times: Vec<i64> = rows.iter().map(|r| r[1].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    for row in rows {
        let node = row[5].as_u64().unwrap() as usize;
        assert!(progress["nodes"][node].is_string(), "{row}");
        let gpu = row[6].as_u64().unwrap() as usize;
        assert!(progress["gpus"][gpu].is_string(), "{row}");
    }
    // parents as row indexes and frontier flags, the same as the full DAG and the frontier say
    let graph = server.json(&format!("/api/graph?task_id={task}"));
    let parent_of: std::collections::HashMap<&str, &str> = graph["edge"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["target"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    let frontier = server.json(&format!("/api/frontier?task_id={task}&limit=1000"));
    let on_frontier: std::collections::HashSet<&str> = frontier
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(!on_frontier.is_empty() && !parent_of.is_empty());
    for row in rows {
        let id = row[0].as_str().unwrap();
        let parent = row[7].as_i64().unwrap();
        let expected = parent_of.get(id).copied();
        let got = (parent >= 0).then(|| rows[parent as usize][0].as_str().unwrap());
        assert_eq!(got, expected, "{row}");
        assert_eq!(row[8] == 1, on_frontier.contains(id), "{row}");
    }
    // the best steps only ever improve, and end at the frontier's best
    let best: Vec<f64> = progress["best"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_f64().unwrap())
        .collect();
    assert!(!best.is_empty());
    let minimize = progress["goal"] == "minimize";
    assert!(best
        .windows(2)
        .all(|w| if minimize { w[1] < w[0] } else { w[1] > w[0] }));
    let stat = server.json(&format!("/api/stat?task_id={task}"));
    assert_eq!(
        Some(*best.last().unwrap()),
        stat["best_val_bpb"].as_f64(),
        "{progress}"
    );
    // a task that does not exist
    let (status, _) = server.get(&format!("/api/progress?task_id={}", "f".repeat(64)));
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/progress?task_id=../x");
    assert_eq!(status, 400);
}

#[test]
fn a_record_stored_while_a_browser_listens_arrives_as_a_server_sent_event() {
    use std::io::BufRead as _;
    let f = fixture();
    // the node's own writer: its events after the commit are what the browser is sent
    let writer = spore_actors::store_writer::StoreWriter::start(f.store.clone()).unwrap();
    let server = Server::start_with(f.store.clone(), "n", writer.events().clone());
    let mut reader = server.follow_live();
    // wait until the server counts this client, then store a record through the writer
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.json("/api/stat")["ws_client"] != 1 {
        assert!(std::time::Instant::now() < deadline, "client never counted");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let who = Identity::from_seed([1; 32]);
    let mut child = ExperimentRecord {
        parent: Some("3afa58063e3ba1e68ca559a8d02b38c0377b55df736c3f215f176e2489c79b0d".into()),
        depth: 2,
        task_id: "3094a2dfd2296bef1d10bad5bd5636e6b84fe0b57c823b043cb6c98cf3fbb371".into(),
        code_cid: "c".repeat(64),
        dataset_cid: "climbmix-400b-shuffle".into(),
        time_budget: 300,
        val_bpb: spore_spec::Number::Float(0.9),
        peak_vram_mb: spore_spec::Number::Float(1.0),
        status: spore_spec::Status::Keep,
        description: "<img src=x onerror=alert(1)> live".into(),
        agent_model: "x".into(),
        gpu_model: "CPU".into(),
        node_id: who.node_id(),
        timestamp: 1767226000,
        version: 2,
        ..ExperimentRecord::default()
    };
    child.sign_with(&who);
    let id = child.id.clone();
    let body = spore_spec::wire::Message::Experiment(child).encode_body();
    let stored = actix_rt::System::new()
        .block_on(writer.ingest(spore_actors::store_writer::IngestWork {
            checked: spore_actors::ingest::check_bodies(vec![body]),
            sync_cursor: None,
            keep_bodies: false,
            durable: true,
        }))
        .unwrap();
    assert_eq!(stored.summary.accepted, 1, "{:?}", stored.summary);
    let event = loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(data) = line.trim().strip_prefix("data: ") {
            break serde_json::from_str::<J>(data).unwrap();
        }
    };
    assert_eq!(event["event"], "experiment");
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["is_frontier"], true);
    assert_eq!(
        event["data"]["description"],
        "<img src=x onerror=alert(1)> live"
    );
}

#[test]
fn a_rebound_host_name_is_refused_and_live_clients_are_capped() {
    let f = fixture();
    let server = Server::start(f.store.clone(), "n");
    // DNS rebinding: a page at evil.example whose name now points at 127.0.0.1
    for path in ["/api/stat", "/", "/api/tasks"] {
        assert_eq!(server.get_as(path, "evil.example").0, 421, "{path}");
        let port = server.port;
        assert_eq!(server.get_as(path, &format!("evil.example:{port}")).0, 421);
        assert_eq!(server.get_as(path, &format!("localhost:{port}")).0, 200);
        assert_eq!(server.get_as(path, &format!("[::1]:{port}")).0, 200);
    }
    // live clients: up to the cap, then 503
    let mut open = Vec::new();
    for _ in 0..spore_web::MAX_LIVE_CLIENTS {
        open.push(server.follow_live());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.json("/api/stat")["ws_client"] != spore_web::MAX_LIVE_CLIENTS {
        assert!(
            std::time::Instant::now() < deadline,
            "clients never counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(server.get_as("/api/events", "127.0.0.1").0, 503);
    // one leaves: noticed when a write to it fails, then a new one is served again. The first
    // keep-alive after it left may still be written (the kernel takes it; the client's reset
    // comes back), so it fails by the second: within two keep-alives of the first, and the
    // first comes within one (a third for a loaded machine's scheduling)
    drop(open.pop());
    let deadline = std::time::Instant::now() + spore_web::live::KEEP_ALIVE * 3;
    while server.json("/api/stat")["ws_client"] != spore_web::MAX_LIVE_CLIENTS - 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed client still counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.follow_live();
}
