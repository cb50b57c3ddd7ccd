//! One legacy TCP connection: a reader task that frames, sorts and answers what the peer sends,
//! and a writer task that drains the connection's outbox onto the socket.
//!
//! The reader never waits on the writer: a reference node answering our sync request writes
//! its whole answer before it reads anything (reference §d.1), so a reader that waited for
//! room in our outbox while the peer waited for us to read would deadlock both. Replies are
//! queued without waiting (bounded in bytes: past the cap the peer is too slow and the
//! connection closes); only the tasks streaming a sync answer wait for the outbox to drain.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use futures::FutureExt as _;
use spore_spec::wire::{self, Message};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info};

use super::limits::{Budget, Spend};
use super::serve::{self, SyncKind};
use super::{CodeArrived, LegacyBridge, PexAsked, PexLearned};
use crate::messages::{Ingest, Offence, Origin};
use crate::reads::Reads;

/// Bytes a connection may have queued for writing before it counts as too slow and is closed
/// (one frame bigger than this, an artifact, is taken when nothing else is queued).
pub const OUTBOX_CAP: usize = 8 * 1024 * 1024;
/// Bytes all connections together may have queued; past it, the connection that would add more
/// is closed as too slow.
pub const TOTAL_OUTBOX_CAP: usize = 256 * 1024 * 1024;
/// A sync answer waits while more than this is queued.
const STREAM_HIGH_WATER: usize = 4 * 1024 * 1024;
/// A frame that cannot be written within this is a dead peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Objects handed to the router at once.
const BATCH_ITEMS: usize = 1_000;
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How long our sync request may go without a frame of its answer before we move on.
const SYNC_IDLE: Duration = Duration::from_secs(60);

/// The frames waiting to be written to one connection.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    /// Bytes queued on every connection of the bridge.
    total: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

/// The outbox is over [`OUTBOX_CAP`] (the peer does not read fast enough), or all outboxes are
/// over [`TOTAL_OUTBOX_CAP`].
#[derive(Debug)]
pub struct Overflow;

impl Outbox {
    /// An outbox counting into `total` (shared by the bridge's connections).
    pub fn new(total: Arc<AtomicUsize>) -> (Outbox, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            total,
            drained: Arc::new(Notify::new()),
        };
        (outbox, rx)
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.total.fetch_sub(len, Ordering::Relaxed);
    }

    /// Queues one frame body. A body over the frame cap is skipped (it cannot be sent).
    pub fn send(&self, body: &str) -> Result<(), Overflow> {
        let Ok(frame) = wire::encode_frame(body.as_bytes()) else {
            return Ok(());
        };
        let len = frame.len();
        let queued = self.queued.load(Ordering::Relaxed);
        if queued > 0 && queued + len > OUTBOX_CAP {
            return Err(Overflow);
        }
        if self.total.load(Ordering::Relaxed) + len > TOTAL_OUTBOX_CAP {
            return Err(Overflow);
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.total.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(frame).is_err() {
            self.release(len);
        }
        Ok(())
    }

    pub fn send_message(&self, message: &Message) -> Result<(), Overflow> {
        self.send(&message.encode_body())
    }

    /// Waits until less than `limit` bytes are queued (or the connection is gone).
    async fn wait_below(&self, limit: usize) {
        loop {
            let drained = self.drained.notified();
            if self.queued.load(Ordering::Relaxed) < limit || self.tx.is_closed() {
                return;
            }
            drained.await;
        }
    }
}

