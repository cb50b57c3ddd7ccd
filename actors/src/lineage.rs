//! Lineage rules (reference §b.5 node layer, §e.7, §e.8), as pure decisions over what the store
//! already knows. Unlike the reference, a record whose parent is unknown is *held* and decided
//! when the parent arrives, so the resulting graph never depends on arrival order.

use spore_spec::ExperimentRecord;

/// What the store knows about a record's parent.
#[derive(Clone, Debug, PartialEq)]
pub enum ParentState<'a> {
    /// The record has no parent.
    None,
    /// The parent is not stored (yet).
    Unknown,
    /// The parent is stored in this task.
    Known { task_id: &'a str },
}

/// Why a record can never join the graph.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineageReject {
    #[error("second root for task {task_id} (its root is {existing_root})")]
    SecondRoot {
        task_id: String,
        existing_root: String,
    },
    #[error("parent {parent} is in task {parent_task}, not in task {task_id}")]
    ParentInOtherTask {
        parent: String,
        parent_task: String,
        task_id: String,
    },
    #[error("unsigned v1 task id {claimed} contradicts the derived task {derived}")]
    V1TaskHintMismatch { claimed: String, derived: String },
    #[error("root for task {task_id} not signed by its creator {creator}")]
    NotTheCreatorsRoot { task_id: String, creator: String },
    #[error("root for task {task_id} is not its pinned root {pinned}")]
    NotThePinnedRoot { task_id: String, pinned: String },
}

/// What the store knows about the task a parentless v2 record names. The reference takes the
/// first root a node sees, so nodes that saw two roots in different orders hold different
/// trees, and anyone could found a task's tree before its creator. Here a task with a manifest
/// has only a root its creator signed; the built-in default task, whose key is public, has the
/// one root the binary pins. A wrong root that came before the manifest is removed, with its
/// tree, when the manifest comes (`store::removal`), so every node ends with the same tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskRoot {
    /// The task's root, if it has one.
    pub existing: Option<String>,
    /// The signer of the task's manifest, when the manifest is stored.
    pub creator: Option<String>,
    /// The only root the task may have, when the binary pins one.
    pub pinned: Option<String>,
}

/// The decision for one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Joins task `task_id`; `is_root` when it founds (or is) the task's root.
    Accept {
        task_id: String,
        is_root: bool,
    },
    /// Waits for its parent (or, for a second root of a task whose manifest is unknown, for
    /// the manifest: `parent` is then the task id).
    Hold {
        parent: String,
    },
    Reject(LineageReject),
}

/// Decides where `record` belongs. `task_root` tells what is known of the root of the task a
/// parentless record names.
pub fn decide(
    record: &ExperimentRecord,
    parent: ParentState<'_>,
    task_root: impl FnOnce(&str) -> TaskRoot,
) -> Decision {
    match parent {
        ParentState::Unknown => Decision::Hold {
            parent: record.parent.clone().unwrap_or_default(),
        },
        ParentState::None => {
            // A v2 root names its task (or, with none named, founds its own, as the reference
            // derives); a v1 root always founds its own legacy task.
            let task_id = if record.signs_task_id() && !record.task_id.is_empty() {
                record.task_id.clone()
            } else {
                record.id.clone()
            };
            if !record.signs_task_id() && !record.task_id.is_empty() && record.task_id != task_id {
                return Decision::Reject(LineageReject::V1TaskHintMismatch {
                    claimed: record.task_id.clone(),
                    derived: task_id,
                });
            }
            let rule = task_root(&task_id);
            let ruled = rule.creator.is_some() || rule.pinned.is_some();
            if let Some(pinned) = rule.pinned {
                if pinned != record.id {
                    return Decision::Reject(LineageReject::NotThePinnedRoot { task_id, pinned });
                }
            }
            if let Some(creator) = rule.creator {
                if creator != record.node_id {
                    return Decision::Reject(LineageReject::NotTheCreatorsRoot {
                        task_id,
                        creator,
                    });
                }
            }
            if let Some(root) = rule.existing {
                if root != record.id && !ruled {
                    // the root in place may be the wrong one: the task's manifest, when it
                    // comes, tells (until then the reference's first root stands)
                    return Decision::Hold { parent: task_id };
                }
                if root != record.id {
                    return Decision::Reject(LineageReject::SecondRoot {
                        task_id,
                        existing_root: root,
                    });
                }
            }
            Decision::Accept {
                task_id,
                is_root: true,
            }
        }
        ParentState::Known {
            task_id: parent_task,
        } => {
            if !record.task_id.is_empty() && record.task_id != parent_task {
                let parent = record.parent.clone().unwrap_or_default();
                if record.signs_task_id() {
                    return Decision::Reject(LineageReject::ParentInOtherTask {
                        parent,
                        parent_task: parent_task.to_string(),
                        task_id: record.task_id.clone(),
                    });
                }
                return Decision::Reject(LineageReject::V1TaskHintMismatch {
                    claimed: record.task_id.clone(),
                    derived: parent_task.to_string(),
                });
            }
            Decision::Accept {
                task_id: parent_task.to_string(),
                is_root: false,
            }
        }
    }
}

/// One stored row as the reference's backfill sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillRow {
    pub id: String,
    pub parent: Option<String>,
    pub task_id: String,
}

/// The reference's legacy backfill (§e.7): rows in (depth, timestamp) order; an empty task id
/// becomes the id of the top-most reachable ancestor (a missing parent's id when the chain is
/// broken); a non-empty one is kept and inherited by later descendants. Returns the task id of
/// every row, in input order.
pub fn backfill_task_ids(rows: &[BackfillRow]) -> Vec<String> {
    use std::collections::HashMap;
    let by_id: HashMap<&str, &BackfillRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut assigned: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if !row.task_id.is_empty() {
            assigned.insert(row.id.clone(), row.task_id.clone());
            out.push(row.task_id.clone());
            continue;
        }
        // Walk up until an assigned row, a root, or a missing parent; bounded by the row count
        // so a parent cycle cannot loop forever.
        let mut path = vec![row.id.as_str()];
        let mut current = row;
        let mut task = None;
        for _ in 0..=rows.len() {
            if let Some(t) = assigned.get(current.id.as_str()) {
                task = Some(t.clone());
                break;
            }
            match current.parent.as_deref() {
                None => {
                    task = Some(current.id.clone());
                    break;
                }
                Some(parent) => match by_id.get(parent) {
                    None => {
                        task = Some(parent.to_string());
                        break;
                    }
                    Some(p) => {
                        path.push(p.id.as_str());
                        current = p;
                    }
                },
            }
        }
        let task = task.unwrap_or_else(|| row.id.clone());
        for id in path {
            assigned
                .entry(id.to_string())
                .or_insert_with(|| task.clone());
        }
        out.push(assigned[row.id.as_str()].clone());
    }
    out
}
