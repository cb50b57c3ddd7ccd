//! Tasks: signed manifests, and local `legacy` rows for roots that arrived without one.

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::json::{self, object, Value};
use spore_spec::{ExperimentRecord, Goal, TaskManifest};

use super::{Reader, StoreError, Writer};

/// Where a task row came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSource {
    /// A signed manifest (gossiped and synced).
    Manifest,
    /// Derived locally from a root record; never signed, never sent (reference §c.1).
    Legacy,
}

impl TaskSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSource::Manifest => "manifest",
            TaskSource::Legacy => "legacy",
        }
    }
}

/// One task as the store knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    pub source: TaskSource,
    /// For a manifest row, the manifest itself; for a legacy row, a manifest-shaped description
    /// with an empty signature.
    pub manifest: TaskManifest,
}

impl TaskRow {
    pub fn task_id(&self) -> &str {
        &self.manifest.task_id
    }

    pub fn goal(&self) -> Goal {
        self.manifest.goal()
    }

    fn legacy(task_id: &str, root: &ExperimentRecord) -> TaskRow {
        let description = if root.description.is_empty() {
            "Legacy backfilled task".to_string()
        } else {
            root.description.clone()
        };
        TaskRow {
            source: TaskSource::Legacy,
            manifest: TaskManifest {
                name: format!("legacy-{}", &task_id[..8.min(task_id.len())]),
                description,
                task_type: "legacy".into(),
                artifact_type: "python_train_script".into(),
                metric: "val_bpb".into(),
                goal: "minimize".into(),
                created_by: root.node_id.clone(),
                timestamp: root.timestamp,
                task_id: task_id.to_string(),
                version: 1,
                ..TaskManifest::default()
            },
        }
    }

    fn encode(&self) -> Vec<u8> {
        let row = object([
            ("source", Value::Str(self.source.as_str().into())),
            ("manifest", self.manifest.to_value()),
        ]);
        json::to_wire(&row).into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<TaskRow, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            table: "tasks_v1",
            what,
        };
        let value = json::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
        let source = match value.get("source").and_then(Value::as_str) {
            Some("manifest") => TaskSource::Manifest,
            Some("legacy") => TaskSource::Legacy,
            other => return Err(corrupt(format!("unknown source {other:?}"))),
        };
        let manifest = value
            .get("manifest")
            .ok_or_else(|| corrupt("no manifest".into()))
            .and_then(|m| TaskManifest::from_value(m).map_err(|e| corrupt(e.to_string())))?;
        Ok(TaskRow { source, manifest })
    }
}

/// What happened to a manifest offered to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Stored (new, or replacing a legacy row of the same id).
    Accepted,
    Duplicate,
}

impl Writer<'_> {
    /// Stores a verified manifest; it replaces a legacy row with the same task id.
    pub fn insert_manifest(&mut self, manifest: &TaskManifest) -> Result<TaskOutcome, StoreError> {
        let table = &mut self.t.tasks;
        if let Some(bytes) = table.get(manifest.task_id.as_str())? {
            if TaskRow::decode(bytes.value())?.source == TaskSource::Manifest {
                return Ok(TaskOutcome::Duplicate);
            }
        }
        let row = TaskRow {
            source: TaskSource::Manifest,
            manifest: manifest.clone(),
        };
        table.insert(manifest.task_id.as_str(), row.encode().as_slice())?;
        self.append_log(super::LogKind::Task, &manifest.task_id)?;
        // a root that came before the manifest, from someone other than its creator, goes
        let task_id = manifest.task_id.as_str();
        let pinned = crate::default_task::pinned_root(task_id);
        self.enforce_root_rule(task_id, Some(&manifest.created_by), pinned)?;
        Ok(TaskOutcome::Accepted)
    }

    /// The signer of `task_id`'s manifest, if the manifest is stored.
    pub(super) fn manifest_creator(&self, task_id: &str) -> Result<Option<String>, StoreError> {
        let Some(bytes) = self.t.tasks.get(task_id)? else {
            return Ok(None);
        };
        let row = TaskRow::decode(bytes.value())?;
        Ok((row.source == TaskSource::Manifest).then_some(row.manifest.created_by))
    }

    /// The goal of `task_id` as this transaction sees it (minimise when unknown or legacy).
    pub(super) fn task_goal(&self, task_id: &str) -> Result<Goal, StoreError> {
        let bytes = self.t.tasks.get(task_id)?;
        let row = bytes.map(|b| TaskRow::decode(b.value())).transpose()?;
        Ok(row.map_or(Goal::Minimize, |row| row.goal()))
    }

    pub(super) fn ensure_legacy_task(
        &mut self,
        task_id: &str,
        root: &ExperimentRecord,
    ) -> Result<(), StoreError> {
        let table = &mut self.t.tasks;
        if table.get(task_id)?.is_none() {
            table.insert(task_id, TaskRow::legacy(task_id, root).encode().as_slice())?;
        }
        Ok(())
    }
}