/// Writes queued frames until the connection is closed or a write stalls.
pub async fn write_loop(
    mut socket: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    outbox: Outbox,
    close: Arc<watch::Sender<bool>>,
) {
    let mut closed = close.subscribe();
    let mut chunk = Vec::with_capacity(256 * 1024);
    loop {
        let first = tokio::select! {
            frame = rx.recv() => frame,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else { break };
        chunk.clear();
        chunk.extend_from_slice(&first);
        while chunk.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(frame) => chunk.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(&chunk)).await;
        outbox.release(chunk.len());
        outbox.drained.notify_waiters();
        if !matches!(written, Ok(Ok(()))) {
            debug!("legacy write failed or stalled: closing");
            break;
        }
    }
    // what was still queued is dropped now, and no longer counts
    rx.close();
    while let Ok(frame) = rx.try_recv() {
        outbox.release(frame.len());
    }
    outbox.drained.notify_waiters();
    close.send_replace(true);
    let _ = socket.shutdown().await;
}

/// What the reader of one connection needs.
pub struct Reader {
    pub conn: u64,
    pub key: String,
    /// The peer's address, when the socket knew it.
    pub addr: Option<std::net::SocketAddr>,
    pub reads: Reads,
    pub router: Recipient<Ingest>,
    pub bridge: actix::Addr<LegacyBridge>,
    pub outbox: Outbox,
    pub close: Arc<watch::Sender<bool>>,
    /// Sync answers being streamed to this peer, one per kind at most.
    pub serving: [Arc<AtomicBool>; 3],
    pub budget: Budget,
    /// Closed when no whole frame came within this of opening (this node sends `pex_request`
    /// first, which a 0.6.0 node always answers).
    pub first_frame_timeout: Duration,
    /// Closed when nothing came for this long; pinged after half of it.
    pub idle_timeout: Duration,
    /// Object frames this connection already sent.
    pub seen: SeenFrames,
    /// A request flood was reported: the bridge is closing the connection.
    pub flooded: bool,
    /// When the peer's address may next be answered a full sync, per kind (shared by all
    /// connections: a peer that reconnects to ask again waits its turn too).
    pub sync_turns: Arc<std::sync::Mutex<super::limits::SyncTurns>>,
}

/// Where our own sync with the peer stands: records, then control events, then tasks.
/// Fingerprints of the object frames one connection sent, so a replay of the same bytes costs
/// one hash instead of a parse and a signature check. An honest peer never sends an object twice
/// on one connection. Bounded: past [`SeenFrames::MAX`] it starts over.
#[derive(Debug)]
pub struct SeenFrames {
    keys: std::collections::hash_map::RandomState,
    seen: std::collections::HashSet<u64>,
}

impl Default for SeenFrames {
    fn default() -> Self {
        SeenFrames {
            keys: std::collections::hash_map::RandomState::new(),
            seen: Default::default(),
        }
    }
}

impl SeenFrames {
    const MAX: usize = 1 << 16;

    /// True the first time `bytes` are offered (keyed SipHash: a peer cannot aim collisions).
    pub fn first_time(&mut self, bytes: &[u8]) -> bool {
        use std::hash::BuildHasher as _;
        if self.seen.len() >= Self::MAX {
            self.seen.clear();
        }
        self.seen.insert(self.keys.hash_one(bytes))
    }
}

/// Offence points of a request flood: past any connection's limit at once.
const FLOOD_POINTS: u32 = 1_000;

struct OurSync {
    stage: Option<SyncKind>,
    done: bool,
    idle_until: Instant,
    received: u64,
    started: Instant,
}

