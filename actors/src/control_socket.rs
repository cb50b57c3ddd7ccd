//! The node's side of the local control socket, `<data dir>/spored.sock` (mode 0600): how
//! `spored import` and `spored info` reach a running node, whose store no other process may
//! open. The node builder starts it ([`crate::node::NodeBuilder::control_socket`]).
//!
//! A client sends one JSON line naming the command, then, for `publish`, frame bodies one per
//! line, then closes its writing side; the node answers one JSON line.

use std::path::Path;

use spore_spec::json::{self, object, Value};
use tokio::io::AsyncWriteExt as _;
use tracing::{debug, warn};

use crate::registry::Registry;
use crate::Reader;

/// Lines published per batch (one store transaction each).
const BATCH: usize = 1000;
/// Most bytes one client may send.
const MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Answers a read command (`status`, `frontier`, …) from a store snapshot: the same function
/// the command line runs on its own store when no node is running, so both give the same answer.
/// Given the request object, it returns the answer or the error the command prints.
pub type QueryFn = std::sync::Arc<dyn Fn(&Reader, &Value) -> Result<Value, String> + Send + Sync>;

/// What `info` answers besides what the node knows of itself at the time of asking, and how
/// `query` requests are answered.
#[derive(Clone)]
pub struct ControlInfo {
    pub node_id: String,
    /// `research`, `verify-only` or `relay`.
    pub mode: String,
    pub version: String,
    /// Answers `query` requests; without it they get an error.
    pub query: Option<QueryFn>,
    /// Where `reload` requests go (the node takes its config again, as on SIGHUP); each carries
    /// where to send the outcome: what the node now pins, or why it did not reload.
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadReply>>,
}

/// Answers one `reload` request: `Ok(json)` describing the settings in effect, or the error.
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<Value, String>>;

impl std::fmt::Debug for ControlInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlInfo")
            .field("node_id", &self.node_id)
            .field("mode", &self.mode)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Binds the socket at `path` (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    // bound under a temporary name, made 0600, then renamed into place: the socket appears at
    // its path with its final mode (no window in which another user could connect)
    // no longer than `spored.sock`, so a data dir path that fits the socket path limit fits
    let tmp = path.with_file_name(format!(".s{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(listener)
}

/// A command or object line longer than this ends the connection (the biggest honest line is
/// one frame body: an artifact of 7 MiB as base64 in its envelope).
pub const MAX_LINE_BYTES: usize = 12 * 1024 * 1024;

/// The next line (without its newline), reading at most [`MAX_LINE_BYTES`] of it.
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<String>> {
    use tokio::io::AsyncBufReadExt as _;
    use tokio::io::AsyncReadExt as _;
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_LINE_BYTES {
        return Err(std::io::Error::other(format!(
            "a line over {MAX_LINE_BYTES} bytes"
        )));
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| std::io::Error::other("a line that is not UTF-8"))
}

/// Answers on `listener` until the accept fails (the caller reports it).
pub async fn serve(
    listener: tokio::net::UnixListener,
    registry: Registry,
    info: ControlInfo,
) -> std::io::Result<()> {
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

async fn handle(
    stream: tokio::net::UnixStream,
    registry: Registry,
    info: ControlInfo,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read);
    let first = next_line(&mut lines).await?.unwrap_or_default();
    let first = json::parse(first.as_bytes()).unwrap_or(Value::Null);
    let command = first
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let reply = match command.as_str() {
        "info" => node_info(&registry, info).await,
        "query" => query(&registry, &info, first).await,
        "reload" => reload(&info).await,
        "publish" => {
            let (mut accepted, mut held, mut duplicates, mut rejected) = (0i64, 0i64, 0i64, 0i64);
            let mut problems = Vec::new();
            let mut batch = Vec::with_capacity(BATCH);
            let mut bytes = 0;
            loop {
                let line = next_line(&mut lines).await?;
                let done = line.is_none();
                if let Some(line) = line {
                    bytes += line.len();
                    if bytes > MAX_REQUEST_BYTES {
                        return Err(std::io::Error::other(format!(
                            "request over {MAX_REQUEST_BYTES} bytes"
                        )));
                    }
                    if !line.trim().is_empty() {
                        batch.push(line);
                    }
                }
                if batch.len() >= BATCH || (done && !batch.is_empty()) {
                    let summary = registry
                        .publish_local(std::mem::take(&mut batch))
                        .await
                        .map_err(|_| std::io::Error::other("the node is shutting down"))?;
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

/// `{"command":"reload"}` → the settings in effect, or `{"error":"…"}`.
async fn reload(info: &ControlInfo) -> Value {
    let Some(reloads) = &info.reload else {
        return object([("error", Value::Str("this node does not reload".into()))]);
    };
    let (done, outcome) = tokio::sync::oneshot::channel();
    if reloads.send(done).await.is_err() {
        return object([("error", Value::Str("the node is shutting down".into()))]);
    }
    match outcome.await {
        Ok(Ok(settings)) => settings,
        Ok(Err(message)) => object([("error", Value::Str(message))]),
        Err(_) => object([("error", Value::Str("the node is shutting down".into()))]),
    }
}

/// `{"command":"query","request":{…}}` → `{"answer":…}` or `{"error":"…"}`.
async fn query(registry: &Registry, info: &ControlInfo, first: Value) -> Value {
    let Some(answer) = info.query.clone() else {
        return object([("error", Value::Str("this node answers no queries".into()))]);
    };
    let request = first.get("request").cloned().unwrap_or(Value::Null);
    let result = registry
        .reads
        .read(move |read| Ok(answer(read, &request)))
        .await;
    match result {
        Ok(Ok(value)) => object([("answer", value)]),
        Ok(Err(message)) => object([("error", Value::Str(message))]),
        Err(e) => object([("error", Value::Str(format!("reading the store: {e}")))]),
    }
}

async fn node_info(registry: &Registry, info: ControlInfo) -> Value {
    let peers = registry
        .peers
        .send(crate::messages::GetPeers)
        .await
        .unwrap_or_default();
    let listen = registry
        .peers
        .send(crate::messages::GetListenAddrs)
        .await
        .unwrap_or_default();
    let mut info = object([
        ("node_id", Value::Str(info.node_id)),
        ("peer_id", Value::Str(registry.peer_id.to_string())),
        ("mode", Value::Str(info.mode)),
        ("version", Value::Str(info.version)),
        (
            "listen",
            Value::Array(listen.iter().map(|a| Value::Str(a.to_string())).collect()),
        ),
    ]);
    let counts = registry.reads.read(|read| read.object_counts()).await;
    if let Value::Object(members) = &mut info {
        let connected = peers.iter().filter(|p| p.connected).count();
        members.push(("connected_peers".into(), Value::Int(connected as i64)));
        let legacy = registry
            .legacy
            .send(crate::legacy::LegacyPeerCount)
            .await
            .unwrap_or(0);
        members.push(("legacy_peers".into(), Value::Int(legacy as i64)));
        if let Ok(counts) = counts {
            for (kind, count) in counts {
                members.push((format!("{kind}_count"), Value::Int(count as i64)));
            }
        }
    }
    info
}
