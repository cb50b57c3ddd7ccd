//! ExperimentRecord v1 and v2 (reference §b).

use crate::error::Reject;
use crate::fields::{Fields, Number};
use crate::json::{object, Value};
use crate::signed::Signed;

/// The outcome of one experiment as its publisher decided it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    #[default]
    Keep,
    Discard,
    Crash,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Keep => "keep",
            Status::Discard => "discard",
            Status::Crash => "crash",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "keep" => Some(Status::Keep),
            "discard" => Some(Status::Discard),
            "crash" => Some(Status::Crash),
            _ => None,
        }
    }
}

/// A signed experiment record. Version 1 does not sign `task_id` (it is a hint only);
/// version 2 and later do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentRecord {
    pub parent: Option<String>,
    pub depth: i64,
    pub code_cid: String,
    pub diff: String,
    pub dataset_cid: String,
    pub prepare_cid: String,
    pub time_budget: i64,
    pub val_bpb: Number,
    pub peak_vram_mb: Number,
    pub num_steps: i64,
    pub num_params: i64,
    pub status: Status,
    pub description: String,
    pub hypothesis: String,
    pub agent_model: String,
    pub gpu_model: String,
    pub cuda_version: String,
    pub torch_version: String,
    pub node_id: String,
    pub task_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub id: String,
    pub version: i64,
}

/// Every field of a record, in alphabetical (= wire) order.
pub const EXPERIMENT_FIELDS: [&str; 24] = [
    "agent_model",
    "code_cid",
    "cuda_version",
    "dataset_cid",
    "depth",
    "description",
    "diff",
    "gpu_model",
    "hypothesis",
    "id",
    "node_id",
    "num_params",
    "num_steps",
    "parent",
    "peak_vram_mb",
    "prepare_cid",
    "signature",
    "status",
    "task_id",
    "time_budget",
    "timestamp",
    "torch_version",
    "val_bpb",
    "version",
];

impl ExperimentRecord {
    /// Reads a record from its wire payload. Refuses unknown or missing fields and wrong types;
    /// `task_id` defaults to "" and `version` to 1, as in the reference.
    pub fn from_value(value: &Value) -> Result<Self, Reject> {
        let f = Fields::new(value, &EXPERIMENT_FIELDS)?;
        let status_text = f.string("status")?;
        Ok(ExperimentRecord {
            parent: f.nullable_string("parent")?,
            depth: f.int("depth")?,
            code_cid: f.string("code_cid")?,
            diff: f.string("diff")?,
            dataset_cid: f.string("dataset_cid")?,
            prepare_cid: f.string("prepare_cid")?,
            time_budget: f.int("time_budget")?,
            val_bpb: f.number("val_bpb")?,
            peak_vram_mb: f.number("peak_vram_mb")?,
            num_steps: f.int("num_steps")?,
            num_params: f.int("num_params")?,
            status: Status::parse(&status_text).ok_or(Reject::InvalidStatus(status_text))?,
            description: f.string("description")?,
            hypothesis: f.string("hypothesis")?,
            agent_model: f.string("agent_model")?,
            gpu_model: f.string("gpu_model")?,
            cuda_version: f.string("cuda_version")?,
            torch_version: f.string("torch_version")?,
            node_id: f.string("node_id")?,
            task_id: f.string_or("task_id", "")?,
            timestamp: f.int("timestamp")?,
            signature: f.string("signature")?,
            id: f.string("id")?,
            version: f.int_or("version", 1)?,
        })
    }

    /// True when `task_id` is covered by the id and signature.
    pub fn signs_task_id(&self) -> bool {
        self.version >= 2
    }

    /// All 24 fields, sorted: the payload of an `experiment` message.
    pub fn to_value(&self) -> Value {
        self.fields(true)
    }

    fn fields(&self, all: bool) -> Value {
        let s = |x: &str| Value::Str(x.to_string());
        let mut members = vec![
            ("agent_model", s(&self.agent_model)),
            ("code_cid", s(&self.code_cid)),
            ("cuda_version", s(&self.cuda_version)),
            ("dataset_cid", s(&self.dataset_cid)),
            ("depth", Value::Int(self.depth)),
            ("description", s(&self.description)),
            ("diff", s(&self.diff)),
            ("gpu_model", s(&self.gpu_model)),
            ("hypothesis", s(&self.hypothesis)),
        ];
        if all {
            members.push(("id", s(&self.id)));
        }
        members.extend([
            ("node_id", s(&self.node_id)),
            ("num_params", Value::Int(self.num_params)),
            ("num_steps", Value::Int(self.num_steps)),
            ("parent", self.parent.as_deref().map_or(Value::Null, s)),
            ("peak_vram_mb", self.peak_vram_mb.to_value()),
            ("prepare_cid", s(&self.prepare_cid)),
        ]);
        if all {
            members.push(("signature", s(&self.signature)));
        }
        members.push(("status", s(self.status.as_str())));
        if all || self.signs_task_id() {
            members.push(("task_id", s(&self.task_id)));
        }
        members.extend([
            ("time_budget", Value::Int(self.time_budget)),
            ("timestamp", Value::Int(self.timestamp)),
            ("torch_version", s(&self.torch_version)),
            ("val_bpb", self.val_bpb.to_value()),
            ("version", Value::Int(self.version)),
        ]);
        object(members)
    }
}

impl Signed for ExperimentRecord {
    const KIND: &'static str = "experiment";

    fn canonical_value(&self) -> Value {
        self.fields(false)
    }

    fn claimed_id(&self) -> &str {
        &self.id
    }

    fn signer(&self) -> &str {
        &self.node_id
    }

    fn signature(&self) -> &str {
        &self.signature
    }

    fn set_id_and_signature(&mut self, id: String, signature: String) {
        self.id = id;
        self.signature = signature;
    }

    /// Rules the reference does not check but that keep one network consistent: metrics are
    /// finite (NaN and ±Infinity broke the reference's store and explorer), and links are ids.
    fn check_rules(&self) -> Result<(), Reject> {
        use crate::crypto::is_lower_hex;
        if !self.val_bpb.value().is_finite() {
            return Err(Reject::NonFinite("val_bpb"));
        }
        if !self.peak_vram_mb.value().is_finite() {
            return Err(Reject::NonFinite("peak_vram_mb"));
        }
        if let Some(parent) = &self.parent {
            if !is_lower_hex(parent, 64) {
                return Err(Reject::BadFormat {
                    field: "parent",
                    expected: "null or 64 lowercase hex characters",
                });
            }
        }
        if !self.task_id.is_empty() && !is_lower_hex(&self.task_id, 64) {
            return Err(Reject::BadFormat {
                field: "task_id",
                expected: "empty or 64 lowercase hex characters",
            });
        }
        Ok(())
    }
}
