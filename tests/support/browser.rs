//! A headless Chromium driven over WebDriver (chromedriver on loopback), for the UI tests.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};

/// A process killed (and reaped) when dropped, so a failing test leaves nothing running.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange with chromedriver: the response's JSON.
pub fn http(port: u16, method: &str, path: &str, body: Option<&J>) -> J {
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
    let (_, length) = super::read_http_head(&mut reader);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8_lossy(&body);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("chromedriver said {body:?}: {e}"))
}

/// A headless Chromium session.
pub struct Browser {
    port: u16,
    session: String,
    _driver: Proc,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    pub fn start(driver: &Path) -> Browser {
        Browser::start_with(driver, &[])
    }

    /// A session with more Chromium flags (`--force-device-scale-factor=2`: a HiDPI screen).
    pub fn start_with(driver: &Path, flags: &[&str]) -> Browser {
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
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1500,950",
        ];
        args.extend_from_slice(flags);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": args
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

    pub fn call(&self, method: &str, path: &str, body: Option<J>) -> J {
        let path = format!("/session/{}{path}", self.session);
        let answer = http(self.port, method, &path, body.as_ref());
        if answer["value"]["error"].is_string() {
            panic!("{method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn js(&self, script: &str) -> J {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    pub fn click(&self, css: &str) {
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

    /// A real mouse click at page point (`x`, `y`) (a pointer action, as a user's click).
    pub fn click_at(&self, x: f64, y: f64) {
        self.pointer(x, y, true);
    }

    /// Moves the mouse to page point (`x`, `y`) (a hover).
    pub fn move_to(&self, x: f64, y: f64) {
        self.pointer(x, y, false);
    }

    fn pointer(&self, x: f64, y: f64, click: bool) {
        let (x, y) = (x.round() as i64, y.round() as i64);
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x, "y": y}),
        ];
        if click {
            actions.push(json!({"type": "pointerDown", "button": 0}));
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "pointer", "id": "mouse",
                "parameters": {"pointerType": "mouse"}, "actions": actions}]})),
        );
        if click {
            self.call("DELETE", "/actions", None);
        }
    }

    /// Clicks the count of folded leaves drawn by record `parent` in the explorer's DAG (which
    /// shows them, or folds them again).
    pub fn click_dag_count(&self, parent: &str) {
        let at = self.js(&format!(
            "const i = dag.layout.index.get('{parent}'), b = (dag.boxes || []).find(b => b.row === i); \
             if (!b) return null; \
             const c = document.querySelector('#dag'), r = c.getBoundingClientRect(); \
             return [r.left + c.clientLeft + (b.x0 + b.x1) / 2, r.top + c.clientTop + (b.y0 + b.y1) / 2]"
        ));
        assert!(at.is_array(), "no count drawn by {parent}");
        self.click_at(at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    }

    /// Clicks record `id` in the explorer's DAG as a user would: when it is folded into its
    /// parent's count, the count first.
    pub fn click_dag_record(&self, id: &str) {
        self.wait_for(
            "the record in the DAG",
            &format!("return !!dag.layout && dag.layout.index.has('{id}') && !!dag.last"),
        );
        if self.js(&format!("return dagPoint('{id}')")).is_null() {
            let parent = self.js(&format!(
                "return dag.rows[dag.rows[dag.layout.index.get('{id}')][7]][0]"
            ));
            self.click_dag_count(parent.as_str().expect("a folded record has a parent"));
            self.wait_for(
                "the folded record drawn",
                &format!("return !!dagPoint('{id}')"),
            );
        }
        let p = self.js(&format!("return dagPoint('{id}')"));
        self.click_at(p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
    }

    /// Polls `script` until it returns true (10 s at most).
    pub fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.js(script) == J::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn screenshot(&self, name: &str) -> PathBuf {
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

pub fn base64_decode(text: &str) -> Vec<u8> {
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

pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

pub fn chromium() -> String {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| on_path(n))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}
