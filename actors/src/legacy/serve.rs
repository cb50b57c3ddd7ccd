//! Answers to a reference node's sync requests, read from the store (reference §d.3), and the
//! artifact lookup behind `code_request`.

use spore_spec::wire::Message;

use crate::store::LogKind;
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

/// Objects per page of a control or task sync answer.
const SMALL_PAGE_ITEMS: usize = 1_000;

/// Where a control or task sync answer stands between pages.
#[derive(Clone, Debug, Default)]
pub enum Position {
    #[default]
    Start,
    /// After this key of the control events' time index.
    Control(Vec<u8>),
    /// The ids of the manifests still to send, in order.
    Tasks(Vec<String>),
}

/// One page of the answer to `control_sync_request{since}` (`timestamp > since`, ordered by
/// timestamp, then by `event_id` within a second, as the reference orders them; a second with
/// more than 8,000 events is cut into pages, each ordered) or `task_sync_request{since}`
/// (signed manifests only, `timestamp > since`, ordered by (timestamp, task_id): the asker's
/// next `since` is the latest timestamp it stored, so an answer cut short must not have sent a
/// later manifest before an earlier one), as frame bodies, and where the next page starts
/// (`None`: this was the last). Streamed page by page: an answer holds at most a page of
/// objects in memory (and, for tasks, the list of ids to send).
pub fn small_page(
    read: &Reader,
    kind: SyncKind,
    since: i64,
    at: Position,
) -> Result<(Vec<String>, Option<Position>), StoreError> {
    match (kind, at) {
        (SyncKind::Control, at) => {
            let after = match &at {
                Position::Control(k) => Some(k.as_slice()),
                _ => None,
            };
            let (mut events, last) = read.control_events_after(since, after, SMALL_PAGE_ITEMS)?;
            events.sort_by(|a, b| {
                (a.timestamp, a.payload_str("event_id"))
                    .cmp(&(b.timestamp, b.payload_str("event_id")))
            });
            let bodies = events
                .into_iter()
                .map(|e| Message::Control(e).encode_body())
                .collect();
            Ok((bodies, last.map(Position::Control)))
        }
        (SyncKind::Tasks, at) => {
            let mut ids = match at {
                Position::Tasks(ids) => ids,
                _ => read.manifest_ids_since(since)?,
            };
            let rest = ids.split_off(ids.len().min(SMALL_PAGE_ITEMS));
            let mut bodies = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(row) = read.task(id)? {
                    bodies.push(Message::Task(row.manifest).encode_body());
                }
            }
            Ok((bodies, (!rest.is_empty()).then_some(Position::Tasks(rest))))
        }
        (SyncKind::Experiments, _) => Ok((Vec::new(), None)),
    }
}

/// Every signed manifest with `timestamp > since`, as frame bodies.
pub fn manifest_bodies(read: &Reader, since: i64) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut at = Position::Start;
    loop {
        let (bodies, next) = small_page(read, SyncKind::Tasks, since, at)?;
        out.extend(bodies);
        match next {
            Some(next) => at = next,
            None => return Ok(out),
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
