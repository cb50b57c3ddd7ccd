//! The explorer UI in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` + `chromium-driver`, which `.ci/run` installs), against a real `spored run` on
//! 127.0.0.1. Screenshots land in `target/tmp/browser/`.
//!
//! Without a chromedriver on the PATH the test says so and passes, unless
//! `SPORED_BROWSER_TEST=required` (set by `.ci/run`), where it fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Identity, NodeProfile, Signed as _, Status, TaskManifest};
use support::spored;

mod support;

/// A stored-XSS attempt: markup and a script in attacker-chosen strings.
const PAYLOAD: &str =
    "<img src=x onerror=\"window.__xss=(window.__xss||0)+1\">\"><script>window.__xss=1</script>";

/// A process killed (and reaped) when dropped, so a failing test leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange with chromedriver: the response's JSON.
fn http(port: u16, method: &str, path: &str, body: Option<&J>) -> J {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(J::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the head, then Content-Length bytes
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let (_, length) = support::read_http_head(&mut reader);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8_lossy(&body);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("chromedriver said {body:?}: {e}"))
}

/// A headless Chromium session.
struct Browser {
    port: u16,
    session: String,
    _driver: Proc,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(driver: &Path) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1500,950"]
            }
        }}});
        let answer = http(port, "POST", "/session", Some(&caps));
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Browser {
            port,
            session,
            _driver: driver,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<J>) -> J {
        let path = format!("/session/{}{path}", self.session);
        let answer = http(self.port, method, &path, body.as_ref());
        if answer["value"]["error"].is_string() {
            panic!("{method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    fn js(&self, script: &str) -> J {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn click(&self, css: &str) {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_string();
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Polls `script` until it returns true (10 s at most).
    fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.js(script) == J::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = base64_decode(self.call("GET", "/screenshot", None).as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| http(self.port, "DELETE", &path, None));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let digits: Vec<u8> = chunk
            .iter()
            .take_while(|c| **c != b'=')
            .map(|c| value(*c))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (*d as u32) << (18 - 6 * i));
        out.extend(
            n.to_be_bytes()[1..]
                .iter()
                .take(digits.len().saturating_sub(1)),
        );
    }
    out
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn chromium() -> String {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| on_path(n))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

/// A signed record of `who` in `task`.
fn record(
    who: &Identity,
    task: &str,
    parent: Option<&ExperimentRecord>,
    status: Status,
    val_bpb: f64,
    description: &str,
    timestamp: i64,
) -> ExperimentRecord {
    let mut r = ExperimentRecord {
        parent: parent.map(|p| p.id.clone()),
        depth: parent.map_or(0, |p| p.depth + 1),
        task_id: task.to_string(),
        code_cid: "c".repeat(64),
        dataset_cid: "d".repeat(64),
        time_budget: 60,
        val_bpb: spore_spec::Number::Float(val_bpb),
        peak_vram_mb: spore_spec::Number::Float(512.0),
        num_steps: 100,
        num_params: 131_392,
        status,
        description: description.to_string(),
        hypothesis: "seeded by the browser test".into(),
        agent_model: "builtin".into(),
        gpu_model: "CPU_TEST".into(),
        diff: if parent.is_some() {
            "--- a\n+++ b\n@@ -1 +1 @@\n-lr = 0.003\n+lr = 0.004\n".into()
        } else {
            String::new()
        },
        node_id: who.node_id(),
        timestamp,
        version: 2,
        ..ExperimentRecord::default()
    };
    r.sign_with(who);
    r
}

fn write_jsonl(path: &Path, messages: Vec<Message>) {
    let lines: Vec<String> = messages.iter().map(Message::encode_body).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn the_explorer_ui_shows_the_dag_frontier_and_details_updates_live_and_runs_no_injected_script() {
    let Some(driver) = on_path("chromedriver") else {
        let required = std::env::var("SPORED_BROWSER_TEST").as_deref() == Ok("required");
        assert!(
            !required,
            "SPORED_BROWSER_TEST=required but no chromedriver on PATH \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // a task, a small graph, and a profile, with the payload in a description and a name
    let who = Identity::from_seed([42; 32]);
    let mut task = TaskManifest {
        name: "browser-task".into(),
        description: PAYLOAD.into(),
        task_type: "ml_train".into(),
        artifact_type: "spore_gpt_config".into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        time_budget: 60,
        created_by: who.node_id(),
        timestamp: 1_767_225_600,
        version: 1,
        ..Default::default()
    };
    task.sign_with(&who);
    let t = task.task_id.clone();
    let root = record(&who, &t, None, Status::Keep, 2.0, "baseline", 1_767_225_700);
    let hostile = record(
        &who,
        &t,
        Some(&root),
        Status::Keep,
        1.9,
        PAYLOAD,
        1_767_225_800,
    );
    let worse = record(
        &who,
        &t,
        Some(&root),
        Status::Discard,
        2.1,
        "worse",
        1_767_225_900,
    );
    let crash = record(
        &who,
        &t,
        Some(&hostile),
        Status::Crash,
        0.0,
        "oom",
        1_767_226_000,
    );
    let mut profile = NodeProfile {
        node_id: who.node_id(),
        display_name: PAYLOAD.into(),
        bio: PAYLOAD.into(),
        timestamp: 1_767_225_650,
        schema_version: 1,
        ..NodeProfile::default()
    };
    profile.sign_with(&who);
    let seed = dir.path().join("seed.jsonl");
    write_jsonl(
        &seed,
        vec![
            Message::Task(task.clone()),
            Message::Experiment(root.clone()),
            Message::Experiment(hostile.clone()),
            Message::Experiment(worse.clone()),
            Message::Experiment(crash.clone()),
            Message::Profile(profile),
        ],
    );

    // a real node on loopback
    let node = support::start(dir.path(), &[]);
    let web = node.web.clone();
    let import = spored(dir.path())
        .args(["import", seed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    let browser = Browser::start(&driver);
    browser.goto(&web);

    // the DAG: four records, the frontier ring on the better keep
    browser.wait_for(
        "the DAG",
        "return document.querySelectorAll('#dag g.node').length === 4",
    );
    let frontier_ring = format!(
        "return !!document.querySelector('#dag g.node[data-id=\"{}\"] circle.ring')",
        hostile.id
    );
    assert_eq!(browser.js(&frontier_ring), J::Bool(true));
    browser.screenshot("1-dag");

    // the frontier table lists it
    browser.click("#tabs button[data-tab=frontier]");
    browser.wait_for(
        "the frontier table",
        &format!(
            "return document.querySelector('#frontier tbody').textContent.includes('{}')",
            &hostile.id[..8]
        ),
    );
    browser.screenshot("2-frontier");

    // click a record in the DAG: its detail, its path to the root highlighted
    browser.click("#tabs button[data-tab=dag]");
    browser.click(&format!("#dag g.node[data-id=\"{}\"] circle.dot", crash.id));
    browser.wait_for(
        "the detail panel",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            crash.id
        ),
    );
    let path: J = browser.js(
        "return [...document.querySelectorAll('#dag g.node.path')].map(n => n.dataset.id).sort()",
    );
    let mut expected = vec![root.id.clone(), hostile.id.clone(), crash.id.clone()];
    expected.sort();
    assert_eq!(path, json!(expected), "the ancestor path is highlighted");
    browser.screenshot("3-detail");

    // the payload's record and its publisher: shown as text, never run
    browser.click(&format!(
        "#dag g.node[data-id=\"{}\"] circle.dot",
        hostile.id
    ));
    browser.wait_for(
        "the hostile record's detail",
        &format!(
            "const h = document.querySelector('#detail-id'); return !!h && h.textContent === '{}'",
            hostile.id
        ),
    );
    let shown = browser.js("return document.querySelector('#detail').textContent");
    assert!(
        shown.as_str().unwrap().contains(PAYLOAD),
        "the description is shown as written: {shown}"
    );
    browser.click("#detail a.link");
    browser.wait_for(
        "the node page",
        "const h = document.querySelector('#detail-node'); return !!h",
    );
    assert_eq!(
        browser.js("return document.querySelector('#detail-node').textContent"),
        J::String(PAYLOAD.into()),
        "the profile name is shown as written"
    );
    browser.screenshot("4-node");
    assert_eq!(
        browser.js(
            "return [typeof window.__xss, document.querySelectorAll('#detail img, #detail script, \
             #frontier img, #activity img').length]"
        ),
        json!(["undefined", 0]),
        "no injected element exists and no injected script ran"
    );

    // a record published while the page is open appears without a reload
    browser.js("window.__marker = 'same page'; return null");
    let live = record(
        &who,
        &t,
        Some(&hostile),
        Status::Keep,
        1.8,
        "arrived live",
        1_767_226_100,
    );
    let more = dir.path().join("live.jsonl");
    write_jsonl(&more, vec![Message::Experiment(live.clone())]);
    let import = spored(dir.path())
        .args(["import", more.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(import.status.success());
    browser.wait_for(
        "the live record in the DAG",
        &format!(
            "return !!document.querySelector('#dag g.node[data-id=\"{}\"]')",
            live.id
        ),
    );
    browser.click("#tabs button[data-tab=activity]");
    browser.wait_for(
        "the live record in the activity feed",
        &format!(
            "return !!document.querySelector('#activity li[data-id=\"{}\"]')",
            live.id
        ),
    );
    assert_eq!(
        browser.js("return window.__marker"),
        J::String("same page".into()),
        "updated in place, not reloaded"
    );
    let shot = browser.screenshot("5-live");
    assert!(std::fs::metadata(shot).unwrap().len() > 10_000);
    assert_eq!(
        browser.js("return typeof window.__xss"),
        J::String("undefined".into())
    );
}