impl Reader {
    /// Reads frames until the peer closes, the connection is closed, or the stream breaks
    /// (a frame over the size cap). Returns the reason.
    pub async fn run(mut self, mut socket: OwnedReadHalf) -> String {
        let mut closed = self.close.subscribe();
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut batch = Batcher {
            conn: self.conn,
            addr: self.addr,
            router: self.router.clone(),
            filling: Vec::new(),
            bytes: 0,
            storing: None,
        };
        // ask the peer for its peers and for everything it has, as a reference node does
        let _ = self.outbox.send_message(&Message::PexRequest);
        let mut sync = OurSync {
            stage: None,
            done: false,
            idle_until: Instant::now(),
            received: 0,
            started: Instant::now(),
        };
        self.next_sync_stage(&mut sync);
        let mut frames = 0u64;
        let opened = Instant::now();
        let mut last_read = opened;
        let mut pinged = false;
        let reason = 'read: loop {
            // every whole frame in the buffer
            let mut used = 0;
            loop {
                match wire::split_frame(&buf[used..]) {
                    Ok(Some((body, len))) => {
                        let body = body.to_vec();
                        used += len;
                        // whole frames, not bytes, keep a connection alive (a frame dribbled
                        // a byte at a time does not)
                        last_read = Instant::now();
                        pinged = false;
                        self.on_frame(body, &mut batch, &mut sync).await;
                        // closed (an offence past the limit, a flood): what is still buffered
                        // is not read
                        if *closed.borrow() {
                            break 'read "closed".to_string();
                        }
                        // a buffer full of tiny frames (a ping flood) must not hold the thread
                        // that drives every connection: let the others run now and then
                        frames += 1;
                        if frames.is_multiple_of(FRAMES_PER_TURN) {
                            tokio::task::yield_now().await;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => break 'read format!("stream broken: {e}"),
                }
            }
            buf.drain(..used);
            // read more; when nothing is waiting, start storing what this peer sent so far
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            let ready = match socket.read_buf(&mut buf).now_or_never() {
                Some(r) => Some(r),
                None => {
                    batch.start();
                    let idle = tokio::time::sleep_until(sync.idle_until.into());
                    // a stranger that connects and says nothing, or a peer gone silent, does
                    // not hold a connection slot
                    let deadline = if frames == 0 {
                        opened + self.first_frame_timeout
                    } else if pinged {
                        last_read + self.idle_timeout
                    } else {
                        last_read + self.idle_timeout / 2
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            if frames == 0 {
                                break 'read "no frame within the first-frame deadline".to_string();
                            }
                            if pinged {
                                break 'read "idle: no answer to a ping".to_string();
                            }
                            pinged = true;
                            let _ = self.outbox.send_message(&Message::Ping);
                            None
                        }
                        r = socket.read_buf(&mut buf) => Some(r),
                        _ = batch.stored() => None,
                        _ = closed.wait_for(|c| *c) => break 'read "closed".to_string(),
                        _ = idle, if sync.stage.is_some() => {
                            let stage = sync.stage.map_or("", |s| s.name());
                            debug!(peer = %self.key, stage, "no sync answer: moving on");
                            self.next_sync_stage(&mut sync);
                            None
                        }
                    }
                }
            };
            match ready {
                Some(Ok(0)) => break "the peer closed the connection".to_string(),
                Some(Ok(_)) | None => {}
                Some(Err(e)) => break format!("read failed: {e}"),
            }
        };
        batch.finish().await;
        self.close.send_replace(true);
        reason
    }

    /// Sends the next of our three sync requests (always `since: 0`: the reference's
    /// timestamp cursors miss events that share the latest second, and one far-future timestamp
    /// would stop them for good; duplicates cost only bandwidth).
    fn next_sync_stage(&mut self, sync: &mut OurSync) {
        let next = match sync.stage {
            None if !sync.done => Some(SyncKind::Experiments),
            Some(SyncKind::Experiments) => Some(SyncKind::Control),
            Some(SyncKind::Control) => Some(SyncKind::Tasks),
            _ => None,
        };
        sync.stage = next;
        sync.done = next.is_none();
        sync.idle_until = Instant::now() + SYNC_IDLE;
        match next {
            Some(kind) => {
                let _ = self.outbox.send_message(&kind.request(0));
            }
            None => info!(
                peer = %self.key,
                objects = sync.received,
                ms = sync.started.elapsed().as_millis() as u64,
                "legacy sync done"
            ),
        }
    }

