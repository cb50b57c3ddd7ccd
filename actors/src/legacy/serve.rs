//! Answers to a reference node's sync requests, read from the store (reference §d.3), and the
//! artifact lookup behind `code_request`.

use spore_spec::wire::Message;

use crate::store::{LogKind, TaskSource};
use crate::{Reader, StoreError};

/// The three kinds of sync the reference protocol has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncKind {
    Experiments,
    Control,
    Tasks,
}

impl SyncKind {
    pub const ALL: [SyncKind; 3] = [SyncKind::Experiments, SyncKind::Control, SyncKind::Tasks];

    pub fn request(self, since: i64) -> Message {
        match self {
            SyncKind::Experiments => Message::SyncRequest { since },
            SyncKind::Control => Message::ControlSyncRequest { since },
            SyncKind::Tasks => Message::TaskSyncRequest { since },
        }
    }

    pub fn response(self, since: i64, count: i64) -> Message {
        match self {
            SyncKind::Experiments => Message::SyncResponse { since, count },
            SyncKind::Control => Message::ControlSyncResponse { since, count },
            SyncKind::Tasks => Message::TaskSyncResponse { since, count },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncKind::Experiments => "records",
            SyncKind::Control => "control events",
            SyncKind::Tasks => "tasks",
        }
    }
}

/// Records per page read from the log while answering `sync_request`.
const PAGE_ITEMS: usize = 1_000;
const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// One page of the answer to `sync_request{since}`: experiment frame bodies of the log after
/// `after` whose `timestamp >= since` (the reference's inclusive rule), parents before children
/// (the log's order), up to `until`. Returns the bodies and where the next page starts, or
/// `None` when the log is exhausted.
pub fn experiment_page(
    read: &Reader,
    after: u64,
    until: u64,
    since: i64,
) -> Result<Option<(Vec<String>, u64)>, StoreError> {
    if after >= until {
        return Ok(None);
    }
    let entries = read.log_after(after, PAGE_ITEMS, PAGE_BYTES)?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let bodies = entries
        .into_iter()
        .filter(|e| e.seq <= until && e.kind == LogKind::Experiment)
        .filter(|e| since <= 0 || timestamp_of(&e.body).is_some_and(|t| t >= since))
        .map(|e| e.body)
        .collect();
    Ok(Some((bodies, last)))
}

fn timestamp_of(body: &str) -> Option<i64> {
    match Message::decode_body(body.as_bytes()) {
        Ok(Some(Message::Experiment(r))) => Some(r.timestamp),
        _ => None,
    }
}

/// The answer to `control_sync_request{since}` (`timestamp > since`, ordered by timestamp and
/// event id) or `task_sync_request{since}` (signed manifests only, `timestamp > since`, ordered
/// by timestamp and task id), as frame bodies.
pub fn small_answer(read: &Reader, kind: SyncKind, since: i64) -> Result<Vec<String>, StoreError> {
    match kind {
        SyncKind::Control => control_bodies(read, since),
        SyncKind::Tasks => manifest_bodies(read, since),
        SyncKind::Experiments => Ok(Vec::new()),
    }
}

fn control_bodies(read: &Reader, since: i64) -> Result<Vec<String>, StoreError> {
    {
        {
            let mut events: Vec<_> = read
                .control_events()?
                .into_iter()
                .filter(|e| e.timestamp > since)
                .collect();
            events.sort_by(|a, b| {
                (a.timestamp, a.payload_str("event_id"))
                    .cmp(&(b.timestamp, b.payload_str("event_id")))
            });
            Ok(events
                .into_iter()
                .map(|e| Message::Control(e).encode_body())
                .collect())
        }
    }
}

/// Signed manifests with `timestamp > since`, as frame bodies.
pub fn manifest_bodies(read: &Reader, since: i64) -> Result<Vec<String>, StoreError> {
    {
        {
            let mut tasks: Vec<_> = read
                .tasks()?
                .into_iter()
                .filter(|t| t.source == TaskSource::Manifest && t.manifest.timestamp > since)
                .map(|t| t.manifest)
                .collect();
            tasks.sort_by(|a, b| (a.timestamp, &a.task_id).cmp(&(b.timestamp, &b.task_id)));
            Ok(tasks
                .into_iter()
                .map(|m| Message::Task(m).encode_body())
                .collect())
        }
    }
}

/// The artifact a `code_request` names, only by its exact 64-hex SHA-256 (the reference opens
/// any path it is given, its private key included).
pub fn artifact(read: &Reader, cid: &str) -> Option<Vec<u8>> {
    if !is_cid(cid) {
        return None;
    }
    read.artifact(cid).ok().flatten()
}

/// 64 lowercase hex characters.
pub fn is_cid(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
