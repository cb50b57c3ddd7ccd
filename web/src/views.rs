//! The explorer's JSON shapes, built from one read snapshot of the store (no server needed, so
//! tests call these directly). Field names follow the reference explorer (reference §i) so its
//! tooling works against us. Every lookup goes through an index the store maintains: no view
//! reads all records of a task.

use std::collections::HashMap;

use spore_actors::store::{IndexEntry, NodeStats, TaskRow};
use spore_actors::{Reader, StoreError};
use spore_spec::json::{object, Value};
use spore_spec::{ExperimentRecord, Goal, NodeProfile, Status};

/// One snapshot plus the per-request caches (profiles, goals) the shapes need.
pub struct View<'r> {
    pub read: &'r Reader,
    profiles: HashMap<String, Option<NodeProfile>>,
    goals: HashMap<String, Goal>,
    task_names: HashMap<String, String>,
    /// Per task: verification class → publishers of that class.
    classes: HashMap<String, HashMap<String, Vec<String>>>,
}

/// A record with its index entry (task, flags), as the views use it.
pub struct Found {
    pub record: ExperimentRecord,
    pub entry: IndexEntry,
}

impl<'r> View<'r> {
    pub fn new(read: &'r Reader) -> Self {
        View {
            read,
            profiles: HashMap::new(),
            goals: HashMap::new(),
            task_names: HashMap::new(),
            classes: HashMap::new(),
        }
    }

    pub fn profile(&mut self, node_id: &str) -> Result<Option<NodeProfile>, StoreError> {
        if let Some(p) = self.profiles.get(node_id) {
            return Ok(p.clone());
        }
        let p = self.read.profile(node_id)?;
        self.profiles.insert(node_id.to_string(), p.clone());
        Ok(p)
    }

    pub fn goal(&mut self, task_id: &str) -> Result<Goal, StoreError> {
        if let Some(g) = self.goals.get(task_id) {
            return Ok(*g);
        }
        let g = self.read.task_goal(task_id)?;
        self.goals.insert(task_id.to_string(), g);
        Ok(g)
    }

    /// The task's name (its short id when no manifest names it).
    pub fn task_name(&mut self, task_id: &str) -> Result<String, StoreError> {
        if let Some(name) = self.task_names.get(task_id) {
            return Ok(name.clone());
        }
        let name = match self.read.task(task_id)? {
            Some(row) => row.manifest.name,
            None => short(task_id).to_string(),
        };
        self.task_names.insert(task_id.to_string(), name.clone());
        Ok(name)
    }

    pub fn find(&self, id: &str) -> Result<Option<Found>, StoreError> {
        let (Some(record), Some(entry)) = (self.read.experiment(id)?, self.read.index_entry(id)?)
        else {
            return Ok(None);
        };
        Ok(Some(Found { record, entry }))
    }

    /// `record_to_dict`: the 24 record fields, the publisher's name and avatar when it has a
    /// profile, `verified` and `is_frontier` (for the record's own task).
    pub fn record(&mut self, found: &Found) -> Result<Value, StoreError> {
        let goal = self.goal(&found.entry.task_id)?;
        let Value::Object(mut members) = found.record.to_value() else {
            unreachable!("a record is an object");
        };
        // a v1 record's task id is derived; show the one it is filed under
        if let Some(slot) = members.iter_mut().find(|(k, _)| k == "task_id") {
            slot.1 = Value::Str(found.entry.task_id.clone());
        }
        if let Some(p) = self.profile(&found.record.node_id)? {
            members.push(("node_display_name".into(), Value::Str(p.display_name)));
            members.push(("node_avatar_url".into(), Value::Str(p.avatar_url)));
        }
        members.push(("verified".into(), Value::Bool(found.entry.verified)));
        members.push((
            "is_frontier".into(),
            Value::Bool(found.entry.is_frontier(goal)),
        ));
        members.extend(self.verification(found)?);
        Ok(Value::Object(members))
    }

