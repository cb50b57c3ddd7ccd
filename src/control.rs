//! The client side of the local control socket, `<data dir>/spored.sock`: how `spored import`
//! and `spored info` reach a running node, whose store no other process may open. The node's
//! side is `spore_actors::control_socket` (started by the node builder).
//!
//! A client sends one JSON line naming the command, then, for `publish`, frame bodies one per
//! line, then closes its writing side; the node answers one JSON line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context as _, Result};
use spore_spec::json::{self, Value};

/// Sends `command` (and, for publish, `lines`) to the node at `socket`; returns its reply.
pub fn request(socket: &Path, command: &str, lines: &[&[u8]]) -> Result<Value> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to the running node at {}", socket.display()))?;
    exchange(stream, &command_line(command), lines)
}

fn command_line(command: &str) -> Value {
    json::object([("command", Value::Str(command.into()))])
}

/// Asks the node that holds the store (see [`request_running`]) to answer a read `request`
/// (`crate::query`); its error comes back as this call's error.
pub fn query_running(socket: &Path, request: Value) -> Result<Value> {
    let first = json::object([
        ("command", Value::Str("query".into())),
        ("request", request),
    ]);
    let mut reply = connect_running(socket).and_then(|s| exchange(s, &first, &[]))?;
    if let Some(error) = reply.get("error").and_then(Value::as_str) {
        anyhow::bail!("{error}");
    }
    match &mut reply {
        Value::Object(members) => match members.iter().position(|(k, _)| k == "answer") {
            Some(i) => Ok(members.swap_remove(i).1),
            None => anyhow::bail!("the node's reply has no answer"),
        },
        _ => anyhow::bail!("the node's reply is not an object"),
    }
}

/// [`request`] to a node known to hold the store (it refused us with "in use"): while it starts,
/// its socket is not there yet or is a stale one left by a killed node, so connecting is retried
/// for up to 10 s. Only the connection is retried; a request is sent once.
pub fn request_running(socket: &Path, command: &str, lines: &[&[u8]]) -> Result<Value> {
    exchange(connect_running(socket)?, &command_line(command), lines)
}

fn connect_running(socket: &Path) -> Result<UnixStream> {
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
    Ok(stream)
}

/// How long a reply may take: a query of a large store (an export) takes seconds; a node that
/// does not answer in this long is stuck.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

fn exchange(mut stream: UnixStream, first: &Value, lines: &[&[u8]]) -> Result<Value> {
    stream.set_read_timeout(Some(REPLY_WAIT))?;
    writeln!(stream, "{}", json::to_wire(first))?;
    for line in lines {
        stream.write_all(line)?;
        stream.write_all(b"\n")?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    json::parse(reply.trim().as_bytes()).context("the node's reply is not json")
}
