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