    /// What other nodes' reruns say of the record (issue #7): `verified_by` (nodes of its
    /// class that agreed), `challenged` (a challenge is open), `dispute` (`upheld`, `rejected`
    /// or null) and a `verification` line for people.
    pub fn verification(&mut self, found: &Found) -> Result<Vec<(String, Value)>, StoreError> {
        let summary = self
            .read
            .verdict_summary(&found.record.id)?
            .unwrap_or_default();
        let outcome = summary.outcome.map(|o| o.as_str());
        let line = match (outcome, summary.challenged, summary.verified_by) {
            (Some(o), _, _) => format!("dispute {o}"),
            (None, true, _) => "challenged".to_string(),
            (None, false, n) if n > 0 => format!("verified by {n}"),
            _ if self.has_class_peer(&found.entry.task_id, &found.record)? => {
                "unverified".to_string()
            }
            _ => "unverified (no peer of this class)".to_string(),
        };
        Ok(vec![
            ("verified_by".into(), Value::Int(summary.verified_by as i64)),
            ("challenged".into(), Value::Bool(summary.challenged)),
            (
                "dispute".into(),
                outcome.map_or(Value::Null, |o| Value::Str(o.into())),
            ),
            ("verification".into(), Value::Str(line)),
        ])
    }

    /// Whether another node of the record's hardware class publishes in its task.
    fn has_class_peer(
        &mut self,
        task_id: &str,
        record: &ExperimentRecord,
    ) -> Result<bool, StoreError> {
        if !self.classes.contains_key(task_id) {
            let mut by_class: HashMap<String, Vec<String>> = HashMap::new();
            for (node, stats) in self.read.nodes_stats(task_id)? {
                for gpu in &stats.gpu_models {
                    let class = spore_spec::hardware::verification_class(gpu);
                    by_class.entry(class).or_default().push(node.clone());
                }
            }
            self.classes.insert(task_id.to_string(), by_class);
        }
        let class = spore_spec::hardware::verification_class(&record.gpu_model);
        Ok(self.classes[task_id]
            .get(&class)
            .is_some_and(|nodes| nodes.iter().any(|n| *n != record.node_id)))
    }

