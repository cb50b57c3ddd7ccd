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
