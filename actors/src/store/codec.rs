//! Byte layouts of index values and composite keys.

use spore_spec::{Goal, Status};

use super::StoreError;

/// Reads a signed object stored as its wire JSON; anything unreadable is a corrupt entry of
/// `table` (the bytes were checked when they were written).
pub fn parse_stored<T>(
    bytes: &[u8],
    table: &'static str,
    read: impl FnOnce(spore_spec::Value) -> Result<T, spore_spec::Reject>,
) -> Result<T, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt { table, what };
    let value = spore_spec::json::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
    read(value).map_err(|e| corrupt(e.to_string()))
}

/// Order-preserving bytes of an i64 (big-endian with the sign bit flipped).
pub fn sortable_i64(x: i64) -> [u8; 8] {
    ((x as u64) ^ (1 << 63)).to_be_bytes()
}

/// Order-preserving bytes of a finite f64, ascending for `Minimize` and descending for
/// `Maximize`, so the best entry of either goal comes first in a forward scan.
pub fn sortable_metric(x: f64, goal: Goal) -> [u8; 8] {
    let bits = x.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    match goal {
        Goal::Minimize => ascending.to_be_bytes(),
        Goal::Maximize => (!ascending).to_be_bytes(),
    }
}

pub fn goal_byte(goal: Goal) -> u8 {
    match goal {
        Goal::Minimize => 0,
        Goal::Maximize => 1,
    }
}

/// Concatenates key parts.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The smallest key greater than every key that starts with `prefix`: the prefix with its last
/// byte that is not 0xff incremented (and what follows it dropped). Appending 0xff would not do:
/// a key `prefix ‖ 0xff ‖ …` (a timestamp of 2^62 or more, whose sortable form starts with
/// 0xff) sorts after `prefix ‖ 0xff`, and scans would miss it.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // only 0xff bytes (no prefix of this store's is): past any key a store would hold
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xff; 64]);
    end
}

/// What the store derives about one accepted record.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub task_id: String,
    pub parent: Option<String>,
    pub status: Status,
    pub metric: f64,
    pub timestamp: i64,
    pub depth: i64,
    /// A keep child in the task beats it when lower is better.
    pub displaced_min: bool,
    /// A keep child in the task beats it when higher is better.
    pub displaced_max: bool,
    /// A verification or upheld dispute confirmed it (local state, not signed).
    pub verified: bool,
    /// A challenge's reruns rejected the claim: it is on no frontier and displaces nobody.
    pub rejected: bool,
}

impl IndexEntry {
    /// On the task's frontier for `goal`: a keep no keep child has beaten.
    pub fn is_frontier(&self, goal: spore_spec::Goal) -> bool {
        self.status == spore_spec::Status::Keep
            && !self.rejected
            && match goal {
                spore_spec::Goal::Minimize => !self.displaced_min,
                spore_spec::Goal::Maximize => !self.displaced_max,
            }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        push_str(&mut out, &self.task_id);
        push_str(&mut out, self.parent.as_deref().unwrap_or(""));
        out.push(match self.status {
            Status::Keep => 0,
            Status::Discard => 1,
            Status::Crash => 2,
        });
        out.extend_from_slice(&self.metric.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.depth.to_le_bytes());
        out.push(
            self.displaced_min as u8
                | (self.displaced_max as u8) << 1
                | (self.verified as u8) << 2
                | (self.rejected as u8) << 3,
        );
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexEntry, StoreError> {
        let corrupt = || StoreError::Corrupt {
            table: "experiment_index_v1",
            what: "short or malformed entry".into(),
        };
        let mut r = ByteReader { bytes, pos: 0 };
        let task_id = r.string().ok_or_else(corrupt)?;
        let parent = r.string().ok_or_else(corrupt)?;
        let status = match r.u8().ok_or_else(corrupt)? {
            0 => Status::Keep,
            1 => Status::Discard,
            2 => Status::Crash,
            _ => return Err(corrupt()),
        };
        let metric = f64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let timestamp = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let depth = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let flags = r.u8().ok_or_else(corrupt)?;
        Ok(IndexEntry {
            task_id,
            parent: (!parent.is_empty()).then_some(parent),
            status,
            metric,
            timestamp,
            depth,
            displaced_min: flags & 1 != 0,
            displaced_max: flags & 2 != 0,
            verified: flags & 4 != 0,
            rejected: flags & 8 != 0,
        })
    }
}

pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub struct ByteReader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl ByteReader<'_> {
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let a = self.bytes.get(self.pos..self.pos + N)?.try_into().ok()?;
        self.pos += N;
        Some(a)
    }

    pub fn string(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        let s = std::str::from_utf8(self.bytes.get(self.pos..self.pos + len)?).ok()?;
        self.pos += len;
        Some(s.to_string())
    }
}

/// A stored record's wire JSON, parsed.
pub fn parse_record(bytes: &[u8]) -> Result<spore_spec::ExperimentRecord, StoreError> {
    parse_stored(
        bytes,
        "experiments_v1",
        spore_spec::ExperimentRecord::from_json,
    )
}

/// The frontier table's key of record `id` for `goal`.
pub fn frontier_key(goal: Goal, task_id: &str, metric: f64, id: &str) -> Vec<u8> {
    key(&[
        &[goal_byte(goal)],
        task_id.as_bytes(),
        &sortable_metric(metric, goal),
        id.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_holds_every_key_that_starts_with_it() {
        let prefix = b"task".to_vec();
        let end = prefix_end(&prefix);
        let far_future = key(&[&prefix, &sortable_i64(i64::MAX), b"id"]);
        let past = key(&[&prefix, &sortable_i64(i64::MIN), b"id"]);
        for k in [&far_future, &past, &prefix] {
            assert!(k.as_slice() >= prefix.as_slice() && k.as_slice() < end.as_slice());
        }
        assert!(b"tasl".as_slice() >= end.as_slice());
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), vec![2]);
    }

    #[test]
    fn metric_keys_sort_best_first_for_both_goals() {
        let values = [-3.5, -0.0, 0.0, 0.25, 1.0, 1e300];
        for pair in values.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(sortable_metric(a, Goal::Minimize) <= sortable_metric(b, Goal::Minimize));
            assert!(sortable_metric(a, Goal::Maximize) >= sortable_metric(b, Goal::Maximize));
        }
        assert!(sortable_i64(-5) < sortable_i64(3));
    }

    #[test]
    fn index_entry_round_trips_and_short_input_is_an_error() {
        let e = IndexEntry {
            task_id: "t".repeat(64),
            parent: Some("p".repeat(64)),
            status: Status::Discard,
            metric: 0.97,
            timestamp: 1767225600,
            depth: 3,
            displaced_min: true,
            displaced_max: false,
            verified: true,
            rejected: true,
        };
        let bytes = e.encode();
        assert_eq!(IndexEntry::decode(&bytes).unwrap(), e);
        assert!(IndexEntry::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
