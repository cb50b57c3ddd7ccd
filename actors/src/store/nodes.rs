//! Per-node counters for the explorer's node summaries, kept up to date on every insert and
//! verification, so a summary costs one read however many records a node has published.
//!
//! Each node has one entry per task it published in (key `<task id>:<node id>`: what it did in
//! that task) and one over all tasks (key `:<node id>`: its reputation figures, and the work it
//! did as a verifier, which belongs to no task's records).

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use spore_spec::{ExperimentRecord, Status};

use super::{Reader, StoreError, Writer};

/// Most distinct GPU classes and agent models remembered per entry; a node that reports
/// more (each record may name another) cannot grow its entry without bound.
pub const MAX_NODE_NAMES: usize = 32;

/// Counters of one publishing node, over all tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub count: u64,
    pub keep: u64,
    pub discard: u64,
    pub crash: u64,
    /// Its records that a verification or upheld dispute confirmed.
    pub verified: u64,
    /// Verifications and challenge responses it signed (kept in the all-tasks entry).
    #[serde(default)]
    pub verifications_performed: u64,
    /// Challenges decided for or against it (kept in the all-tasks entry): as challenger, as
    /// publisher of the challenged record, or as a responder on the winning or losing side.
    #[serde(default)]
    pub disputes_won: u64,
    #[serde(default)]
    pub disputes_lost: u64,
    /// Reputation credit from those confirmations (reference §f.4: 2 for a frontier keep, 1 for
    /// a keep, 0 for a discard, counted when the record is first confirmed).
    pub score: f64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The lowest finite metric of a keep or discard, and its record. Crash records are left out:
    /// their metric means nothing (the reference counts them, so a crash at 0.0 is its "best").
    pub best: Option<(f64, String)>,
    /// The newest record by (timestamp, depth, id).
    pub latest: Option<(i64, i64, String)>,
    pub gpu_models: Vec<String>,
    pub agent_models: Vec<String>,
}

/// The table key of a node's entry for `task_id` ("" for the all-tasks entry).
fn entry_key(task_id: &str, node_id: &str) -> String {
    format!("{task_id}:{node_id}")
}

fn remember(names: &mut Vec<String>, name: &str) {
    if !name.is_empty() && names.len() < MAX_NODE_NAMES && !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

impl NodeStats {
    fn add(&mut self, record: &ExperimentRecord) {
        if self.count == 0 || record.timestamp < self.first_seen {
            self.first_seen = record.timestamp;
        }
        self.last_seen = self.last_seen.max(record.timestamp);
        self.count += 1;
        match record.status {
            Status::Keep => self.keep += 1,
            Status::Discard => self.discard += 1,
            Status::Crash => self.crash += 1,
        }
        let metric = record.val_bpb.value();
        if record.status != Status::Crash
            && metric.is_finite()
            && self.best.as_ref().is_none_or(|(b, _)| metric < *b)
        {
            self.best = Some((metric, record.id.clone()));
        }
        let newest = (record.timestamp, record.depth, record.id.clone());
        if self.latest.as_ref().is_none_or(|l| newest > *l) {
            self.latest = Some(newest);
        }
        remember(&mut self.gpu_models, &record.gpu_model);
        remember(&mut self.agent_models, &record.agent_model);
    }

    fn decode(bytes: &[u8]) -> Result<NodeStats, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            table: "node_stats_v1",
            what: e.to_string(),
        })
    }
}

/// Reputation credit for a newly confirmed record (reference §f.4): 2 for a keep on its task's
/// frontier, 1 for another keep, 0 for a discard or crash.
pub(super) fn verification_credit(entry: &super::IndexEntry, goal: spore_spec::Goal) -> f64 {
    match entry.status {
        Status::Keep if entry.is_frontier(goal) => 2.0,
        Status::Keep => 1.0,
        _ => 0.0,
    }
}