    /// Records by id, skipping ids no longer found.
    pub fn records(&mut self, ids: &[String]) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(found) = self.find(id)? {
                out.push(self.record(&found)?);
            }
        }
        Ok(out)
    }

    /// The metric of the task's best frontier record.
    pub fn best(&mut self, task_id: &str) -> Result<Option<f64>, StoreError> {
        let goal = self.goal(task_id)?;
        let ids = self.read.frontier_ids_limited(task_id, goal, 1)?;
        Ok(match ids.first() {
            Some(id) => self.read.index_entry(id)?.map(|e| e.metric),
            None => None,
        })
    }

    /// The task summary of the reference's `/api/tasks`.
    pub fn task_summary(
        &mut self,
        row: &TaskRow,
        active: Option<&str>,
    ) -> Result<Value, StoreError> {
        let task_id = row.task_id().to_string();
        let stats = self.read.task_stats(&task_id)?.unwrap_or_default();
        let goal = self.goal(&task_id)?;
        let participants = self.read.participants(&task_id)?;
        let m = &row.manifest;
        let s = |x: &str| Value::Str(x.to_string());
        Ok(object([
            ("task_id", s(&task_id)),
            ("name", s(&m.name)),
            ("description", s(&m.description)),
            ("task_type", s(&m.task_type)),
            ("artifact_type", s(&m.artifact_type)),
            ("metric", s(&m.metric)),
            ("goal", s(&m.goal)),
            ("source", s(row.source.as_str())),
            ("created_by", s(&m.created_by)),
            ("timestamp", Value::Int(m.timestamp)),
            (
                "root_experiment_id",
                stats.root.clone().map_or(Value::Null, Value::Str),
            ),
            ("experiment_count", Value::Int(stats.count as i64)),
            (
                "frontier_size",
                Value::Int(self.read.frontier_size(&task_id, goal)? as i64),
            ),
            ("best_val_bpb", float(self.best(&task_id)?)),
            ("participant_count", Value::Int(participants.len() as i64)),
            (
                "participants",
                Value::Array(
                    participants
                        .into_iter()
                        .map(|(n, _)| Value::Str(n))
                        .collect(),
                ),
            ),
            (
                "latest_activity",
                if stats.count > 0 {
                    Value::Int(stats.latest_timestamp)
                } else {
                    Value::Null
                },
            ),
            ("is_active", Value::Bool(active == Some(task_id.as_str()))),
        ]))
    }

    /// How many frontier records of `task_id` each node published (bounded by the frontier,
    /// not by the task's records).
    pub fn frontier_nodes(&mut self, task_id: &str) -> Result<HashMap<String, u64>, StoreError> {
        let goal = self.goal(task_id)?;
        let mut out = HashMap::new();
        for id in self.read.frontier_ids_limited(task_id, goal, 10_000)? {
            if let Some(found) = self.find(&id)? {
                *out.entry(found.record.node_id).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// [`View::frontier_nodes`] of `task`, or summed over every task when `None`.
    pub fn frontier_nodes_in(
        &mut self,
        task: Option<&str>,
    ) -> Result<HashMap<String, u64>, StoreError> {
        if let Some(t) = task {
            return self.frontier_nodes(t);
        }
        let mut all = HashMap::new();
        for (t, _) in self.read.all_task_stats()? {
            for (node, n) in self.frontier_nodes(&t)? {
                *all.entry(node).or_insert(0) += n;
            }
        }
        Ok(all)
    }

    /// Tasks `node_id` published records in (one index lookup per task).
    pub fn node_task_count(&mut self, node_id: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for (task, _) in self.read.all_task_stats()? {
            if self.read.node_stats(&task, node_id)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The reference's node summary of `node_id` from its counters in `task` (`scoped`; all
    /// tasks when `None`) and over all tasks (`all`: reputation and activity). `frontier` maps
    /// node → frontier records in scope ([`View::frontier_nodes_in`]).
    pub fn node_summary(
        &mut self,
        node_id: &str,
        task: Option<&str>,
        scoped: &NodeStats,
        all: &NodeStats,
        frontier: &HashMap<String, u64>,
    ) -> Result<Value, StoreError> {
        let profile = self.profile(node_id)?;
        let task_count = match task {
            Some(_) => u64::from(scoped.count > 0),
            None => self.node_task_count(node_id)?,
        };
        let record_of = |view: &mut Self, id: Option<&String>| -> Result<Value, StoreError> {
            match id {
                Some(id) => match view.find(id)? {
                    Some(found) => view.record(&found),
                    None => Ok(Value::Null),
                },
                None => Ok(Value::Null),
            }
        };
        let best = record_of(self, scoped.best.as_ref().map(|b| &b.1))?;
        let latest = record_of(self, scoped.latest.as_ref().map(|l| &l.2))?;
        let text = |f: fn(&NodeProfile) -> &String| {
            Value::Str(profile.as_ref().map(f).cloned().unwrap_or_default())
        };
        let names = |v: &[String]| Value::Array(v.iter().cloned().map(Value::Str).collect());
        let int = |n: u64| Value::Int(n as i64);
        Ok(object([
            ("node_id", Value::Str(node_id.to_string())),
            ("display_name", text(|p| &p.display_name)),
            ("avatar_url", text(|p| &p.avatar_url)),
            ("bio", text(|p| &p.bio)),
            ("website", text(|p| &p.website)),
            ("donation_address", text(|p| &p.donation_address)),
            ("has_profile", Value::Bool(profile.is_some())),
            (
                "profile",
                profile.as_ref().map_or(Value::Null, self::profile),
            ),
            (
                "reputation",
                object([
                    ("node_id", Value::Str(node_id.to_string())),
                    ("score", Value::Float(all.score)),
                    ("experiments_published", int(all.count)),
                    ("experiments_verified", int(all.verified)),
                    ("verifications_performed", int(all.verifications_performed)),
                    ("disputes_won", int(all.disputes_won)),
                    ("disputes_lost", int(all.disputes_lost)),
                ]),
            ),
            ("activity", Value::Str(activity(all).to_string())),
            ("experiment_count", int(scoped.count)),
            ("keep_count", int(scoped.keep)),
            ("discard_count", int(scoped.discard)),
            ("crash_count", int(scoped.crash)),
            (
                "frontier_count",
                int(frontier.get(node_id).copied().unwrap_or(0)),
            ),
            ("verified_count", int(scoped.verified)),
            ("task_count", int(task_count)),
            (
                "first_seen",
                if scoped.count > 0 {
                    Value::Int(scoped.first_seen)
                } else {
                    Value::Null
                },
            ),
            (
                "last_seen",
                if scoped.count > 0 {
                    Value::Int(scoped.last_seen)
                } else {
                    Value::Null
                },
            ),
            ("gpu_models", names(&scoped.gpu_models)),
            ("agent_models", names(&scoped.agent_models)),
            ("best_val_bpb", float(scoped.best.as_ref().map(|b| b.0))),
            ("best_experiment", best),
            ("latest_experiment", latest),
        ]))
    }

    /// A feed event (reference §i): what happened, in a sentence, with the record.
    pub fn feed_event(&mut self, found: &Found) -> Result<Value, StoreError> {
        let record = &found.record;
        let task_id = found.entry.task_id.clone();
        let task_name = self.task_name(&task_id)?;
        let actor = match self.profile(&record.node_id)? {
            Some(p) if !p.display_name.is_empty() => p.display_name,
            _ => short(&record.node_id).to_string(),
        };
        let goal = self.goal(&task_id)?;
        let kind = match record.status {
            Status::Crash => "crash",
            Status::Discard => "discard",
            Status::Keep if found.entry.is_frontier(goal) => "frontier_keep",
            Status::Keep => "keep",
        };
        let headline = match kind {
            "crash" => format!("{actor} hit a crash on {task_name}"),
            "discard" => format!("{actor} tested an idea on {task_name}"),
            "frontier_keep" => format!("{actor} moved the frontier on {task_name}"),
            _ => format!("{actor} found a keep on {task_name}"),
        };
        let summary = if record.description.is_empty() {
            "No description.".to_string()
        } else {
            record.description.clone()
        };
        let metric = record.val_bpb.value();
        let parent_metric = match &record.parent {
            Some(p) => self.read.index_entry(p)?.map(|e| e.metric),
            None => None,
        };
        let impact = match parent_metric {
            None => "baseline".to_string(),
            Some(pm) if pm == metric => "matched parent".to_string(),
            Some(pm) if goal.better(metric, pm) => {
                format!("improved by {:.6}", (metric - pm).abs())
            }
            Some(pm) => format!("worse by {:.6}", (metric - pm).abs()),
        };
        let s = |x: String| Value::Str(x);
        Ok(object([
            ("kind", s(kind.to_string())),
            ("headline", s(headline)),
            ("summary", s(summary)),
            ("impact", s(impact)),
            ("task_id", s(task_id)),
            ("task_name", s(task_name)),
            ("node_id", s(record.node_id.clone())),
            ("node_display_name", s(actor)),
            ("timestamp", Value::Int(record.timestamp)),
            ("verified", Value::Bool(found.entry.verified)),
            ("record", self.record(found)?),
        ]))
    }
}

/// researcher, verifier, hybrid or observer, from a node's all-tasks counters (reference §i).
pub fn activity(all: &NodeStats) -> &'static str {
    match (all.count > 0, all.verifications_performed > 0) {
        (true, true) => "hybrid",
        (true, false) => "researcher",
        (false, true) => "verifier",
        (false, false) => "observer",
    }
}

/// `profile_to_dict`: the profile without its signature.
pub fn profile(p: &NodeProfile) -> Value {
    let s = |x: &str| Value::Str(x.to_string());
    object([
        ("id", s(&p.id)),
        ("node_id", s(&p.node_id)),
        ("display_name", s(&p.display_name)),
        ("bio", s(&p.bio)),
        ("website", s(&p.website)),
        ("avatar_url", s(&p.avatar_url)),
        ("donation_address", s(&p.donation_address)),
        ("timestamp", Value::Int(p.timestamp)),
        ("schema_version", Value::Int(p.schema_version)),
    ])
}

pub fn float(x: Option<f64>) -> Value {
    x.map_or(Value::Null, Value::Float)
}

pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The value with every non-finite float replaced by `null`: the reference's encoder wrote
/// `NaN`/`Infinity` (not JSON) or failed with a 500; a browser's `JSON.parse` accepts neither.
pub fn finite(value: Value) -> Value {
    match value {
        Value::Float(x) if !x.is_finite() => Value::Null,
        Value::Array(items) => Value::Array(items.into_iter().map(finite).collect()),
        Value::Object(members) => {
            Value::Object(members.into_iter().map(|(k, v)| (k, finite(v))).collect())
        }
        other => other,
    }
}
