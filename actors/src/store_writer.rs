//! The store's one writer in a running node: a thread that owns every write transaction, fed by
//! a bounded channel of typed commands. Commands that are waiting when a transaction starts are
//! applied in it together (one commit, one fsync); after each commit the writer publishes what
//! changed as [`NodeEvent`]s on a bounded broadcast, so the actors that follow the store
//! (verifier, challenge arbiter, research loop, explorer) are told instead of polling.
//!
//! Checking untrusted bytes (parse, id, signature) happens before a command is sent
//! ([`crate::ingest::check_bodies`]), never inside the transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::warn;

use crate::ingest::{write_checked, Checked, IngestError, IngestOutcome};
use crate::messages::Stored;
use crate::store::{Changes, Durability};
use crate::{Store, StoreError};

/// Commands that may wait for the writer (senders wait when it is full).
const QUEUE: usize = 256;
/// Commands applied in one transaction at most.
const BATCH: usize = 64;
/// Event batches a slow subscriber may fall behind before it is told it lagged.
const EVENTS: usize = 1024;

/// Something that changed in the store, published after the commit that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// A record joined the graph. `frontier_changed`: its task's frontier changed in the same
    /// commit.
    RecordAccepted {
        id: String,
        task_id: String,
        frontier_changed: bool,
    },
    ArtifactStored {
        cid: String,
    },
    /// A control event was stored; `record` is the record it names (empty when none).
    ControlAccepted {
        id: String,
        event_type: String,
        record: String,
    },
    /// The verdict on a record changed (verified, challenged, decided, rejected).
    VerdictChanged {
        record: String,
    },
    TaskStored {
        task_id: String,
    },
    ProfileStored {
        node_id: String,
    },
}

/// Events of one commit, in the order they happened.
pub type EventBatch = Arc<[NodeEvent]>;

/// Why a write did not happen.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    #[error("the store writer has stopped")]
    Closed,
}

impl WriteError {
    /// The storage itself failed (not a refused object): the caller should stop.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            WriteError::Store(e) => matches!(**e, StoreError::Db(_) | StoreError::Corrupt { .. }),
            WriteError::Closed => true,
        }
    }
}

/// What one artifact write came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactWrite {
    Stored,
    AlreadyStored,
    /// The bytes do not hash to the cid, or are too large: nothing stored.
    Refused(String),
}

/// Checked frame bodies to store, as [`crate::ingest::ingest`] does in a process of its own.
pub struct IngestWork {
    pub checked: Vec<(String, Result<Checked, IngestError>)>,
    /// For a sync page: (peer, (after, last)) of the responder's log.
    pub sync_cursor: Option<(String, (u64, u64))>,
    /// Keep the frame bodies of new objects (to forward them).
    pub keep_bodies: bool,
    /// Made on this node (a publish, an import): on disk before the reply. Objects from peers
    /// reach the disk within [`LAZY_FOR`] (they are still on the peers if a crash loses them).
    pub durable: bool,
}

/// Local results: artifacts this node made and what its runs printed.
#[derive(Default)]
pub struct LocalWrite {
    pub artifacts: Vec<(String, Vec<u8>)>,
    /// (record id, is a rerun, text).
    pub run_outputs: Vec<(String, bool, String)>,
    /// (record id, is a rerun, training curve: `[step, loss, tokens/s, seconds]`).
    pub curves: Vec<(String, bool, Vec<[f64; 4]>)>,
}

enum Work {
    Ingest(IngestWork),
    Local(LocalWrite),
    DecideTimedOut,
    /// Finish what was sent before, then stop the thread.
    Stop,
}

enum Done {
    Stopped,
    Ingest(Box<IngestOutcome>),
    Local(Vec<ArtifactWrite>),
    Decided(Vec<String>),
}

struct Command {
    work: Work,
    reply: oneshot::Sender<Result<Done, WriteError>>,
}

