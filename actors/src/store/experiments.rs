//! Experiment records: lineage on insert, held children, and the per-task indexes that keep
//! frontier, best, recent and counts cheap at any size.

use std::collections::VecDeque;

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::{ExperimentRecord, Goal, Status};

use super::codec::{frontier_key, goal_byte, key, parse_record, prefix_end, sortable_i64};
use super::codec::{push_str, ByteReader, IndexEntry};
use super::{Reader, StoreError, Writer};
use crate::lineage::{decide, Decision, LineageReject, ParentState, TaskRoot};

/// Most records held at once while they wait for a parent; more are refused, not dropped
/// silently, so a flood of orphans cannot grow the store without bound.
pub const MAX_HELD: u64 = 100_000;
/// Most records of one signer held at once. An honest node's child outruns its parent only
/// for moments (sync serves parents first), so one signer's backlog this large is a flood; the
/// quota keeps one signer from filling the whole pool.
pub const MAX_HELD_PER_SIGNER: u64 = 1_000;
/// How long a record waits for its parent before it is dropped (an hour: a parent that is
/// this late is most likely never coming; if it does, the child comes again with any resync).
pub const HELD_FOR_SECS: i64 = 3_600;
/// Expired held records dropped per hold, so one hold never pays for a whole backlog.
const EXPIRE_PER_HOLD: usize = 256;

/// What happened to one record offered to the store.
#[derive(Clone, Debug, PartialEq)]
pub enum ExperimentOutcome {
    /// Stored in task `task_id`.
    Accepted { task_id: String },
    /// Already stored.
    Duplicate,
    /// Waiting for its parent; decided when the parent arrives.
    Held { parent: String },
    /// Can never join the graph.
    Rejected(LineageReject),
}

/// Counters of one task, kept up to date on every insert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskStats {
    pub count: u64,
    pub keep: u64,
    pub discard: u64,
    pub crash: u64,
    pub first_timestamp: i64,
    pub latest_timestamp: i64,
    pub root: Option<String>,
}

impl TaskStats {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(120);
        for n in [self.count, self.keep, self.discard, self.crash] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.first_timestamp.to_le_bytes());
        out.extend_from_slice(&self.latest_timestamp.to_le_bytes());
        push_str(&mut out, self.root.as_deref().unwrap_or(""));
        out
    }

    fn decode(bytes: &[u8]) -> Result<TaskStats, StoreError> {
        let corrupt = || StoreError::Corrupt {
            table: "task_stats_v1",
            what: "short or malformed entry".into(),
        };
        let mut r = ByteReader { bytes, pos: 0 };
        let mut n = [0u64; 4];
        for slot in &mut n {
            *slot = u64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        }
        let first_timestamp = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let latest_timestamp = i64::from_le_bytes(r.array().ok_or_else(corrupt)?);
        let root = r.string().ok_or_else(corrupt)?;
        Ok(TaskStats {
            count: n[0],
            keep: n[1],
            discard: n[2],
            crash: n[3],
            first_timestamp,
            latest_timestamp,
            root: (!root.is_empty()).then_some(root),
        })
    }
}