    async fn on_frame(&mut self, body: Vec<u8>, batch: &mut Batcher, sync: &mut OurSync) {
        // signed objects go to the router whole (it decodes and checks them); anything else is
        // decoded here, once
        let (body, message) = if peek_type(&body).is_some_and(is_object_type) {
            (body, None)
        } else {
            let Some((body, decoded)) = decode_frame(body).await else {
                return; // the decoder failed (its panic is reported as the node's failure)
            };
            let message = match decoded {
                Ok(Some(
                    Message::Experiment(_)
                    | Message::Task(_)
                    | Message::Profile(_)
                    | Message::Control(_),
                )) => None,
                Ok(Some(m)) => Some(m),
                Ok(None) => return, // a type this protocol does not define: ignored
                Err(e) => return self.offence(&format!("malformed frame: {e}")),
            };
            (body, message)
        };
        let Some(message) = message else {
            let Ok(text) = String::from_utf8(body) else {
                return self.offence("frame is not UTF-8");
            };
            if sync.stage.is_some() {
                sync.received += 1;
                sync.idle_until = Instant::now() + SYNC_IDLE;
            }
            // the same bytes again on this connection (a peer replaying what it sent, to make
            // this node check the signatures over and over): dropped unread, a minor offence
            // (an honest peer may repeat itself now and then, never over and over)
            if !self.seen.first_time(text.as_bytes()) {
                return self.offend(
                    crate::refusal::Severity::Minor.points(),
                    "the same object again on one connection",
                );
            }
            batch.push(text).await;
            return;
        };
        match message {
            Message::SyncResponse { .. } => self.terminator(SyncKind::Experiments, sync),
            Message::ControlSyncResponse { .. } => self.terminator(SyncKind::Control, sync),
            Message::TaskSyncResponse { .. } => self.terminator(SyncKind::Tasks, sync),
            Message::PexResponse { peers } => self.bridge.do_send(PexLearned {
                conn: self.conn,
                peers,
            }),
            Message::CodeResponse { code_cid, code } => self.bridge.do_send(CodeArrived {
                conn: self.conn,
                cid: code_cid,
                bytes: code,
            }),
            Message::Pong => {}
            request => {
                match self.budget.spend(Instant::now()) {
                    Spend::Serve => {}
                    Spend::Refuse { flood: true, .. } => {
                        // cut off now, and its address refused for a while
                        if std::mem::replace(&mut self.flooded, true) {
                            return;
                        }
                        return self.offend(FLOOD_POINTS, "a request flood");
                    }
                    Spend::Refuse { offence, .. } => {
                        if offence {
                            self.offence("requests over the rate limit");
                        }
                        return;
                    }
                }
                match request {
                    Message::Ping => {
                        let _ = self.outbox.send_message(&Message::Pong);
                    }
                    Message::PexRequest => self.bridge.do_send(PexAsked { conn: self.conn }),
                    Message::CodeRequest { code_cid } => self.serve_code(code_cid).await,
                    Message::SyncRequest { since } => self.serve_sync(SyncKind::Experiments, since),
                    Message::ControlSyncRequest { since } => {
                        self.serve_sync(SyncKind::Control, since)
                    }
                    Message::TaskSyncRequest { since } => self.serve_sync(SyncKind::Tasks, since),
                    _ => {}
                }
            }
        }
    }

    fn terminator(&mut self, kind: SyncKind, sync: &mut OurSync) {
        if sync.stage == Some(kind) {
            self.next_sync_stage(sync);
        }
    }

    /// A serious offence (invalid data, a flood of refused requests).
    fn offence(&self, reason: &str) {
        self.offend(crate::refusal::Severity::Serious.points(), reason);
    }

    fn offend(&self, points: u32, reason: &str) {
        debug!(peer = %self.key, reason, "legacy offence");
        self.bridge.do_send(Offence {
            conn: self.conn,
            points,
            reason: reason.to_string(),
        });
    }

    /// Answers only an exact 64-hex cid of an artifact we store; anything else gets no answer,
    /// as the reference does for an unknown cid.
    async fn serve_code(&self, cid: String) {
        if !serve::is_cid(&cid) {
            debug!(peer = %self.key, "code_request for something that is not a cid: ignored");
            return;
        }
        let found = self
            .reads
            .read(move |read| {
                Ok(
                    serve::artifact(read, &cid).map(|code| Message::CodeResponse {
                        code_cid: cid,
                        code,
                    }),
                )
            })
            .await
            .ok()
            .flatten();
        if let Some(message) = found {
            if self.outbox.send_message(&message).is_err() {
                self.close.send_replace(true);
            }
        }
    }

