//! Frames and messages (reference §d): a 4-byte big-endian length, then a compact ASCII JSON
//! envelope `{"type":…,"payload":…}`; 19 message types.

use base64::Engine as _;

use crate::control::{ControlEvent, ControlKind};
use crate::error::Reject;
use crate::experiment::ExperimentRecord;
use crate::json::{self, object, Value};
use crate::profile::NodeProfile;
use crate::task::TaskManifest;

/// Largest frame body, inclusive (10 MiB).
pub const MAX_FRAME_BODY: usize = 10 * 1024 * 1024;

/// Why bytes are not a frame or a message.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the 10 MiB limit")]
    FrameTooLarge(usize),
    #[error("frame body: {0}")]
    NotJson(#[from] json::ParseError),
    #[error("frame body is a json {0}, not an object")]
    NotAnObject(&'static str),
    #[error("message type is not a string")]
    TypeNotString,
    #[error("`{msg_type}` payload: {reason}")]
    BadPayload { msg_type: String, reason: Reject },
}

/// Prefixes `body` with its 4-byte big-endian length.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, WireError> {
    if body.len() > MAX_FRAME_BODY {
        return Err(WireError::FrameTooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Splits the first complete frame off `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((body, consumed)))` otherwise. An oversized length prefix is an error before any
/// of the body is buffered.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME_BODY {
        return Err(WireError::FrameTooLarge(len));
    }
    Ok(buf.get(4..4 + len).map(|body| (body, 4 + len)))
}

/// One protocol message. Object-carrying messages are decoded to their typed form (schema
/// only); checking ids, signatures and lineage is the receiver's job.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Experiment(ExperimentRecord),
    Task(TaskManifest),
    Profile(NodeProfile),
    /// `verification`, `challenge`, `challenge_response` or `dispute`.
    Control(ControlEvent),
    SyncRequest {
        since: i64,
    },
    SyncResponse {
        since: i64,
        count: i64,
    },
    ControlSyncRequest {
        since: i64,
    },
    ControlSyncResponse {
        since: i64,
        count: i64,
    },
    TaskSyncRequest {
        since: i64,
    },
    TaskSyncResponse {
        since: i64,
        count: i64,
    },
    PexRequest,
    PexResponse {
        peers: Vec<String>,
    },
    CodeRequest {
        code_cid: String,
    },
    CodeResponse {
        code_cid: String,
        code: Vec<u8>,
    },
    Ping,
    Pong,
}

/// Every message type name the protocol defines.
pub const MESSAGE_TYPES: [&str; 19] = [
    "experiment",
    "task",
    "profile",
    "verification",
    "challenge",
    "challenge_response",
    "dispute",
    "sync_request",
    "sync_response",
    "control_sync_request",
    "control_sync_response",
    "task_sync_request",
    "task_sync_response",
    "pex_request",
    "pex_response",
    "code_request",
    "code_response",
    "ping",
    "pong",
];

impl Message {
    /// The envelope `type`.
    pub fn message_type(&self) -> &str {
        match self {
            Message::Experiment(_) => "experiment",
            Message::Task(_) => "task",
            Message::Profile(_) => "profile",
            Message::Control(event) => &event.event_type,
            Message::SyncRequest { .. } => "sync_request",
            Message::SyncResponse { .. } => "sync_response",
            Message::ControlSyncRequest { .. } => "control_sync_request",
            Message::ControlSyncResponse { .. } => "control_sync_response",
            Message::TaskSyncRequest { .. } => "task_sync_request",
            Message::TaskSyncResponse { .. } => "task_sync_response",
            Message::PexRequest => "pex_request",
            Message::PexResponse { .. } => "pex_response",
            Message::CodeRequest { .. } => "code_request",
            Message::CodeResponse { .. } => "code_response",
            Message::Ping => "ping",
            Message::Pong => "pong",
        }
    }