impl Writer<'_> {
    /// Counts an accepted record for its publisher.
    pub(super) fn count_for_node(
        &mut self,
        record: &ExperimentRecord,
        task_id: &str,
    ) -> Result<(), StoreError> {
        self.node_entry(task_id, &record.node_id)?.add(record);
        self.node_entry("", &record.node_id)?.add(record);
        Ok(())
    }

    /// Credits the publisher of a newly confirmed record of `task_id` (`credit` as in
    /// [`NodeStats::score`]).
    pub(super) fn count_verified(
        &mut self,
        task_id: &str,
        node_id: &str,
        credit: f64,
    ) -> Result<(), StoreError> {
        for task in [task_id, ""] {
            let stats = self.node_entry(task, node_id)?;
            stats.verified += 1;
            stats.score += credit;
        }
        Ok(())
    }

    /// Applies (or, with `sign = -1.0`, takes back) a dispute credit of the reference's §f.4.
    pub(super) fn credit_dispute(
        &mut self,
        node_id: &str,
        won: bool,
        score: f64,
        sign: f64,
    ) -> Result<(), StoreError> {
        let stats = self.node_entry("", node_id)?;
        let counter = if won {
            &mut stats.disputes_won
        } else {
            &mut stats.disputes_lost
        };
        if sign > 0.0 {
            *counter += 1;
        } else {
            *counter = counter.saturating_sub(1);
        }
        stats.score = (stats.score + sign * score).clamp(-100.0, 100.0);
        Ok(())
    }

    /// Counts a verification or challenge response that `node_id` signed.
    pub(super) fn count_verification_work(&mut self, node_id: &str) -> Result<(), StoreError> {
        self.node_entry("", node_id)?.verifications_performed += 1;
        Ok(())
    }

    /// Rebuilds `node_id`'s counters after its records in `task_id` were removed: its entry for
    /// the task goes, and its all-tasks entry is counted again from the records it has left;
    /// `verified` records and `credit` of reputation that the removed ones had earned go back.
    pub(super) fn recount_node(
        &mut self,
        task_id: &str,
        node_id: &str,
        credit: f64,
        verified: u64,
    ) -> Result<(), StoreError> {
        let k = entry_key(task_id, node_id);
        self.node_stats.remove(&k);
        self.t.node_stats.remove(k.as_str())?;
        let prefix = super::codec::key(&[node_id.as_bytes()]);
        let end = super::codec::prefix_end(&prefix);
        let mut left = Vec::new();
        for item in self
            .t
            .node_records
            .range(prefix.as_slice()..end.as_slice())?
        {
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k.value()[prefix.len() + 8..]).into_owned();
            if let Some(wire) = self.t.experiments.get(id.as_str())? {
                left.push(super::codec::parse_record(wire.value())?);
            }
        }
        let old = self.node_entry("", node_id)?.clone();
        let mut fresh = NodeStats {
            verified: old.verified.saturating_sub(verified),
            verifications_performed: old.verifications_performed,
            disputes_won: old.disputes_won,
            disputes_lost: old.disputes_lost,
            score: old.score - credit,
            ..NodeStats::default()
        };
        for record in &left {
            fresh.add(record);
        }
        *self.node_entry("", node_id)? = fresh;
        Ok(())
    }

    fn node_entry(&mut self, task_id: &str, node_id: &str) -> Result<&mut NodeStats, StoreError> {
        let k = entry_key(task_id, node_id);
        if !self.node_stats.contains_key(&k) {
            let stats = match self.t.node_stats.get(k.as_str())? {
                Some(bytes) => NodeStats::decode(bytes.value())?,
                None => NodeStats::default(),
            };
            self.node_stats.insert(k.clone(), stats);
        }
        Ok(self.node_stats.get_mut(&k).expect("just inserted"))
    }

    pub(super) fn flush_node_stats(&mut self) -> Result<(), StoreError> {
        for (k, stats) in self.node_stats.drain() {
            let bytes = serde_json::to_vec(&stats).expect("node stats always serialise");
            self.t.node_stats.insert(k.as_str(), bytes.as_slice())?;
        }
        Ok(())
    }

    /// Builds the node counters of a store written before they existed (once: they are empty
    /// only then, since every stored record adds to them).
    pub fn backfill_node_stats(&mut self) -> Result<u64, StoreError> {
        if !self.t.node_stats.is_empty()? || self.t.index.is_empty()? {
            return Ok(0);
        }
        let mut rows = Vec::new();
        for item in self.t.index.iter()? {
            let (id, entry) = item?;
            let entry = super::IndexEntry::decode(entry.value())?;
            let id = id.value().to_string();
            let Some(wire) = self.t.experiments.get(id.as_str())? else {
                continue;
            };
            let record = super::codec::parse_stored(
                wire.value(),
                "experiments_v1",
                ExperimentRecord::from_json,
            )?;
            rows.push((record, entry));
        }
        for (record, entry) in &rows {
            self.count_for_node(record, &entry.task_id)?;
            if entry.verified {
                let goal = self.task_goal(&entry.task_id)?;
                let credit = verification_credit(entry, goal);
                self.count_verified(&entry.task_id, &record.node_id, credit)?;
            }
        }
        let mut workers = Vec::new();
        for item in self.t.control_events.iter()? {
            let (_, bytes) = item?;
            let event = super::control::parse_event(bytes.value())?;
            if super::control::counts_as_verification_work(&event.event_type) {
                workers.push(event.node_id);
            }
        }
        for node in &workers {
            self.count_verification_work(node)?;
        }
        Ok(rows.len() as u64)
    }
}

impl Reader {
    /// The counters of `node_id` in `task_id` ("" for all tasks), if it has any there.
    pub fn node_stats(
        &self,
        task_id: &str,
        node_id: &str,
    ) -> Result<Option<NodeStats>, StoreError> {
        let bytes = self
            .t
            .node_stats
            .get(entry_key(task_id, node_id).as_str())?;
        bytes.map(|b| NodeStats::decode(b.value())).transpose()
    }

    /// The counters of every node with an entry in `task_id` ("" for all tasks), node id order.
    pub fn nodes_stats(&self, task_id: &str) -> Result<Vec<(String, NodeStats)>, StoreError> {
        let start = entry_key(task_id, "");
        let end = format!("{task_id};"); // ';' follows ':'
        let mut out = Vec::new();
        for item in self.t.node_stats.range(start.as_str()..end.as_str())? {
            let (k, v) = item?;
            let node = k.value()[start.len()..].to_string();
            out.push((node, NodeStats::decode(v.value())?));
        }
        Ok(out)
    }
}
