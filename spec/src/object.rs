//! Any one of the four signed object kinds, read from a document whose kind is not known
//! up front (`spored verify`, `spored import`).

use crate::control::ControlEvent;
use crate::error::Reject;
use crate::experiment::ExperimentRecord;
use crate::json::{self, Value};
use crate::profile::NodeProfile;
use crate::signed::Signed;
use crate::task::TaskManifest;
use crate::wire::Message;

#[derive(Clone, Debug, PartialEq)]
pub enum SignedObject {
    Experiment(ExperimentRecord),
    Task(TaskManifest),
    Control(ControlEvent),
    Profile(NodeProfile),
}

/// Why a document could not be read as a signed object at all.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Json(#[from] json::ParseError),
    #[error("not a signed object: {0}")]
    UnknownKind(&'static str),
    #[error("{kind}: {reason}")]
    Schema { kind: &'static str, reason: Reject },
}

impl SignedObject {
    /// Reads either a message envelope `{"type":…,"payload":…}` or a bare object, telling the
    /// kind from the envelope type or from the object's distinctive keys.
    pub fn parse(bytes: &[u8]) -> Result<SignedObject, ObjectError> {
        Self::from_json(json::parse(bytes)?)
    }

    /// Like [`Self::parse`], from a parsed document (copied).
    pub fn from_value(value: &Value) -> Result<SignedObject, ObjectError> {
        Self::from_json(value.clone())
    }

    /// Like [`Self::parse`], from a parsed document (taken apart).
    pub fn from_json(value: Value) -> Result<SignedObject, ObjectError> {
        let members = value.as_object().ok_or(ObjectError::UnknownKind(
            "the document is not a json object",
        ))?;
        let has = |key: &str| members.iter().any(|(k, _)| k == key);
        let is_envelope = members.len() == 2 && has("type") && has("payload") && !has("node_id");
        if is_envelope {
            let msg_type = value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let payload = match value {
                Value::Object(members) => members
                    .into_iter()
                    .find(|(k, _)| k == "payload")
                    .map_or(Value::Null, |(_, v)| v),
                _ => Value::Null,
            };
            let kind = match msg_type.as_str() {
                "experiment" => "experiment",
                "task" => "task_manifest",
                "profile" => "profile",
                "verification" | "challenge" | "challenge_response" | "dispute" => "control_event",
                _ => {
                    return Err(ObjectError::UnknownKind(
                        "message type carries no signed object",
                    ))
                }
            };
            let object = Self::read_kind(kind, payload)?;
            if let SignedObject::Control(event) = &object {
                if event.event_type != msg_type {
                    return Err(ObjectError::Schema {
                        kind,
                        reason: Reject::TypeMismatch {
                            envelope: msg_type.to_string(),
                            event: event.event_type.clone(),
                        },
                    });
                }
            }
            return Ok(object);
        }
        let kind = if has("code_cid") && has("val_bpb") {
            "experiment"
        } else if has("created_by") && has("task_type") {
            "task_manifest"
        } else if has("type") && has("payload") {
            "control_event"
        } else if has("display_name") || has("schema_version") {
            "profile"
        } else {
            return Err(ObjectError::UnknownKind(
                "no experiment, task manifest, control event or profile fields",
            ));
        };
        Self::read_kind(kind, value)
    }

    fn read_kind(kind: &'static str, value: Value) -> Result<SignedObject, ObjectError> {
        let schema = |reason| ObjectError::Schema { kind, reason };
        Ok(match kind {
            "experiment" => {
                SignedObject::Experiment(ExperimentRecord::from_json(value).map_err(schema)?)
            }
            "task_manifest" => SignedObject::Task(TaskManifest::from_json(value).map_err(schema)?),
            "control_event" => {
                SignedObject::Control(ControlEvent::from_json(value).map_err(schema)?)
            }
            _ => SignedObject::Profile(NodeProfile::from_json(value).map_err(schema)?),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SignedObject::Experiment(_) => ExperimentRecord::KIND,
            SignedObject::Task(_) => TaskManifest::KIND,
            SignedObject::Control(_) => ControlEvent::KIND,
            SignedObject::Profile(_) => NodeProfile::KIND,
        }
    }

    pub fn claimed_id(&self) -> &str {
        match self {
            SignedObject::Experiment(o) => o.claimed_id(),
            SignedObject::Task(o) => o.claimed_id(),
            SignedObject::Control(o) => o.claimed_id(),
            SignedObject::Profile(o) => o.claimed_id(),
        }
    }

    pub fn verify(&self) -> Result<(), Reject> {
        match self {
            SignedObject::Experiment(o) => o.verify(),
            SignedObject::Task(o) => o.verify(),
            SignedObject::Control(o) => o.verify(),
            SignedObject::Profile(o) => o.verify(),
        }
    }

    /// The message that carries this object on the wire.
    pub fn into_message(self) -> Message {
        match self {
            SignedObject::Experiment(o) => Message::Experiment(o),
            SignedObject::Task(o) => Message::Task(o),
            SignedObject::Control(o) => Message::Control(o),
            SignedObject::Profile(o) => Message::Profile(o),
        }
    }
}