/// Adds a stored record to the per-node indexes (participants of its task, the node's records).
pub(super) fn index_node(
    t: &mut super::tables::WriteTables<'_>,
    task_id: &str,
    node_id: &str,
    timestamp: i64,
    id: &str,
) -> Result<(), StoreError> {
    let pair = key(&[task_id.as_bytes(), node_id.as_bytes()]);
    let n = t.task_nodes.get(pair.as_slice())?.map_or(0, |v| v.value());
    t.task_nodes.insert(pair.as_slice(), n + 1)?;
    let by_node = key(&[node_id.as_bytes(), &sortable_i64(timestamp), id.as_bytes()]);
    t.node_records.insert(by_node.as_slice(), ())?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Order {
    Ascending,
    Descending,
}

/// The ids of up to `limit` keys `prefix ‖ 8-byte sort key ‖ id` of an index table, in sort-key
/// order (task records by time, node records by time, the frontier by metric).
fn sorted_ids(
    table: &redb::ReadOnlyTable<&'static [u8], ()>,
    prefix: &[u8],
    limit: usize,
    order: Order,
) -> Result<Vec<String>, StoreError> {
    let end = prefix_end(prefix);
    let skip = prefix.len() + 8;
    let range = table.range(prefix..end.as_slice())?;
    let keys: Box<dyn Iterator<Item = _>> = match order {
        Order::Ascending => Box::new(range),
        Order::Descending => Box::new(range.rev()),
    };
    let mut out = Vec::new();
    for item in keys.take(limit) {
        let (k, _) = item?;
        out.push(String::from_utf8_lossy(&k.value()[skip..]).into_owned());
    }
    Ok(out)
}

fn frontier_prefix(goal: Goal, task_id: &str) -> Vec<u8> {
    key(&[&[goal_byte(goal)], task_id.as_bytes()])
}

/// The bytes stored for a record: its wire JSON; a v1 record carries its derived task id
/// (unsigned, so the id and signature still verify), as the reference re-serves it.
fn stored_bytes(record: &ExperimentRecord, task_id: &str) -> Vec<u8> {
    if record.signs_task_id() || record.task_id == task_id {
        return record.to_wire_json().into_bytes();
    }
    let mut copy = record.clone();
    copy.task_id = task_id.to_string();
    copy.to_wire_json().into_bytes()
}

impl Writer<'_> {
    /// Offers a record whose id, signature and rules were already checked
    /// ([`spore_spec::Signed::verify`]). Returns its outcome first, then the outcome of every
    /// held descendant that its arrival decided.
    pub fn insert_experiment(
        &mut self,
        record: ExperimentRecord,
    ) -> Result<Vec<(ExperimentRecord, ExperimentOutcome)>, StoreError> {
        let mut decided = Vec::new();
        let mut queue = VecDeque::from([record]);
        while let Some(record) = queue.pop_front() {
            let outcome = self.place(&record)?;
            if matches!(outcome, ExperimentOutcome::Accepted { .. }) {
                queue.extend(self.take_held_children(&record.id)?);
                // events about it may have come first (gossip does not wait for sync)
                self.apply_verdict(&record.id)?;
            }
            decided.push((record, outcome));
        }
        Ok(decided)
    }

    fn place(&mut self, record: &ExperimentRecord) -> Result<ExperimentOutcome, StoreError> {
        if self.t.index.get(record.id.as_str())?.is_some() {
            return Ok(ExperimentOutcome::Duplicate);
        }
        let parent_entry = match &record.parent {
            None => None,
            Some(parent) => {
                let stored = self.t.index.get(parent.as_str())?;
                let entry = stored.map(|b| IndexEntry::decode(b.value())).transpose()?;
                match entry {
                    Some(entry) => Some(entry),
                    None => return self.hold(record, parent),
                }
            }
        };
        let parent_state = match &parent_entry {
            None => ParentState::None,
            Some(entry) => ParentState::Known {
                task_id: &entry.task_id,
            },
        };
        let decision = match &parent_entry {
            // only a root's decision needs what is known of its task's root
            None => {
                let rule = self.task_root(record)?;
                decide(record, parent_state, |_| rule)
            }
            Some(_) => decide(record, parent_state, |_| TaskRoot::default()),
        };
        let (task_id, is_root) = match decision {
            Decision::Accept { task_id, is_root } => (task_id, is_root),
            Decision::Hold { parent } => return self.hold(record, &parent),
            Decision::Reject(reason) => return Ok(ExperimentOutcome::Rejected(reason)),
        };

        let metric = record.val_bpb.value();
        let entry = IndexEntry {
            task_id: task_id.clone(),
            parent: record.parent.clone(),
            status: record.status,
            metric,
            timestamp: record.timestamp,
            depth: record.depth,
            displaced_min: false,
            displaced_max: false,
            verified: false,
            rejected: false,
        };
        let t = &mut self.t;
        t.index
            .insert(record.id.as_str(), entry.encode().as_slice())?;
        t.experiments.insert(
            record.id.as_str(),
            stored_bytes(record, &task_id).as_slice(),
        )?;
        let time_key = key(&[
            task_id.as_bytes(),
            &sortable_i64(record.timestamp),
            record.id.as_bytes(),
        ]);
        t.task_records.insert(time_key.as_slice(), ())?;
        index_node(t, &task_id, &record.node_id, record.timestamp, &record.id)?;
        self.count_for_node(record, &task_id)?;
        let t = &mut self.t;
        if let Some(parent) = &record.parent {
            let child_key = key(&[parent.as_bytes(), record.id.as_bytes()]);
            t.children.insert(child_key.as_slice(), ())?;
        }

        if record.status == Status::Keep {
            for goal in [Goal::Minimize, Goal::Maximize] {
                let k = frontier_key(goal, &task_id, metric, &record.id);
                t.frontier.insert(k.as_slice(), ())?;
            }
            self.changes.frontier_tasks.insert(task_id.clone());
            let t = &mut self.t;
            if let (Some(parent_id), Some(mut parent)) = (&record.parent, parent_entry) {
                if parent.status == Status::Keep {
                    let mut changed = false;
                    for goal in [Goal::Minimize, Goal::Maximize] {
                        let displaced = match goal {
                            Goal::Minimize => &mut parent.displaced_min,
                            Goal::Maximize => &mut parent.displaced_max,
                        };
                        if !*displaced && goal.better(metric, parent.metric) {
                            *displaced = true;
                            changed = true;
                            let k = frontier_key(goal, &parent.task_id, parent.metric, parent_id);
                            t.frontier.remove(k.as_slice())?;
                        }
                    }
                    if changed {
                        t.index
                            .insert(parent_id.as_str(), parent.encode().as_slice())?;
                    }
                }
            }
        }

        let stats = self.stats_for(&task_id)?;
        if stats.count == 0 || record.timestamp < stats.first_timestamp {
            stats.first_timestamp = record.timestamp;
        }
        stats.count += 1;
        match record.status {
            Status::Keep => stats.keep += 1,
            Status::Discard => stats.discard += 1,
            Status::Crash => stats.crash += 1,
        }
        stats.latest_timestamp = stats.latest_timestamp.max(record.timestamp);
        if is_root {
            stats.root = Some(record.id.clone());
            self.ensure_legacy_task(&task_id, record)?;
        }
        self.append_log(super::LogKind::Experiment, &record.id)?;
        Ok(ExperimentOutcome::Accepted { task_id })
    }

    fn hold(
        &mut self,
        record: &ExperimentRecord,
        parent: &str,
    ) -> Result<ExperimentOutcome, StoreError> {
        let held_key = key(&[parent.as_bytes(), record.id.as_bytes()]);
        if self.t.held.get(held_key.as_slice())?.is_none() {
            self.expire_held(EXPIRE_PER_HOLD)?;
            let count = match self.held_count {
                Some(n) => n,
                None => self.t.held.len()?,
            };
            if count >= MAX_HELD {
                return Err(StoreError::HeldPoolFull(count));
            }
            let signer = record.node_id.as_str();
            let of_signer = self.t.held_signers.get(signer)?.map_or(0, |v| v.value());
            if of_signer >= MAX_HELD_PER_SIGNER {
                return Err(StoreError::HeldQuotaFull {
                    signer: signer.to_string(),
                    held: of_signer,
                });
            }
            let bytes = record.to_wire_json().into_bytes();
            let t = &mut self.t;
            t.held.insert(held_key.as_slice(), bytes.as_slice())?;
            let since = key(&[&sortable_i64(self.now), &held_key]);
            t.held_since.insert(since.as_slice(), ())?;
            t.held_signers.insert(signer, of_signer + 1)?;
            self.held_count = Some(count + 1);
        }
        Ok(ExperimentOutcome::Held {
            parent: parent.to_string(),
        })
    }

    /// Drops up to `limit` held records that waited longer than [`HELD_FOR_SECS`]; returns how
    /// many were dropped.
    pub fn expire_held(&mut self, limit: usize) -> Result<u64, StoreError> {
        let cutoff = sortable_i64(self.now.saturating_sub(HELD_FOR_SECS));
        let mut due = Vec::new();
        for item in self.t.held_since.range(..cutoff.as_slice())?.take(limit) {
            due.push(item?.0.value().to_vec());
        }
        let mut dropped = 0;
        for since in due {
            self.t.held_since.remove(since.as_slice())?;
            let held_key = &since[8..];
            // gone already when its parent came and released it
            let Some(bytes) = self.t.held.remove(held_key)? else {
                continue;
            };
            let record = parse_record(bytes.value())?;
            drop(bytes);
            self.uncount_held_signer(&record.node_id)?;
            if let Some(n) = self.held_count.as_mut() {
                *n -= 1;
            }
            dropped += 1;
        }
        Ok(dropped)
    }

    fn uncount_held_signer(&mut self, signer: &str) -> Result<(), StoreError> {
        let left = self
            .t
            .held_signers
            .get(signer)?
            .map_or(0, |v| v.value())
            .saturating_sub(1);
        match left {
            0 => self.t.held_signers.remove(signer)?,
            n => self.t.held_signers.insert(signer, n)?,
        };
        Ok(())
    }

    /// Offers again the roots held for `task_id` while it had another root and no manifest
    /// (see [`crate::lineage::TaskRoot`]); call once its manifest is stored. Returns the outcome
    /// of each, and of every held descendant they decided.
    pub fn release_held_roots(
        &mut self,
        task_id: &str,
    ) -> Result<Vec<(ExperimentRecord, ExperimentOutcome)>, StoreError> {
        let mut decided = Vec::new();
        for record in self.take_held_children(task_id)? {
            decided.extend(self.insert_experiment(record)?);
        }
        Ok(decided)
    }

    fn take_held_children(&mut self, parent: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        let held = &mut self.t.held;
        let prefix = parent.as_bytes();
        let end = prefix_end(prefix);
        let mut released = Vec::new();
        let mut keys = Vec::new();
        for item in held.range(prefix..end.as_slice())? {
            let (k, v) = item?;
            keys.push(k.value().to_vec());
            released.push(parse_record(v.value())?);
        }
        for k in &keys {
            held.remove(k.as_slice())?;
        }
        for record in &released {
            self.uncount_held_signer(&record.node_id)?;
        }
        if let Some(n) = self.held_count.as_mut() {
            *n -= keys.len() as u64;
        }
        Ok(released)
    }

    /// Indexes held records stored before the pool had quotas and expiry: each counts for its
    /// signer and waits from now. Runs once, when the index is empty and the pool is not.
    pub fn backfill_held_index(&mut self) -> Result<u64, StoreError> {
        if !self.t.held_since.is_empty()? || self.t.held.is_empty()? {
            return Ok(0);
        }
        let mut rows = Vec::new();
        for item in self.t.held.iter()? {
            let (k, v) = item?;
            rows.push((k.value().to_vec(), parse_record(v.value())?.node_id));
        }
        for (held_key, signer) in &rows {
            let since = key(&[&sortable_i64(self.now), held_key]);
            self.t.held_since.insert(since.as_slice(), ())?;
            let n = self
                .t
                .held_signers
                .get(signer.as_str())?
                .map_or(0, |v| v.value());
            self.t.held_signers.insert(signer.as_str(), n + 1)?;
        }
        Ok(rows.len() as u64)
    }

    /// What is known of the root of the task parentless `record` names: its root, its
    /// manifest's creator, and its pinned root (the built-in default task's).
    fn task_root(&mut self, record: &ExperimentRecord) -> Result<TaskRoot, StoreError> {
        if !record.signs_task_id() || record.task_id.is_empty() {
            // a v1 root founds its own task: nobody else can have rooted it
            let existing = self.stats_for(&record.id)?.root.clone();
            return Ok(TaskRoot {
                existing,
                ..TaskRoot::default()
            });
        }
        let task_id = record.task_id.as_str();
        Ok(TaskRoot {
            existing: self.stats_for(task_id)?.root.clone(),
            creator: self.manifest_creator(task_id)?,
            pinned: crate::default_task::pinned_root(task_id).map(str::to_string),
        })
    }

    /// The cached counters of `task_id`, loaded on first use in this transaction.
    pub(super) fn stats_for(&mut self, task_id: &str) -> Result<&mut TaskStats, StoreError> {
        if !self.stats.contains_key(task_id) {
            let table = &self.t.task_stats;
            let stats = match table.get(task_id)? {
                Some(bytes) => TaskStats::decode(bytes.value())?,
                None => TaskStats::default(),
            };
            self.stats.insert(task_id.to_string(), stats);
        }
        Ok(self.stats.get_mut(task_id).expect("just inserted"))
    }

    pub(super) fn flush_stats(&mut self) -> Result<(), StoreError> {
        let table = &mut self.t.task_stats;
        for (task_id, stats) in self.stats.drain() {
            table.insert(task_id.as_str(), stats.encode().as_slice())?;
        }
        Ok(())
    }

    /// Builds the per-node indexes of a store written before they existed (once: they are empty
    /// only then, since every stored record adds to them).
    pub fn backfill_node_indexes(&mut self) -> Result<u64, StoreError> {
        if !self.t.task_nodes.is_empty()? || self.t.index.is_empty()? {
            return Ok(0);
        }
        let mut rows = Vec::new();
        for item in self.t.index.iter()? {
            let (id, entry) = item?;
            let entry = IndexEntry::decode(entry.value())?;
            let id = id.value().to_string();
            let node = match self.t.experiments.get(id.as_str())? {
                Some(wire) => spore_spec::json::parse(wire.value()).ok().and_then(|v| {
                    v.get("node_id")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                }),
                None => None,
            };
            if let Some(node) = node {
                rows.push((entry.task_id, node, entry.timestamp, id));
            }
        }
        for (task, node, timestamp, id) in &rows {
            index_node(&mut self.t, task, node, *timestamp, id)?;
        }
        Ok(rows.len() as u64)
    }

    /// Marks a stored record verified (local state, not part of the record).
    pub fn mark_verified(&mut self, id: &str) -> Result<bool, StoreError> {
        let index = &mut self.t.index;
        let Some(bytes) = index.get(id)? else {
            return Ok(false);
        };
        let mut entry = IndexEntry::decode(bytes.value())?;
        drop(bytes);
        if entry.verified {
            return Ok(false);
        }
        entry.verified = true;
        index.insert(id, entry.encode().as_slice())?;
        self.t.verified.insert(id, ())?;
        let node = match self.t.experiments.get(id)? {
            Some(wire) => parse_record(wire.value())?.node_id,
            None => return Ok(true),
        };
        let credit = super::nodes::verification_credit(&entry, self.task_goal(&entry.task_id)?);
        self.count_verified(&entry.task_id, &node, credit)?;
        Ok(true)
    }
}

