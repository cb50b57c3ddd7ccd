//! TaskManifest (reference §c.1): what a task is, signed by its creator; its id is its hash.

use crate::error::Reject;
use crate::fields::Fields;
use crate::json::{object, Value};
use crate::signed::Signed;

/// Whether lower or higher metric values are better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Goal {
    #[default]
    Minimize,
    Maximize,
}

impl Goal {
    /// The reference writes `minimize`/`maximize` but never checks it; anything that is not
    /// `maximize` (any case) minimises, as every reference node does.
    pub fn from_manifest(text: &str) -> Goal {
        if text.eq_ignore_ascii_case("maximize") {
            Goal::Maximize
        } else {
            Goal::Minimize
        }
    }

    /// True when `candidate` is strictly better than `incumbent`.
    pub fn better(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Goal::Minimize => candidate < incumbent,
            Goal::Maximize => candidate > incumbent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Minimize => "minimize",
            Goal::Maximize => "maximize",
        }
    }
}

/// A signed task manifest. Fields in the reference's dataclass order (= wire order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskManifest {
    pub name: String,
    pub description: String,
    pub task_type: String,
    pub artifact_type: String,
    pub metric: String,
    pub goal: String,
    pub base_code_cid: String,
    pub prepare_cid: String,
    pub dataset_cid: String,
    pub time_budget: i64,
    pub created_by: String,
    pub timestamp: i64,
    pub signature: String,
    pub task_id: String,
    pub version: i64,
}

const TASK_FIELDS: [&str; 15] = [
    "name",
    "description",
    "task_type",
    "artifact_type",
    "metric",
    "goal",
    "base_code_cid",
    "prepare_cid",
    "dataset_cid",
    "time_budget",
    "created_by",
    "timestamp",
    "signature",
    "task_id",
    "version",
];

impl TaskManifest {
    /// Reads it from a parsed payload (copying it; see [`Self::from_json`] to move it).
    pub fn from_value(value: &Value) -> Result<Self, Reject> {
        Self::from_json(value.clone())
    }

    /// Reads it from a parsed payload, taking the payload apart.
    pub fn from_json(value: Value) -> Result<Self, Reject> {
        let mut f = Fields::new(value, &TASK_FIELDS)?;
        Ok(TaskManifest {
            name: f.string("name")?,
            description: f.string("description")?,
            task_type: f.string("task_type")?,
            artifact_type: f.string("artifact_type")?,
            metric: f.string("metric")?,
            goal: f.string("goal")?,
            base_code_cid: f.string("base_code_cid")?,
            prepare_cid: f.string("prepare_cid")?,
            dataset_cid: f.string("dataset_cid")?,
            time_budget: f.int("time_budget")?,
            created_by: f.string("created_by")?,
            timestamp: f.int("timestamp")?,
            signature: f.string("signature")?,
            task_id: f.string("task_id")?,
            version: f.int_or("version", 1)?,
        })
    }

    pub fn goal(&self) -> Goal {
        Goal::from_manifest(&self.goal)
    }

    /// The payload of a `task` message, in dataclass order.
    pub fn to_value(&self) -> Value {
        self.fields(true)
    }

    fn fields(&self, all: bool) -> Value {
        let s = |x: &str| Value::Str(x.to_string());
        let mut members = vec![
            ("name", s(&self.name)),
            ("description", s(&self.description)),
            ("task_type", s(&self.task_type)),
            ("artifact_type", s(&self.artifact_type)),
            ("metric", s(&self.metric)),
            ("goal", s(&self.goal)),
            ("base_code_cid", s(&self.base_code_cid)),
            ("prepare_cid", s(&self.prepare_cid)),
            ("dataset_cid", s(&self.dataset_cid)),
            ("time_budget", Value::Int(self.time_budget)),
            ("created_by", s(&self.created_by)),
            ("timestamp", Value::Int(self.timestamp)),
        ];
        if all {
            members.push(("signature", s(&self.signature)));
            members.push(("task_id", s(&self.task_id)));
        }
        members.push(("version", Value::Int(self.version)));
        object(members)
    }
}

impl Signed for TaskManifest {
    const KIND: &'static str = "task_manifest";

    fn canonical_value(&self) -> Value {
        self.fields(false)
    }

    fn claimed_id(&self) -> &str {
        &self.task_id
    }

    fn signer(&self) -> &str {
        &self.created_by
    }

    fn signature(&self) -> &str {
        &self.signature
    }

    fn set_id_and_signature(&mut self, id: String, signature: String) {
        self.task_id = id;
        self.signature = signature;
    }
}
