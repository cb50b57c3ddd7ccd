//! The arrival log: every accepted object numbered in the order it was stored, so a peer can ask
//! for "everything after n" and sync resumes where it stopped instead of starting from zero.

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::json;

use super::{Reader, StoreError, Writer};

/// What a log entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Experiment = 1,
    Task = 2,
    Control = 3,
    Profile = 4,
}

impl LogKind {
    fn from_byte(b: u8) -> Option<LogKind> {
        Some(match b {
            1 => LogKind::Experiment,
            2 => LogKind::Task,
            3 => LogKind::Control,
            4 => LogKind::Profile,
            _ => return None,
        })
    }
}

/// One object of the log, as the frame body a peer would send.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub kind: LogKind,
    /// `{"type":…,"payload":…}`
    pub body: String,
}

impl Writer<'_> {
    /// Appends an accepted object to the log.
    pub(super) fn append_log(&mut self, kind: LogKind, key: &str) -> Result<(), StoreError> {
        let next = match self.next_seq {
            Some(n) => n,
            None => self.t.log.last()?.map_or(1, |(k, _)| k.value() + 1),
        };
        let mut value = Vec::with_capacity(1 + key.len());
        value.push(kind as u8);
        value.extend_from_slice(key.as_bytes());
        self.t.log.insert(next, value.as_slice())?;
        self.next_seq = Some(next + 1);
        Ok(())
    }

    /// Remembers that everything up to `to` of `peer`'s log is stored here, if the cursor is
    /// still at `from` (the page read after `from` is the one just stored); false otherwise, so
    /// a page that arrives after an earlier one failed never moves the cursor past the gap.
    pub fn advance_sync_cursor(
        &mut self,
        peer: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let now = self.t.sync_cursors.get(peer)?.map_or(0, |v| v.value());
        if now != from {
            return Ok(false);
        }
        self.t.sync_cursors.insert(peer, to)?;
        Ok(true)
    }
}

impl Reader {
    /// The highest sequence number stored (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.t.log.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// The arrival log's last number that was on disk when this snapshot was taken (the rest
    /// came in lazy commits, see `store_writer::LAZY_FOR`): what peers may be served, since a
    /// crash could give the numbers after it to other objects.
    pub fn durable_log_seq(&self) -> u64 {
        self.durable_log
    }

    pub fn log_len(&self) -> Result<u64, StoreError> {
        Ok(self.t.log.len()?)
    }

    pub fn sync_cursor(&self, peer: &str) -> Result<u64, StoreError> {
        Ok(self.t.sync_cursors.get(peer)?.map_or(0, |v| v.value()))
    }

    /// Up to `limit` objects after `after`, oldest first, with at most `max_bytes` of bodies
    /// (at least one entry is returned when there is one).
    pub fn log_after(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.t.log.range(after.saturating_add(1)..)? {
            let (k, v) = item?;
            let (seq, raw) = (k.value(), v.value());
            let kind = raw
                .first()
                .and_then(|b| LogKind::from_byte(*b))
                .ok_or_else(|| StoreError::Corrupt {
                    table: "log_v1",
                    what: format!("entry {seq} has no kind"),
                })?;
            let key = std::str::from_utf8(&raw[1..]).map_err(|_| StoreError::Corrupt {
                table: "log_v1",
                what: format!("entry {seq} key is not utf-8"),
            })?;
            let body = match kind {
                LogKind::Experiment => self
                    .experiment_wire(key)?
                    .map(|w| envelope("experiment", &String::from_utf8_lossy(&w))),
                LogKind::Task => self
                    .task(key)?
                    .map(|row| envelope("task", &json::to_wire(&row.manifest.to_value()))),
                LogKind::Control => self
                    .control_event(key)?
                    .map(|e| envelope(&e.event_type.clone(), &json::to_wire(&e.to_value()))),
                LogKind::Profile => self
                    .profile(key)?
                    .map(|p| envelope("profile", &json::to_wire(&p.to_value()))),
            };
            if let Some(body) = body {
                bytes += body.len();
                out.push(LogEntry { seq, kind, body });
            }
            if out.len() >= limit || bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }
}

fn envelope(msg_type: &str, payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + 32);
    out.push_str("{\"type\":");
    json::write_str(&mut out, msg_type);
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push('}');
    out
}
