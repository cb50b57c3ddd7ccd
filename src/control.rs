//! The local control socket, `<data dir>/spored.sock` (mode 0600): how `spored import` and
//! `spored info` reach a running node, whose store no other process may open.
//!
//! A client sends one JSON line naming the command, then, for `publish`, frame bodies one per
//! line, then closes its writing side; the node answers one JSON line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context as _, Result};
use spore_actors::node::Registry;
use spore_spec::json::{self, object, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tracing::{debug, warn};

/// Lines published per batch (one store transaction each).
const BATCH: usize = 1000;
/// Most bytes one client may send.
const MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Serves the control socket until the process ends.
pub async fn serve(path: &Path, registry: Registry, info: Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let registry = registry.clone();
        let info = info.clone();
        actix_rt::spawn(async move {
            if let Err(e) = handle(stream, registry, info).await {
                warn!(error = %e, "control connection failed");
            }
        });
    }
}

async fn handle(stream: tokio::net::UnixStream, registry: Registry, info: Value) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let command = lines.next_line().await?.unwrap_or_default();
    let command = json::parse(command.as_bytes())
        .ok()
        .and_then(|v| v.get("command").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let reply = match command.as_str() {
        "info" => node_info(&registry, info).await,
        "publish" => {
            let (mut accepted, mut held, mut duplicates, mut rejected) = (0i64, 0i64, 0i64, 0i64);
            let mut problems = Vec::new();
            let mut batch = Vec::with_capacity(BATCH);
            let mut bytes = 0;
            loop {
                let line = lines.next_line().await?;
                let done = line.is_none();
                if let Some(line) = line {
                    bytes += line.len();
                    anyhow::ensure!(
                        bytes <= MAX_REQUEST_BYTES,
                        "request over {MAX_REQUEST_BYTES} bytes"
                    );
                    if !line.trim().is_empty() {
                        batch.push(line);
                    }
                }
                if batch.len() >= BATCH || (done && !batch.is_empty()) {
                    let summary = registry
                        .publish_local(std::mem::take(&mut batch))
                        .await
                        .context("the node is shutting down")?;
                    accepted += summary.accepted as i64;
                    held += summary.held as i64;
                    duplicates += summary.duplicates as i64;
                    rejected += summary.rejected as i64;
                    let reasons = summary.problems.iter().map(|p| p.to_string());
                    problems.extend(reasons.take(20));
                }
                if done {
                    break;
                }
            }
            debug!(accepted, rejected, "control publish");
            object([
                ("accepted", Value::Int(accepted)),
                ("held", Value::Int(held)),
                ("already_present", Value::Int(duplicates)),
                ("rejected", Value::Int(rejected)),
                (
                    "problems",
                    Value::Array(problems.into_iter().map(Value::Str).collect()),
                ),
            ])
        }
        other => object([("error", Value::Str(format!("unknown command {other:?}")))]),
    };
    write.write_all(json::to_wire(&reply).as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await?;
    Ok(())
}

async fn node_info(registry: &Registry, mut info: Value) -> Value {
    let peers = registry
        .peers
        .send(spore_actors::messages::GetPeers)
        .await
        .unwrap_or_default();
    let counts = registry
        .reads
        .read(|read| {
            Ok([
                ("experiment_count", read.experiment_count()?),
                ("held_count", read.held_count()?),
                ("task_count", read.task_count()?),
                ("control_event_count", read.control_event_count()?),
                ("artifact_count", read.artifact_count()?),
            ])
        })
        .await;
    if let Value::Object(members) = &mut info {
        let connected = peers.iter().filter(|p| p.connected).count();
        members.push(("connected_peers".into(), Value::Int(connected as i64)));
        let legacy = registry
            .legacy
            .send(spore_actors::legacy::LegacyPeerCount)
            .await
            .unwrap_or(0);
        members.push(("legacy_peers".into(), Value::Int(legacy as i64)));
        if let Ok(counts) = counts {
            for (name, count) in counts {
                members.push((name.into(), Value::Int(count as i64)));
            }
        }
    }
    info
}

/// Sends `command` (and, for publish, `lines`) to the node at `socket`; returns its reply.
pub fn request(socket: &Path, command: &str, lines: &[&[u8]]) -> Result<Value> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to the running node at {}", socket.display()))?;
    exchange(stream, command, lines)
}

/// [`request`] to a node known to hold the store (it refused us with "in use"): while it starts,
/// its socket is not there yet or is a stale one left by a killed node, so connecting is retried
/// for up to 10 s. Only the connection is retried; a request is sent once.
pub fn request_running(socket: &Path, command: &str, lines: &[&[u8]]) -> Result<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "a node holds the store but does not answer on {}",
                        socket.display()
                    )
                })
            }
        }
    };
    exchange(stream, command, lines)
}

fn exchange(mut stream: UnixStream, command: &str, lines: &[&[u8]]) -> Result<Value> {
    writeln!(stream, "{{\"command\":\"{command}\"}}")?;
    for line in lines {
        stream.write_all(line)?;
        stream.write_all(b"\n")?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    json::parse(reply.trim().as_bytes()).context("the node's reply is not json")
}