impl Reader {
    /// The stored record `id`.
    pub fn experiment(&self, id: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        let table = &self.t.experiments;
        let bytes = table.get(id)?;
        bytes.map(|b| parse_record(b.value())).transpose()
    }

    /// The stored wire JSON of record `id`, exactly as it is re-served.
    pub fn experiment_wire(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = &self.t.experiments;
        Ok(table.get(id)?.map(|b| b.value().to_vec()))
    }

    /// Who published record `id` and on what hardware, `(node_id, gpu_model)`, read without
    /// parsing the whole record (the progress route asks this of every record of a task).
    pub fn publisher(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Publisher {
            node_id: String,
            gpu_model: String,
        }
        let table = &self.t.experiments;
        let Some(bytes) = table.get(id)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Publisher>(bytes.value()) {
            Ok(found) => Ok(Some((found.node_id, found.gpu_model))),
            // what serde_json refuses and the store's own reader takes (a `NaN` token, a
            // repeated key): read the whole record
            Err(_) => {
                let record = parse_record(bytes.value())?;
                Ok(Some((record.node_id, record.gpu_model)))
            }
        }
    }

    pub fn index_entry(&self, id: &str) -> Result<Option<IndexEntry>, StoreError> {
        let table = &self.t.index;
        let bytes = table.get(id)?;
        bytes.map(|b| IndexEntry::decode(b.value())).transpose()
    }

