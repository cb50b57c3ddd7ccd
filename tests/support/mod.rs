//! Shared by the end-to-end tests.

use serde_json::Value as J;

/// A file of `spec/vectors/`, parsed.
pub fn vectors(name: &str) -> J {
    let path = format!("{}/spec/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The reference's signed vectors (tasks, v2 records, control events, profiles) as JSONL lines
/// of message envelopes, in that order.
pub fn vector_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for file in [
        "tasks.json",
        "experiments_v2.json",
        "control_events.json",
        "profiles.json",
    ] {
        for v in vectors(file)["vectors"].as_array().unwrap() {
            lines.push(format!(
                "{{\"type\":{},\"payload\":{}}}",
                v["wire"]["msg_type"],
                v["wire"]["payload_json"].as_str().unwrap()
            ));
        }
    }
    lines
}

/// GET `path` from the explorer at `base` (`http://host:port` or `host:port`), one connection:
/// (status code, body).
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let host = base.strip_prefix("http://").unwrap_or(base);
    let mut s = std::net::TcpStream::connect(host).unwrap();
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