/// A handle to the writer (cheap to clone). The writer stops when [`StoreWriter::close`] is
/// called or every handle is gone.
#[derive(Clone)]
pub struct StoreWriter {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EventBatch>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<Store>) -> std::io::Result<StoreWriter> {
        let (commands, rx) = mpsc::channel(QUEUE);
        let (events, _) = broadcast::channel(EVENTS);
        let publish = events.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&store, rx, &publish))?;
        Ok(StoreWriter {
            commands,
            events,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Stores what was sent before, then stops the writer thread and waits for it: it lets go of
    /// the store, so the redb file can be closed cleanly once the other handles are gone (a
    /// file not closed is checked and repaired at the next start). Later writes fail with
    /// [`WriteError::Closed`].
    pub async fn close(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.send(Work::Stop).await;
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Events after each commit, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventBatch> {
        self.events.subscribe()
    }

    /// The sender side of the events (for views that subscribe later).
    pub fn events(&self) -> &broadcast::Sender<EventBatch> {
        &self.events
    }

    async fn send(&self, work: Work) -> Result<Done, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command { work, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }

    /// Stores checked bodies in one transaction (possibly shared with other commands).
    pub async fn ingest(&self, work: IngestWork) -> Result<IngestOutcome, WriteError> {
        match self.send(Work::Ingest(work)).await? {
            Done::Ingest(out) => Ok(*out),
            _ => unreachable!("an ingest is answered with its outcome"),
        }
    }

    /// Stores artifacts (each checked against its cid) and run outputs.
    pub async fn local(&self, write: LocalWrite) -> Result<Vec<ArtifactWrite>, WriteError> {
        match self.send(Work::Local(write)).await? {
            Done::Local(out) => Ok(out),
            _ => unreachable!("a local write is answered with its artifacts"),
        }
    }

    /// Stores artifacts fetched from peers.
    pub async fn artifacts(
        &self,
        artifacts: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<ArtifactWrite>, WriteError> {
        self.local(LocalWrite {
            artifacts,
            ..LocalWrite::default()
        })
        .await
    }

    /// Decides challenges whose time is up; the records whose verdict changed.
    pub async fn decide_timed_out(&self) -> Result<Vec<String>, WriteError> {
        match self.send(Work::DecideTimedOut).await? {
            Done::Decided(out) => Ok(out),
            _ => unreachable!("a decision is answered with the records it changed"),
        }
    }
}

/// An actor: look at the store again (something it follows changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Look;

/// One wake-up from [`wake_ups`].
pub struct Wake;

/// A stream for `ctx.add_stream`: one [`Wake`] after each commit with an event that `wakes`
/// picks (it sees every event, in order), and one after events were missed (a lag: the actor
/// reads the store, which has everything). Events that arrive while the actor is busy make one
/// wake-up, so nothing queues up behind a slow actor. It ends when the writer is gone.
pub fn wake_ups<F>(writer: &StoreWriter, wakes: F) -> impl futures::Stream<Item = Wake>
where
    F: FnMut(&NodeEvent) -> bool + 'static,
{
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    fn woken<F: FnMut(&NodeEvent) -> bool>(wakes: &mut F, batch: &EventBatch) -> bool {
        // every event is shown to `wakes` (it may log them), not just up to the first match
        let mut woken = false;
        for event in batch.iter() {
            woken |= wakes(event);
        }
        woken
    }
    futures::stream::unfold(
        (writer.subscribe(), wakes),
        |(mut events, mut wakes)| async move {
            loop {
                let mut wake = match events.recv().await {
                    Ok(batch) => woken(&mut wakes, &batch),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                };
                // what else is waiting makes the same wake-up
                loop {
                    match events.try_recv() {
                        Ok(batch) => wake |= woken(&mut wakes, &batch),
                        Err(TryRecvError::Lagged(_)) => wake = true,
                        Err(_) => break,
                    }
                }
                if wake {
                    return Some((Wake, (events, wakes)));
                }
            }
        },
    )
}

/// An event sender for a view of a store that no writer changes (`spored explorer` on a
/// stopped node's data dir): nothing is ever sent on it.
pub fn quiet_events() -> broadcast::Sender<EventBatch> {
    broadcast::channel(1).0
}

/// Objects from peers may wait this long in commits that are seen at once but not yet on disk;
/// a commit of this node's own work, or the first commit this long after the last durable one,
/// or an idle writer makes them durable. A crash loses at most this much of what peers sent,
/// and the sync cursors go back with it (they are committed with the records), so the next
/// sync fetches it again. Saves most of a commit's cost while a sync streams pages in.
pub const LAZY_FOR: Duration = Duration::from_secs(1);

impl Work {
    fn durable(&self) -> bool {
        match self {
            Work::Ingest(work) => work.durable,
            Work::Local(_) | Work::DecideTimedOut | Work::Stop => true,
        }
    }
}

/// Waits for the next command; while commits wait to be made durable, at most until they are
/// due (`None` then: time to make them durable).
fn next_command(
    rx: &mut mpsc::Receiver<Command>,
    lazy_since: Option<Instant>,
    timer: Option<&tokio::runtime::Runtime>,
) -> Option<Option<Command>> {
    match (lazy_since, timer) {
        (None, _) | (_, None) => rx.blocking_recv().map(Some),
        (Some(since), Some(timer)) => {
            let left = LAZY_FOR.saturating_sub(since.elapsed());
            // the timeout is made inside the runtime (its timer needs one)
            match timer.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                Ok(command) => command.map(Some),
                Err(_) => Some(None),
            }
        }
    }
}

/// An empty durable commit: what lazy commits before it wrote reaches the disk.
fn make_durable(store: &Store, lazy_since: &mut Option<Instant>) {
    if lazy_since.take().is_some() {
        #[allow(clippy::disallowed_methods)] // this is the one writer
        if let Err(e) = store.write(|_| Ok(())) {
            warn!(error = %e, "making the last commits durable failed");
        }
    }
}

fn run(store: &Store, mut rx: mpsc::Receiver<Command>, events: &broadcast::Sender<EventBatch>) {
    let mut stop = None;
    let mut lazy_since: Option<Instant> = None;
    // a timer of its own, for the wait until lazy commits are due
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .inspect_err(
            |e| warn!(error = %e, "no timer for the store writer: every commit is durable"),
        )
        .ok();
    loop {
        let first = match next_command(&mut rx, lazy_since, timer.as_ref()) {
            None => break,
            Some(None) => {
                make_durable(store, &mut lazy_since);
                continue;
            }
            Some(Some(first)) => first,
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            if matches!(command.work, Work::Stop) {
                stop = Some(command.reply);
                break;
            }
            batch.push(command);
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            if let Some(reply) = stop.take() {
                make_durable(store, &mut lazy_since);
                let _ = reply.send(Ok(Done::Stopped));
                return;
            }
            continue;
        }
        let durable = timer.is_none()
            || batch.iter().any(|c| c.work.durable())
            || lazy_since.is_some_and(|since| since.elapsed() >= LAZY_FOR);
        let (works, replies): (Vec<Work>, Vec<_>) =
            batch.into_iter().map(|c| (c.work, c.reply)).unzip();
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::Lazy
        };
        #[allow(clippy::disallowed_methods)] // this is the one writer
        let written = store.write_with(durability, |w| {
            let mut done = Vec::with_capacity(works.len());
            for work in works {
                done.push(apply(w, work)?);
            }
            Ok((done, w.take_changes()))
        });
        match written {
            Ok((done, changes)) => {
                if durable {
                    lazy_since = None;
                } else {
                    lazy_since.get_or_insert_with(Instant::now);
                }
                let batch = events_of(&done, changes);
                if !batch.is_empty() {
                    let _ = events.send(batch.into());
                }
                for (reply, done) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(e) => {
                warn!(error = %e, commands = replies.len(), "a write transaction failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(WriteError::Store(e.clone())));
                }
            }
        }
        if let Some(reply) = stop.take() {
            make_durable(store, &mut lazy_since);
            let _ = reply.send(Ok(Done::Stopped));
            return;
        }
    }
    // every handle is gone
    make_durable(store, &mut lazy_since);
}

fn apply(w: &mut crate::Writer<'_>, work: Work) -> Result<Done, StoreError> {
    match work {
        Work::Ingest(work) => {
            let mut out = IngestOutcome::default();
            let cursor = work
                .sync_cursor
                .as_ref()
                .map(|(peer, range)| (peer.as_str(), *range));
            write_checked(
                w,
                work.checked.into_iter(),
                cursor,
                work.keep_bodies,
                &mut out,
            )?;
            out.finish();
            Ok(Done::Ingest(Box::new(out)))
        }
        Work::Local(write) => {
            let mut out = Vec::with_capacity(write.artifacts.len());
            for (cid, bytes) in &write.artifacts {
                out.push(match w.put_artifact(cid, bytes) {
                    Ok(true) => ArtifactWrite::Stored,
                    Ok(false) => ArtifactWrite::AlreadyStored,
                    Err(
                        e @ (StoreError::ArtifactMismatch { .. } | StoreError::ArtifactTooLarge(_)),
                    ) => ArtifactWrite::Refused(e.to_string()),
                    Err(e) => return Err(e),
                });
            }
            for (id, rerun, text) in &write.run_outputs {
                w.put_run_output(id, *rerun, text)?;
            }
            for (id, rerun, curve) in &write.curves {
                w.put_curve(id, *rerun, curve)?;
            }
            Ok(Done::Local(out))
        }
        Work::DecideTimedOut => Ok(Done::Decided(w.decide_timed_out()?)),
        Work::Stop => Ok(Done::Stopped),
    }
}

/// The events of one commit: what the commands stored, then what the store derived.
fn events_of(done: &[Done], changes: Changes) -> Vec<NodeEvent> {
    let mut events = Vec::new();
    for d in done {
        if let Done::Ingest(out) = d {
            push_stored(&mut events, &out.stored, &changes);
        }
    }
    for cid in changes.artifacts {
        events.push(NodeEvent::ArtifactStored { cid });
    }
    for record in changes.verdicts {
        events.push(NodeEvent::VerdictChanged { record });
    }
    events
}

fn push_stored(events: &mut Vec<NodeEvent>, stored: &Stored, changes: &Changes) {
    for task_id in &stored.tasks {
        events.push(NodeEvent::TaskStored {
            task_id: task_id.clone(),
        });
    }
    for (id, task_id) in stored.experiments.iter().zip(&stored.experiment_tasks) {
        events.push(NodeEvent::RecordAccepted {
            id: id.clone(),
            task_id: task_id.clone(),
            frontier_changed: changes.frontier_tasks.contains(task_id),
        });
    }
    for (id, (event_type, record)) in stored.control_events.iter().zip(&stored.control_subjects) {
        events.push(NodeEvent::ControlAccepted {
            id: id.clone(),
            event_type: event_type.clone(),
            record: record.clone(),
        });
    }
    for node_id in &stored.profiles {
        events.push(NodeEvent::ProfileStored {
            node_id: node_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_names_the_frontier_change_of_each_record_by_its_task() {
        let stored = Stored {
            experiments: vec!["a".into(), "b".into()],
            experiment_tasks: vec!["t1".into(), "t2".into()],
            ..Default::default()
        };
        let changes = Changes {
            frontier_tasks: ["t2".to_string()].into(),
            verdicts: ["a".to_string()].into(),
            artifacts: vec!["c".into()],
        };
        let events = events_of(
            &[Done::Ingest(Box::new(IngestOutcome {
                stored,
                ..Default::default()
            }))],
            changes,
        );
        assert_eq!(
            events,
            vec![
                NodeEvent::RecordAccepted {
                    id: "a".into(),
                    task_id: "t1".into(),
                    frontier_changed: false
                },
                NodeEvent::RecordAccepted {
                    id: "b".into(),
                    task_id: "t2".into(),
                    frontier_changed: true
                },
                NodeEvent::ArtifactStored { cid: "c".into() },
                NodeEvent::VerdictChanged { record: "a".into() },
            ]
        );
    }
}