    /// The envelope `payload`, laid out as the reference lays it out.
    pub fn payload(&self) -> Value {
        let since = |s: i64| object([("since", Value::Int(s))]);
        let since_count =
            |s: i64, c: i64| object([("since", Value::Int(s)), ("count", Value::Int(c))]);
        match self {
            Message::Experiment(record) => record.to_value(),
            Message::Task(manifest) => manifest.to_value(),
            Message::Profile(profile) => profile.to_value(),
            Message::Control(event) => event.to_value(),
            Message::SyncRequest { since: s }
            | Message::ControlSyncRequest { since: s }
            | Message::TaskSyncRequest { since: s } => since(*s),
            Message::SyncResponse { since: s, count }
            | Message::ControlSyncResponse { since: s, count }
            | Message::TaskSyncResponse { since: s, count } => since_count(*s, *count),
            Message::PexRequest | Message::Ping | Message::Pong => Value::Object(Vec::new()),
            Message::PexResponse { peers } => object([(
                "peer",
                Value::Array(peers.iter().map(|p| Value::Str(p.clone())).collect()),
            )]),
            Message::CodeRequest { code_cid } => {
                object([("code_cid", Value::Str(code_cid.clone()))])
            }
            Message::CodeResponse { code_cid, code } => object([
                ("code_cid", Value::Str(code_cid.clone())),
                (
                    "code",
                    Value::Str(base64::engine::general_purpose::STANDARD.encode(code)),
                ),
            ]),
        }
    }

    /// The frame body: `{"type":…,"payload":…}`, compact and ASCII.
    pub fn encode_body(&self) -> String {
        if let Message::Experiment(record) = self {
            return format!(
                "{{\"type\":\"experiment\",\"payload\":{}}}",
                record.to_wire_json()
            );
        }
        let envelope = object([
            ("type", Value::Str(self.message_type().to_string())),
            ("payload", self.payload()),
        ]);
        json::to_wire(&envelope)
    }

    /// The whole frame, length prefix included.
    pub fn encode_frame(&self) -> Result<Vec<u8>, WireError> {
        encode_frame(self.encode_body().as_bytes())
    }

