//! Signed control events, stored durably and replayable in (timestamp, id) order.

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::json;
use spore_spec::ControlEvent;

use super::codec::{key, sortable_i64};
use super::{Reader, StoreError, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlOutcome {
    Accepted,
    /// The same event (same id) is stored.
    Duplicate,
    /// Another event already used this `<type>:<event_id>` (the reference keeps the first).
    DuplicateEventId {
        stored_id: String,
    },
    /// The signer already has a vote of this kind about this record here (the first that
    /// came): this one is not stored.
    DuplicateVote {
        kept_id: String,
    },
    /// It can never count for the record it names (its publisher's own, or another hardware
    /// class): refused, not stored.
    Refused(String),
    /// The record already has [`MAX_CONTESTED_VOTES`] challenges, responses and disputes: not
    /// stored (no honest dispute needs more; each one makes the record's verdict be computed
    /// again from all of them).
    Crowded {
        record: String,
    },
}

/// Most challenges, challenge responses and disputes kept about one record. A challenge is
/// decided by three responses, so an honest record sees a handful; fresh keys are free, and
/// without a bound a stranger could make each new one cost time in the number before it.
/// Verifications are not bounded: they are counted one by one (`verdicts.rs`).
pub const MAX_CONTESTED_VOTES: usize = 256;

impl Writer<'_> {
    /// Stores a verified control event (no verdict logic: see `verdicts.rs`).
    pub(super) fn store_control_event(
        &mut self,
        event: &ControlEvent,
    ) -> Result<ControlOutcome, StoreError> {
        if self.t.control_events.get(event.id.as_str())?.is_some() {
            return Ok(ControlOutcome::Duplicate);
        }
        let dedupe = &mut self.t.control_dedupe;
        let dedupe_key = event.dedupe_key();
        if let Some(stored) = dedupe.get(dedupe_key.as_str())? {
            return Ok(ControlOutcome::DuplicateEventId {
                stored_id: stored.value().to_string(),
            });
        }
        if let Some(vote) = vote_key(event) {
            if let Some(kept) = self.t.votes.get(vote.as_str())? {
                return Ok(ControlOutcome::DuplicateVote {
                    kept_id: kept.value().to_string(),
                });
            }
            if let (Some(record), Some(kind)) = (subject(event), event.kind()) {
                if kind != spore_spec::ControlKind::Verification
                    && self.contested_votes(record, kind.as_str())? >= MAX_CONTESTED_VOTES
                {
                    return Ok(ControlOutcome::Crowded {
                        record: record.to_string(),
                    });
                }
            }
            self.t.votes.insert(vote.as_str(), event.id.as_str())?;
        }
        let dedupe = &mut self.t.control_dedupe;
        dedupe.insert(dedupe_key.as_str(), event.id.as_str())?;
        let bytes = json::to_wire(&event.to_value()).into_bytes();
        self.t
            .control_events
            .insert(event.id.as_str(), bytes.as_slice())?;
        self.t.control_by_time.insert(
            key(&[&sortable_i64(event.timestamp), event.id.as_bytes()]).as_slice(),
            (),
        )?;
        if counts_as_verification_work(&event.event_type) {
            self.count_verification_work(&event.node_id)?;
        }
        self.append_log(super::LogKind::Control, &event.id)?;
        Ok(ControlOutcome::Accepted)
    }
}

impl Writer<'_> {
    /// The votes of `kind` kept about `record`, counted up to [`MAX_CONTESTED_VOTES`].
    fn contested_votes(&self, record: &str, kind: &str) -> Result<usize, StoreError> {
        let start = format!("{record}:{kind}:");
        let end = format!("{record}:{kind};"); // ';' follows ':'
        let mut n = 0;
        for item in self.t.votes.range(start.as_str()..end.as_str())? {
            item?;
            n += 1;
            if n >= MAX_CONTESTED_VOTES {
                break;
            }
        }
        Ok(n)
    }
}

/// The vote an event casts, as a [`super::tables::VOTES`] key: verifications, challenges and
/// disputes, one per signer and record; responses, one per signer, record and challenge. `None`
/// for events that are not about a record.
pub(super) fn vote_key(event: &ControlEvent) -> Option<String> {
    use spore_spec::ControlKind;
    let record = subject(event)?;
    let kind = event.kind()?;
    Some(match kind {
        ControlKind::Verification | ControlKind::Challenge | ControlKind::Dispute => {
            format!("{record}:{}:{}", kind.as_str(), event.node_id)
        }
        ControlKind::ChallengeResponse => format!(
            "{record}:{}:{}:{}",
            kind.as_str(),
            event.node_id,
            event.payload_str("challenger_id")
        ),
    })
}

impl Reader {
    pub fn control_event(&self, id: &str) -> Result<Option<ControlEvent>, StoreError> {
        let table = &self.t.control_events;
        let bytes = table.get(id)?;
        bytes.map(|b| parse_event(b.value())).transpose()
    }

    pub fn control_event_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.control_events.len()?)
    }

    /// One page of the events with `timestamp > since`, in (timestamp, id) order: up to
    /// `limit` after position `after` (exclusive; `None` to start), then the rest of the last
    /// event's second, so a page ends between seconds (and a reader can order each second as
    /// it likes), unless that second holds more than 8 pages' worth. Returns the events and the
    /// position of the last, `None` when nothing is left.
    pub fn control_events_after(
        &self,
        since: i64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ControlEvent>, Option<Vec<u8>>), StoreError> {
        use std::ops::Bound;
        let from = sortable_i64(since.saturating_add(1));
        let start = match after {
            Some(position) => Bound::Excluded(position),
            None => Bound::Included(from.as_slice()),
        };
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for item in self
            .t
            .control_by_time
            .range::<&[u8]>((start, Bound::Unbounded))?
        {
            let (k, _) = item?;
            let k = k.value();
            if out.len() >= limit {
                let same_second = last.as_ref().is_some_and(|l| l[..8] == k[..8]);
                if !same_second || out.len() >= 8 * limit {
                    break;
                }
            }
            let id = String::from_utf8_lossy(&k[8..]).into_owned();
            if let Some(bytes) = self.t.control_events.get(id.as_str())? {
                out.push(parse_event(bytes.value())?);
            }
            last = Some(k.to_vec());
        }
        Ok((out, last))
    }

    /// Every stored event, oldest first.
    pub fn control_events(&self) -> Result<Vec<ControlEvent>, StoreError> {
        let by_time = &self.t.control_by_time;
        let events = &self.t.control_events;
        let mut out = Vec::new();
        for item in by_time.iter()? {
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k.value()[8..]).into_owned();
            if let Some(bytes) = events.get(id.as_str())? {
                out.push(parse_event(bytes.value())?);
            }
        }
        Ok(out)
    }
}

/// Control events that count as a node's verifier work (reference §f.4).
pub(super) fn counts_as_verification_work(event_type: &str) -> bool {
    matches!(event_type, "verification" | "challenge_response")
}

pub(super) fn parse_event(bytes: &[u8]) -> Result<ControlEvent, StoreError> {
    super::codec::parse_stored(bytes, "control_events_v1", ControlEvent::from_json)
}

/// The record a control event is about, when it names one.
pub(super) fn subject(event: &ControlEvent) -> Option<&str> {
    let id = event.payload_str("experiment_id");
    spore_spec::crypto::is_lower_hex(id, 64).then_some(id)
}