    /// Streams the answer to a sync request on its own task (the reader keeps reading), one
    /// per kind at a time: a repeat while one streams is dropped.
    fn serve_sync(&self, kind: SyncKind, since: i64) {
        let slot = self.serving[kind as usize].clone();
        if slot.swap(true, Ordering::AcqRel) {
            debug!(peer = %self.key, kind = kind.name(), "sync request while one is answered: dropped");
            return;
        }
        // each answer reads what it serves from the store: an address gets a few at once, then
        // one per cool-down (`limits::SyncTurns`), later rather than never
        let address = self.addr.map(|a| crate::addresses::network_of(a.ip()));
        let start = match address {
            Some(address) => self
                .sync_turns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reserve(address, kind as u8, Instant::now()),
            None => Some(Instant::now()),
        };
        let Some(start) = start else {
            // far past any honest pace: an empty answer, so an asker that waits for the end of
            // it goes on (what it missed comes with its next sync or by gossip)
            slot.store(false, Ordering::Release);
            debug!(peer = %self.key, kind = kind.name(), "sync request past its address's turns: answered empty");
            let _ = self.outbox.send_message(&kind.response(since, 0));
            return;
        };
        let (reads, outbox, close, key) = (
            self.reads.clone(),
            self.outbox.clone(),
            self.close.clone(),
            self.key.clone(),
        );
        let mut closed = self.close.subscribe();
        let turns = self.sync_turns.clone();
        tokio::spawn(async move {
            // a connection that closes while its answer waits ends the wait, and gives its
            // turn back
            tokio::select! {
                _ = tokio::time::sleep_until(start.into()) => {}
                _ = closed.wait_for(|closed| *closed) => {
                    slot.store(false, Ordering::Release);
                    if let Some(address) = address {
                        turns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .give_back(address, kind as u8);
                    }
                    return;
                }
            }
            let started = Instant::now();
            let sent = stream_answer(&reads, &outbox, kind, since).await;
            slot.store(false, Ordering::Release);
            match sent {
                Ok(count) => debug!(
                    peer = %key,
                    kind = kind.name(),
                    count,
                    ms = started.elapsed().as_millis() as u64,
                    "sync answered"
                ),
                Err(e) => {
                    debug!(peer = %key, error = %e, "sync answer stopped");
                    close.send_replace(true);
                }
            }
        });
    }
}

