//! ExperimentRecord v1 and v2 (reference §b).

use crate::error::Reject;
use crate::fields::{Fields, Number};
use std::fmt::Write as _;

use crate::json::{object, write_float, write_str, Value};
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
    /// Reads it from a parsed payload (copying it; see [`Self::from_json`] to move it).
    pub fn from_value(value: &Value) -> Result<Self, Reject> {
        Self::from_json(value.clone())
    }

    /// Reads it from a parsed payload, taking the payload apart.
    pub fn from_json(value: Value) -> Result<Self, Reject> {
        let mut f = Fields::new(value, &EXPERIMENT_FIELDS)?;
        // read in alphabetical (= wire) order, so each lookup finds its key next in line
        let agent_model = f.string("agent_model")?;
        let code_cid = f.string("code_cid")?;
        let cuda_version = f.string("cuda_version")?;
        let dataset_cid = f.string("dataset_cid")?;
        let depth = f.int("depth")?;
        let description = f.string("description")?;
        let diff = f.string("diff")?;
        let gpu_model = f.string("gpu_model")?;
        let hypothesis = f.string("hypothesis")?;
        let id = f.string("id")?;
        let node_id = f.string("node_id")?;
        let num_params = f.int("num_params")?;
        let num_steps = f.int("num_steps")?;
        let parent = f.nullable_string("parent")?;
        let peak_vram_mb = f.number("peak_vram_mb")?;
        let prepare_cid = f.string("prepare_cid")?;
        let signature = f.string("signature")?;
        let status_text = f.string("status")?;
        let status = Status::parse(&status_text).ok_or(Reject::InvalidStatus(status_text))?;
        let task_id = f.string_or("task_id", "")?;
        let time_budget = f.int("time_budget")?;
        let timestamp = f.int("timestamp")?;
        let torch_version = f.string("torch_version")?;
        let val_bpb = f.number("val_bpb")?;
        let version = f.int_or("version", 1)?;
        Ok(ExperimentRecord {
            parent,
            depth,
            code_cid,
            diff,
            dataset_cid,
            prepare_cid,
            time_budget,
            val_bpb,
            peak_vram_mb,
            num_steps,
            num_params,
            status,
            description,
            hypothesis,
            agent_model,
            gpu_model,
            cuda_version,
            torch_version,
            node_id,
            task_id,
            timestamp,
            signature,
            id,
            version,
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

    /// The wire JSON of the record (all 24 fields, sorted, compact, ASCII). Same bytes as
    /// `json::to_wire(&self.to_value())`, written directly because every stored, synced and
    /// imported record goes through it.
    pub fn to_wire_json(&self) -> String {
        let mut out = String::with_capacity(1024 + self.diff.len());
        self.write_json(&mut out, true);
        out
    }

    /// Writes the record's fields, sorted, straight into `out`: all of them (`all`) or the
    /// canonical payload (no id, no signature, and no task id below version 2).
    fn write_json(&self, out: &mut String, all: bool) {
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            out.push_str(if first { "{\"" } else { ",\"" });
            first = false;
            out.push_str(name);
            out.push_str("\":");
        };
        let int = |out: &mut String, i: i64| {
            let _ = write!(out, "{i}");
        };
        let number = |out: &mut String, n: Number| match n {
            Number::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Number::Float(x) => write_float(out, x),
        };
        key(out, "agent_model");
        write_str(out, &self.agent_model);
        key(out, "code_cid");
        write_str(out, &self.code_cid);
        key(out, "cuda_version");
        write_str(out, &self.cuda_version);
        key(out, "dataset_cid");
        write_str(out, &self.dataset_cid);
        key(out, "depth");
        int(out, self.depth);
        key(out, "description");
        write_str(out, &self.description);
        key(out, "diff");
        write_str(out, &self.diff);
        key(out, "gpu_model");
        write_str(out, &self.gpu_model);
        key(out, "hypothesis");
        write_str(out, &self.hypothesis);
        if all {
            key(out, "id");
            write_str(out, &self.id);
        }
        key(out, "node_id");
        write_str(out, &self.node_id);
        key(out, "num_params");
        int(out, self.num_params);
        key(out, "num_steps");
        int(out, self.num_steps);
        key(out, "parent");
        match &self.parent {
            Some(p) => write_str(out, p),
            None => out.push_str("null"),
        }
        key(out, "peak_vram_mb");
        number(out, self.peak_vram_mb);
        key(out, "prepare_cid");
        write_str(out, &self.prepare_cid);
        if all {
            key(out, "signature");
            write_str(out, &self.signature);
        }
        key(out, "status");
        write_str(out, self.status.as_str());
        if all || self.signs_task_id() {
            key(out, "task_id");
            write_str(out, &self.task_id);
        }
        key(out, "time_budget");
        int(out, self.time_budget);
        key(out, "timestamp");
        int(out, self.timestamp);
        key(out, "torch_version");
        write_str(out, &self.torch_version);
        key(out, "val_bpb");
        number(out, self.val_bpb);
        key(out, "version");
        int(out, self.version);
        out.push('}');
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

    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(1024 + self.diff.len());
        self.write_json(&mut out, false);
        out.into_bytes()
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
