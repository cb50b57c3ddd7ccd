//! Removing a task's records: what the store does when a task turns out to have the wrong root
//! (one its manifest's creator did not sign, or not the root the binary pins), because the root
//! arrived before the manifest. Every node then holds the same tree, whichever came first.
//!
//! Everything derived from the removed records goes with them: the indexes, the frontier, the
//! task's counters, the per-node counters (rebuilt for each node that published there), the
//! records' verdicts, their verified marks and this node's run outputs. Their log entries stay
//! and are skipped when served (the log is append-only); control events about them stay too:
//! they are facts about events, and count for nothing while their record is absent.

use redb::ReadableTable;
use spore_spec::{ExperimentRecord, Goal};

use super::codec::IndexEntry;
use super::codec::{frontier_key, goal_byte, key, parse_record, prefix_end, sortable_i64};
use super::{StoreError, Writer};

impl Writer<'_> {
    /// The signer of stored record `id`, if it is stored.
    fn signer_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let Some(wire) = self.t.experiments.get(id)? else {
            return Ok(None);
        };
        Ok(Some(parse_record(wire.value())?.node_id))
    }

    /// Removes every record of `task_id` when its root breaks the task's root rule (see
    /// [`crate::lineage::TaskRoot`]): signed by someone other than `creator`, or not `pinned`.
    /// Returns how many records went.
    pub(super) fn enforce_root_rule(
        &mut self,
        task_id: &str,
        creator: Option<&str>,
        pinned: Option<&str>,
    ) -> Result<u64, StoreError> {
        let Some(root) = self.stats_for(task_id)?.root.clone() else {
            return Ok(0);
        };
        let wrong_signer = match creator {
            Some(creator) => self.signer_of(&root)?.is_some_and(|s| s != creator),
            None => false,
        };
        if !(wrong_signer || pinned.is_some_and(|p| p != root)) {
            return Ok(0);
        }
        let removed = self.remove_task_records(task_id)?;
        tracing::warn!(
            task_id,
            root,
            removed,
            "removed the task's records: its root is not the one its manifest allows"
        );
        Ok(removed)
    }

    /// Removes every record of `task_id` and what is derived from them. Returns how many.
    pub(super) fn remove_task_records(&mut self, task_id: &str) -> Result<u64, StoreError> {
        let prefix = key(&[task_id.as_bytes()]);
        let end = prefix_end(&prefix);
        let mut rows: Vec<(ExperimentRecord, IndexEntry)> = Vec::new();
        for item in self
            .t
            .task_records
            .range(prefix.as_slice()..end.as_slice())?
        {
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k.value()[prefix.len() + 8..]).into_owned();
            let (Some(wire), Some(entry)) = (
                self.t.experiments.get(id.as_str())?,
                self.t.index.get(id.as_str())?,
            ) else {
                continue;
            };
            rows.push((
                parse_record(wire.value())?,
                IndexEntry::decode(entry.value())?,
            ));
        }
        let goal = self.task_goal(task_id)?;
        let mut publishers = std::collections::BTreeMap::<String, f64>::new();
        for (record, entry) in &rows {
            let id = record.id.as_str();
            let t = &mut self.t;
            t.experiments.remove(id)?;
            t.index.remove(id)?;
            let time_key = key(&[
                task_id.as_bytes(),
                &sortable_i64(record.timestamp),
                id.as_bytes(),
            ]);
            t.task_records.remove(time_key.as_slice())?;
            if let Some(parent) = &record.parent {
                t.children
                    .remove(key(&[parent.as_bytes(), id.as_bytes()]).as_slice())?;
            }
            for goal in [Goal::Minimize, Goal::Maximize] {
                t.frontier
                    .remove(frontier_key(goal, task_id, entry.metric, id).as_slice())?;
            }
            let by_node = key(&[
                record.node_id.as_bytes(),
                &sortable_i64(record.timestamp),
                id.as_bytes(),
            ]);
            t.node_records.remove(by_node.as_slice())?;
            t.verified.remove(id)?;
            // the dispute credits its verdict gave go back
            let verdict = t.verdicts.remove(id)?.map(|b| b.value().to_vec());
            if let Some(bytes) = verdict {
                let summary = super::verdicts::VerdictSummary::decode(&bytes)?;
                for (node, won, score) in &summary.credits {
                    self.credit_dispute(node, *won, *score, -1.0)?;
                }
            }
            let t = &mut self.t;
            t.open_challenges.remove(id)?;
            for kind in ["run", "rerun", "run-curve", "rerun-curve"] {
                t.run_outputs.remove(format!("{id}:{kind}").as_str())?;
            }
            // the credit its confirmation gave its publisher goes back
            let credit = if entry.verified {
                super::nodes::verification_credit(entry, goal)
            } else {
                0.0
            };
            *publishers.entry(record.node_id.clone()).or_default() += credit;
        }
        // anything of the task's frontier left (a record whose metric moved) goes too
        for goal in [Goal::Minimize, Goal::Maximize] {
            let start = key(&[&[goal_byte(goal)], task_id.as_bytes()]);
            let stop = prefix_end(&start);
            let left: Vec<Vec<u8>> = self
                .t
                .frontier
                .range(start.as_slice()..stop.as_slice())?
                .map(|item| item.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()?;
            for k in left {
                self.t.frontier.remove(k.as_slice())?;
            }
        }
        for node in publishers.keys() {
            self.t
                .task_nodes
                .remove(key(&[task_id.as_bytes(), node.as_bytes()]).as_slice())?;
        }
        self.stats.remove(task_id);
        self.t.task_stats.remove(task_id)?;
        for (node, credit) in &publishers {
            self.recount_node(
                task_id,
                node,
                *credit,
                rows.iter()
                    .filter(|(r, e)| &r.node_id == node && e.verified)
                    .count() as u64,
            )?;
        }
        self.changes.frontier_tasks.insert(task_id.to_string());
        Ok(rows.len() as u64)
    }
}
