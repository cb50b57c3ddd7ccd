//! The LLM proposer against a real HTTP server on 127.0.0.1 that answers in each API's format.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use spore_actors::llm::{self, LlmSettings, PromptContext};
use spore_train::RunConfig;

mod support;

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one scripted (status, body) per connection, then stops. Returns the base URL and the
/// requests it saw.
fn server(replies: Vec<(u16, String)>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, reply) in replies {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (headers, length) = support::read_http_head(&mut reader);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(Seen {
                path,
                headers,
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            });
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (base, rx)
}

fn settings(provider: &str, base: String) -> LlmSettings {
    LlmSettings {
        provider: provider.into(),
        api_key: "sk-test-123".into(),
        model: "test-model".into(),
        base_url: base,
        max_tokens: 1000,
        temperature: 0.7,
        timeout: Duration::from_secs(5),
    }
}

fn answer_text(lr: &str) -> String {
    let config = String::from_utf8(RunConfig::baseline().to_bytes())
        .unwrap()
        .replace("lr = 0.003", &format!("lr = {lr}"));
    format!("Description: learning rate to {lr}\nHypothesis: more progress per step\n```toml\n{config}```\n")
}

fn openai_reply(text: &str) -> String {
    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": text}}]})
        .to_string()
}

fn anthropic_reply(text: &str) -> String {
    let (a, b) = text.split_at(10);
    serde_json::json!({"content": [{"type": "text", "text": a}, {"type": "text", "text": b}]})
        .to_string()
}

fn parent() -> String {
    String::from_utf8(RunConfig::baseline().to_bytes()).unwrap()
}

fn ctx() -> PromptContext {
    PromptContext {
        parent_val_bpb: 3.1,
        best_val_bpb: 3.0,
        task_records: 4,
        tried_from_parent: vec![("discard".into(), 3.2, "batch size 16 -> 8".into())],
    }
}

#[test]
fn openai_compatible_answers_become_proposals() {
    let (base, seen) = server(vec![(200, openai_reply(&answer_text("0.0045")))]);
    let p = llm::propose(&settings("groq", base), &parent(), &ctx(), 1 << 30, &|_| {
        false
    })
    .unwrap();
    assert_eq!(p.config.train.lr, 0.0045);
    assert_eq!(p.description, "learning rate to 0.0045");
    assert_eq!(p.hypothesis, "more progress per step");
    let req = seen.recv().unwrap();
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(req.body["model"], "test-model");
    assert_eq!(req.body["messages"][0]["role"], "system");
    let user = req.body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("batch size 16 -> 8") && user.contains("lr = 0.003"),
        "{user}"
    );
}

#[test]
fn anthropic_answers_become_proposals() {
    let (base, seen) = server(vec![(200, anthropic_reply(&answer_text("0.002")))]);
    let p = llm::propose(
        &settings("anthropic", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap();
    assert_eq!(p.config.train.lr, 0.002);
    let req = seen.recv().unwrap();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-test-123"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert!(req.body["system"].as_str().unwrap().contains("val_bpb"));
    assert_eq!(req.body["messages"][0]["role"], "user");
}

#[test]
fn a_malformed_answer_is_repaired_once_then_skipped() {
    let (base, seen) = server(vec![
        (200, openai_reply("I would raise the learning rate.")),
        (200, openai_reply(&answer_text("0.004"))),
    ]);
    let p = llm::propose(
        &settings("openai", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap();
    assert_eq!(p.config.train.lr, 0.004);
    let _first = seen.recv().unwrap();
    let repair = seen.recv().unwrap();
    let text = repair.body["messages"][1]["content"].as_str().unwrap();
    assert!(text.contains("previous answer was unusable"), "{text}");

    let (base, _seen) = server(vec![
        (200, openai_reply("```toml\nimport os\n```")),
        (200, openai_reply(&answer_text("-1"))),
    ]);
    let err = llm::propose(
        &settings("openai", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap_err();
    assert!(err.starts_with("skipped after one repair request"), "{err}");
    assert!(err.contains("train.lr"), "{err}");
}

#[test]
fn transient_errors_are_retried_and_others_are_reported() {
    let (base, _seen) = server(vec![
        (503, "{\"error\":\"busy\"}".into()),
        (200, openai_reply(&answer_text("0.005"))),
    ]);
    let p = llm::propose(
        &settings("custom", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap();
    assert_eq!(p.config.train.lr, 0.005);

    let (base, _seen) = server(vec![(401, "{\"error\":\"bad key\"}".into())]);
    let err = llm::propose(
        &settings("openai", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap_err();
    assert!(err.contains("HTTP 401"), "{err}");

    // nothing listens: a network error after the retries, not a hang or a panic
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = llm::propose(
        &settings("openai", format!("http://127.0.0.1:{port}/v1")),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| false,
    )
    .unwrap_err();
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn an_already_tried_config_is_not_proposed_again() {
    let (base, _seen) = server(vec![
        (200, openai_reply(&answer_text("0.0045"))),
        (200, openai_reply(&answer_text("0.0045"))),
    ]);
    let err = llm::propose(
        &settings("openai", base),
        &parent(),
        &ctx(),
        1 << 30,
        &|_| true,
    )
    .unwrap_err();
    assert!(err.contains("already tried"), "{err}");
}

#[test]
fn a_research_node_publishes_what_the_llm_proposed() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (base, seen) = server(vec![(200, openai_reply(&answer_text("0.0042")))]);
    let spored = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spored"));
        cmd.arg("--data-dir")
            .arg(dir)
            .env_remove("SPORE_HOME")
            .env("HOME", dir)
            .args(args);
        cmd
    };
    let out = spored(&[
        "set",
        "custom",
        "sk-local",
        "--model",
        "test-model",
        "--base-url",
        &base,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = spored(&support::LOOPBACK_RUN)
        .args(["--time-budget", "2"])
        .args(["--max-experiments", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("experiment ") {
                let _ = tx.send(line);
            }
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // the default task starts from its pinned root: the first experiment is the LLM's
    assert!(lines[0].contains("learning rate to 0.0042"), "{lines:?}");
    let req = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(req.header("authorization"), Some("Bearer sk-local"));

    let task = spore_actors::default_task::manifest().task_id;
    let out = spored(&["export", "--task", &task]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // the LLM's experiment: the first line's (its id's first 12 characters)
    let llm_id = lines[0].split_whitespace().nth(1).unwrap().to_string();
    let child_record = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|o| {
            o["type"] == "experiment"
                && o["payload"]["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(&llm_id))
        })
        .expect("the LLM's record");
    assert!(!child_record["payload"]["parent"].is_null());
    assert_eq!(child_record["payload"]["agent_model"], "test-model");
    assert_eq!(
        child_record["payload"]["hypothesis"],
        "more progress per step"
    );
    assert!(child_record["payload"]["diff"]
        .as_str()
        .unwrap()
        .contains("+lr = 0.0042"));
}