/// Objects read from the peer on their way to the router: one batch being stored while the
/// next one fills, so batches grow while the store is busy (one transaction per batch), and
/// order is kept (a batch starts only when the one before it is stored). When the filling batch
/// is full and the other is still being stored, the reader waits: what the peer sends next stays
/// in the socket, so a fast sender cannot fill our memory.
struct Batcher {
    conn: u64,
    addr: Option<std::net::SocketAddr>,
    router: Recipient<Ingest>,
    filling: Vec<String>,
    bytes: usize,
    storing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Batcher {
    async fn push(&mut self, body: String) {
        self.bytes += body.len();
        self.filling.push(body);
        if self.filling.len() >= BATCH_ITEMS || self.bytes >= BATCH_BYTES {
            if let Some(storing) = self.storing.take() {
                storing.await;
            }
            self.start();
        }
    }

    /// Starts storing the filled batch, unless one is being stored.
    fn start(&mut self) {
        if self.storing.is_some() || self.filling.is_empty() {
            return;
        }
        self.bytes = 0;
        let ingest = self.router.send(Ingest {
            origin: Origin::Legacy {
                conn: self.conn,
                addr: self.addr,
            },
            bodies: std::mem::take(&mut self.filling),
            sync_range: None,
        });
        self.storing = Some(Box::pin(ingest.map(|_| ())));
    }

    /// Resolves when the batch being stored is stored, and starts the next (never resolves
    /// when none is being stored).
    async fn stored(&mut self) {
        match self.storing.as_mut() {
            Some(storing) => storing.await,
            None => std::future::pending().await,
        }
        self.storing = None;
        self.start();
    }

    /// Stores everything read.
    async fn finish(&mut self) {
        while self.storing.is_some() || !self.filling.is_empty() {
            if let Some(storing) = self.storing.take() {
                storing.await;
            }
            self.start();
        }
    }
}

/// Writes the items of a sync answer, then its terminator `{"since", "count"}`.
async fn stream_answer(
    reads: &Reads,
    outbox: &Outbox,
    kind: SyncKind,
    since: i64,
) -> Result<i64, String> {
    let mut count = 0i64;
    if kind == SyncKind::Experiments {
        let until = reads
            .read(|r| r.last_seq())
            .await
            .map_err(|e| e.to_string())?;
        let mut after = 0;
        loop {
            let page = reads
                .read(move |r| serve::experiment_page(r, after, until, since))
                .await
                .map_err(|e| e.to_string())?;
            let Some((bodies, last)) = page else { break };
            after = last;
            for body in bodies {
                outbox.wait_below(STREAM_HIGH_WATER).await;
                outbox.send(&body).map_err(|_| "peer too slow")?;
                count += 1;
            }
        }
    } else {
        let mut at = serve::Position::Start;
        loop {
            let (bodies, next) = reads
                .read(move |r| serve::small_page(r, kind, since, at))
                .await
                .map_err(|e| e.to_string())?;
            for body in bodies {
                outbox.wait_below(STREAM_HIGH_WATER).await;
                outbox.send(&body).map_err(|_| "peer too slow")?;
                count += 1;
            }
            match next {
                Some(next) => at = next,
                None => break,
            }
        }
    }
    outbox
        .send_message(&kind.response(since, count))
        .map_err(|_| "peer too slow")?;
    Ok(count)
}

/// Frames a connection handles before it lets the other tasks of its thread run.
const FRAMES_PER_TURN: u64 = 256;

/// Frames up to this size are decoded on the connection's own task; larger ones (artifacts, or
/// a stranger's big object) on a blocking thread, so no frame can hold up the thread that
/// drives every connection. A small frame decodes in microseconds.
const DECODE_INLINE_BYTES: usize = 16 * 1024;

/// Decodes a frame that is not a signed object, giving the body back (signed objects go on to
/// the router whole).
async fn decode_frame(body: Vec<u8>) -> Option<(Vec<u8>, DecodeResult)> {
    if body.len() <= DECODE_INLINE_BYTES {
        let decoded = Message::decode_body(&body);
        return Some((body, decoded));
    }
    tokio::task::spawn_blocking(move || {
        let decoded = Message::decode_body(&body);
        (body, decoded)
    })
    .await
    .ok()
}

type DecodeResult = Result<Option<Message>, spore_spec::wire::WireError>;

/// The envelope type when the body starts the way every implementation writes it
/// (`{"type":"…"`); `None` sends the frame through the full decoder.
fn peek_type(body: &[u8]) -> Option<&str> {
    let rest = body.strip_prefix(b"{\"type\":\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

fn is_object_type(t: &str) -> bool {
    matches!(
        t,
        "experiment"
            | "task"
            | "profile"
            | "verification"
            | "challenge"
            | "challenge_response"
            | "dispute"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_finds_the_type_only_in_the_usual_layout() {
        assert_eq!(
            peek_type(br#"{"type":"experiment","payload":{}}"#),
            Some("experiment")
        );
        assert_eq!(peek_type(br#"{"payload":{},"type":"task"}"#), None);
        assert_eq!(peek_type(br#"{"type":"exp\u0065riment"}"#), None);
        assert!(is_object_type("dispute") && !is_object_type("code_request"));
    }
}