    /// How many objects of each kind the store holds (`held`: records waiting for a parent or
    /// their task's root), as (kind, count).
    pub fn object_counts(&self) -> Result<[(&'static str, u64); 5], StoreError> {
        Ok([
            ("experiment", self.experiment_count()?),
            ("held", self.held_count()?),
            ("task", self.task_count()?),
            ("control_event", self.control_event_count()?),
            ("artifact", self.artifact_count()?),
        ])
    }

    pub fn experiment_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.experiments.len()?)
    }

    pub fn held_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.held.len()?)
    }

    /// Ids of the children of `id`.
    pub fn children(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let table = &self.t.children;
        let end = prefix_end(id.as_bytes());
        let mut out = Vec::new();
        for item in table.range(id.as_bytes()..end.as_slice())? {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k.value()[id.len()..]).into_owned());
        }
        Ok(out)
    }

    pub fn task_stats(&self, task_id: &str) -> Result<Option<TaskStats>, StoreError> {
        let table = &self.t.task_stats;
        let bytes = table.get(task_id)?;
        bytes.map(|b| TaskStats::decode(b.value())).transpose()
    }

    /// Counters of every task that holds records.
    pub fn all_task_stats(&self) -> Result<Vec<(String, TaskStats)>, StoreError> {
        let table = &self.t.task_stats;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), TaskStats::decode(v.value())?));
        }
        Ok(out)
    }

    /// Frontier of `task_id` for `goal`, best first (ties by id): keep records that no keep
    /// child in the task beats.
    pub fn frontier_ids(&self, task_id: &str, goal: Goal) -> Result<Vec<String>, StoreError> {
        self.frontier_ids_limited(task_id, goal, usize::MAX)
    }

    /// The first `limit` entries of [`Self::frontier_ids`].
    pub fn frontier_ids_limited(
        &self,
        task_id: &str,
        goal: Goal,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = frontier_prefix(goal, task_id);
        sorted_ids(&self.t.frontier, &prefix, limit, Order::Ascending)
    }

    /// Number of frontier entries of `task_id` for `goal`.
    pub fn frontier_size(&self, task_id: &str, goal: Goal) -> Result<u64, StoreError> {
        let table = &self.t.frontier;
        let prefix = frontier_prefix(goal, task_id);
        let end = prefix_end(&prefix);
        let mut n = 0;
        for item in table.range(prefix.as_slice()..end.as_slice())? {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Ids of the newest `limit` records of `task_id`, newest first (ties by id, descending).
    pub fn recent_ids(&self, task_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        sorted_ids(
            &self.t.task_records,
            task_id.as_bytes(),
            limit,
            Order::Descending,
        )
    }

    /// Records marked verified, all tasks.
    pub fn verified_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.verified.len()?)
    }

    /// Every node that published a record, with how many (all tasks).
    pub fn all_participants(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for item in self.t.task_nodes.iter()? {
            let (k, v) = item?;
            let k = k.value();
            let node = String::from_utf8_lossy(&k[k.len().saturating_sub(64)..]).into_owned();
            *out.entry(node).or_insert(0) += v.value();
        }
        Ok(out)
    }

    /// The nodes that published records in `task_id`, with how many each (node id order).
    pub fn participants(&self, task_id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let end = prefix_end(task_id.as_bytes());
        let mut out = Vec::new();
        for item in self
            .t
            .task_nodes
            .range(task_id.as_bytes()..end.as_slice())?
        {
            let (k, v) = item?;
            out.push((
                String::from_utf8_lossy(&k.value()[task_id.len()..]).into_owned(),
                v.value(),
            ));
        }
        Ok(out)
    }

    /// Up to `limit` record ids of `node_id`, oldest first.
    pub fn node_record_ids(&self, node_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        sorted_ids(
            &self.t.node_records,
            node_id.as_bytes(),
            limit,
            Order::Ascending,
        )
    }

    /// Up to `limit` record ids starting with `prefix` (id order).
    pub fn ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.index.range(prefix..)?.take(limit) {
            let (k, _) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(k.value().to_string());
        }
        Ok(out)
    }

    /// Up to `limit` record ids of `node_id`, newest first.
    pub fn node_recent_ids(&self, node_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        sorted_ids(
            &self.t.node_records,
            node_id.as_bytes(),
            limit,
            Order::Descending,
        )
    }

    /// Every record id of `task_id`, oldest first.
    pub fn task_record_ids(&self, task_id: &str) -> Result<Vec<String>, StoreError> {
        sorted_ids(
            &self.t.task_records,
            task_id.as_bytes(),
            usize::MAX,
            Order::Ascending,
        )
    }
}