    /// Decodes a frame body. `Ok(None)` for a message type this protocol does not define (the
    /// reference ignores those too, which keeps the envelope forward compatible).
    pub fn decode_body(body: &[u8]) -> Result<Option<Message>, WireError> {
        let envelope = json::parse(body)?;
        let Value::Object(members) = envelope else {
            return Err(WireError::NotAnObject(envelope.type_name()));
        };
        let mut msg_type = None;
        let mut payload = Value::Object(Vec::new());
        for (key, value) in members {
            match key.as_str() {
                "type" => msg_type = Some(value),
                "payload" => payload = value,
                _ => {}
            }
        }
        let msg_type = match msg_type {
            None => return Ok(None),
            Some(Value::Str(t)) => t,
            Some(_) => return Err(WireError::TypeNotString),
        };
        let bad = |reason: Reject| WireError::BadPayload {
            msg_type: msg_type.clone(),
            reason,
        };
        if payload.as_object().is_none() {
            return Err(bad(Reject::NotAnObject));
        }
        // Signed objects first: they take the payload apart instead of copying it.
        match msg_type.as_str() {
            "experiment" => {
                let record = ExperimentRecord::from_json(payload).map_err(bad)?;
                return Ok(Some(Message::Experiment(record)));
            }
            "task" => {
                let manifest = TaskManifest::from_json(payload).map_err(bad)?;
                return Ok(Some(Message::Task(manifest)));
            }
            "profile" => {
                let profile = NodeProfile::from_json(payload).map_err(bad)?;
                return Ok(Some(Message::Profile(profile)));
            }
            t if ControlKind::parse(t).is_some() => {
                let event = ControlEvent::from_json(payload).map_err(bad)?;
                if event.event_type != msg_type {
                    return Err(bad(Reject::TypeMismatch {
                        envelope: msg_type.clone(),
                        event: event.event_type,
                    }));
                }
                return Ok(Some(Message::Control(event)));
            }
            _ => {}
        }
        let int_field = |name: &'static str| -> Result<i64, WireError> {
            match payload.get(name) {
                Some(Value::Int(i)) => Ok(*i),
                Some(Value::BigInt(_)) => Err(bad(Reject::IntOutOfRange(name))),
                Some(other) => Err(bad(Reject::WrongType {
                    field: name,
                    expected: "an integer",
                    found: other.type_name(),
                })),
                None => Err(bad(Reject::MissingField(name))),
            }
        };
        let str_field = |name: &'static str| -> Result<String, WireError> {
            match payload.get(name) {
                Some(Value::Str(s)) => Ok(s.clone()),
                Some(other) => Err(bad(Reject::WrongType {
                    field: name,
                    expected: "a string",
                    found: other.type_name(),
                })),
                None => Err(bad(Reject::MissingField(name))),
            }
        };
        let message = match msg_type.as_str() {
            "sync_request" => Message::SyncRequest {
                since: int_field("since")?,
            },
            "control_sync_request" => Message::ControlSyncRequest {
                since: int_field("since")?,
            },
            "task_sync_request" => Message::TaskSyncRequest {
                since: int_field("since")?,
            },
            "sync_response" => Message::SyncResponse {
                since: int_field("since")?,
                count: int_field("count")?,
            },
            "control_sync_response" => Message::ControlSyncResponse {
                since: int_field("since")?,
                count: int_field("count")?,
            },
            "task_sync_response" => Message::TaskSyncResponse {
                since: int_field("since")?,
                count: int_field("count")?,
            },
            "pex_request" => Message::PexRequest,
            "pex_response" => {
                let peers = match payload.get("peer") {
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                Message::PexResponse { peers }
            }
            "code_request" => Message::CodeRequest {
                code_cid: str_field("code_cid")?,
            },
            "code_response" => {
                let code_cid = str_field("code_cid")?;
                let code = base64::engine::general_purpose::STANDARD
                    .decode(str_field("code")?)
                    .map_err(|_| {
                        bad(Reject::BadFormat {
                            field: "code",
                            expected: "standard base64",
                        })
                    })?;
                Message::CodeResponse { code_cid, code }
            }
            "ping" => Message::Ping,
            "pong" => Message::Pong,
            _ => return Ok(None),
        };
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_frame_waits_for_whole_body_and_refuses_oversize() {
        let frame = Message::Ping.encode_frame().unwrap();
        assert_eq!(split_frame(&frame[..3]).unwrap(), None);
        assert_eq!(split_frame(&frame[..frame.len() - 1]).unwrap(), None);
        let (body, used) = split_frame(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(body, br#"{"type":"ping","payload":{}}"#);
        let huge = ((MAX_FRAME_BODY + 1) as u32).to_be_bytes();
        assert_eq!(
            split_frame(&huge),
            Err(WireError::FrameTooLarge(MAX_FRAME_BODY + 1))
        );
    }

    #[test]
    fn unknown_and_typeless_messages_are_ignored() {
        assert_eq!(
            Message::decode_body(br#"{"type":"hello","payload":{}}"#),
            Ok(None)
        );
        assert_eq!(Message::decode_body(br#"{"payload":{}}"#), Ok(None));
        assert_eq!(
            Message::decode_body(br#"{"type":"ping"}"#),
            Ok(Some(Message::Ping))
        );
    }

    #[test]
    fn bad_envelopes_are_errors_not_panics() {
        assert!(matches!(
            Message::decode_body(b"[]"),
            Err(WireError::NotAnObject("array"))
        ));
        assert!(matches!(
            Message::decode_body(b"nope"),
            Err(WireError::NotJson(_))
        ));
        assert!(matches!(
            Message::decode_body(br#"{"type":"sync_request","payload":{"since":"0"}}"#),
            Err(WireError::BadPayload { .. })
        ));
    }
}