impl Reader {
    pub fn task(&self, task_id: &str) -> Result<Option<TaskRow>, StoreError> {
        let table = &self.t.tasks;
        let bytes = table.get(task_id)?;
        bytes.map(|b| TaskRow::decode(b.value())).transpose()
    }

    pub fn tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        let table = &self.t.tasks;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            out.push(TaskRow::decode(v.value())?);
        }
        Ok(out)
    }

    /// The ids of the signed manifests with `timestamp > since`, in (timestamp, task id) order.
    pub fn manifest_ids_since(&self, since: i64) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for item in self.t.tasks.iter()? {
            let (k, v) = item?;
            let row = TaskRow::decode(v.value())?;
            if row.source == TaskSource::Manifest && row.manifest.timestamp > since {
                found.push((row.manifest.timestamp, k.value().to_string()));
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    pub fn task_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.tasks.len()?)
    }

    /// The goal of `task_id` (minimise when the task is unknown or legacy).
    pub fn task_goal(&self, task_id: &str) -> Result<Goal, StoreError> {
        Ok(self.task(task_id)?.map_or(Goal::Minimize, |row| row.goal()))
    }

    /// Resolves a full task id or a unique prefix of one (at least 4 characters).
    pub fn resolve_task(&self, id_or_prefix: &str) -> Result<Option<String>, StoreError> {
        if self.task(id_or_prefix)?.is_some() || self.task_stats(id_or_prefix)?.is_some() {
            return Ok(Some(id_or_prefix.to_string()));
        }
        if id_or_prefix.len() < 4 {
            return Ok(None);
        }
        let mut found: Vec<String> = self
            .tasks()?
            .into_iter()
            .map(|row| row.manifest.task_id)
            .chain(self.all_task_stats()?.into_iter().map(|(id, _)| id))
            .filter(|id| id.starts_with(id_or_prefix))
            .collect();
        found.sort();
        found.dedup();
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// The active task: `pinned` if given, else the most active task (reference §e.9): the
    /// largest (records among the task's 25 newest, keeps among them, latest timestamp, id).
    pub fn active_task(&self, pinned: Option<&str>) -> Result<Option<String>, StoreError> {
        if let Some(pinned) = pinned.filter(|p| !p.is_empty()) {
            return Ok(Some(pinned.to_string()));
        }
        let mut best: Option<(u64, u64, i64, String)> = None;
        for (task_id, stats) in self.all_task_stats()? {
            let recent = self.recent_ids(&task_id, 25)?;
            let mut keeps = 0;
            for id in &recent {
                if let Some(entry) = self.index_entry(id)? {
                    keeps += (entry.status == spore_spec::Status::Keep) as u64;
                }
            }
            let candidate = (recent.len() as u64, keeps, stats.latest_timestamp, task_id);
            if best.as_ref().is_none_or(|b| candidate > *b) {
                best = Some(candidate);
            }
        }
        if let Some((_, _, _, task_id)) = best {
            return Ok(Some(task_id));
        }
        // No records yet: the newest manifest, so a freshly created task is active.
        let newest = self
            .tasks()?
            .into_iter()
            .filter(|row| row.source == TaskSource::Manifest)
            .max_by_key(|row| (row.manifest.timestamp, row.manifest.task_id.clone()));
        Ok(newest.map(|row| row.manifest.task_id))
    }
}
