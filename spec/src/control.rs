//! SignedControlEvent (reference §c.2): verifications, challenges, responses and disputes.

use crate::error::Reject;
use crate::fields::Fields;
use crate::json::{object, to_canonical, Value};
use crate::signed::Signed;

/// The four control event kinds; each names the payload field that must equal the signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlKind {
    Verification,
    Challenge,
    ChallengeResponse,
    Dispute,
}

impl ControlKind {
    pub const ALL: [ControlKind; 4] = [
        ControlKind::Verification,
        ControlKind::Challenge,
        ControlKind::ChallengeResponse,
        ControlKind::Dispute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Verification => "verification",
            ControlKind::Challenge => "challenge",
            ControlKind::ChallengeResponse => "challenge_response",
            ControlKind::Dispute => "dispute",
        }
    }

    pub fn parse(text: &str) -> Option<ControlKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The payload field naming the node that must have signed the event.
    pub fn actor_field(self) -> &'static str {
        match self {
            ControlKind::Challenge | ControlKind::Dispute => "challenger_id",
            ControlKind::Verification | ControlKind::ChallengeResponse => "verifier_id",
        }
    }
}

/// A signed control event. `payload` keeps the key order its creator used (the wire form
/// shows it; the canonical form sorts it).
#[derive(Clone, Debug, PartialEq)]
pub struct ControlEvent {
    pub event_type: String,
    pub payload: Value,
    pub node_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub id: String,
    pub version: i64,
}

const CONTROL_FIELDS: [&str; 7] = [
    "type",
    "payload",
    "node_id",
    "timestamp",
    "signature",
    "id",
    "version",
];

impl ControlEvent {
    /// Reads it from a parsed payload (copying it; see [`Self::from_json`] to move it).
    pub fn from_value(value: &Value) -> Result<Self, Reject> {
        Self::from_json(value.clone())
    }

    /// Reads it from a parsed payload, taking the payload apart.
    pub fn from_json(value: Value) -> Result<Self, Reject> {
        let mut f = Fields::new(value, &CONTROL_FIELDS)?;
        Ok(ControlEvent {
            event_type: f.string("type")?,
            payload: f.object("payload")?,
            node_id: f.string("node_id")?,
            timestamp: f.int("timestamp")?,
            signature: f.string("signature")?,
            id: f.string("id")?,
            version: f.int_or("version", 1)?,
        })
    }

    /// The kind, if it is one of the four the protocol defines.
    pub fn kind(&self) -> Option<ControlKind> {
        ControlKind::parse(&self.event_type)
    }

    /// A payload string field, or "" when absent or not a string.
    pub fn payload_str(&self, key: &str) -> &str {
        self.payload.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The application dedupe key: `<type>:<signer>:<payload.event_id>`, or the sorted payload
    /// JSON when the signer gave no event id. The reference's key has no signer, so anyone can
    /// pre-empt an honest node's predictable event id; here an event id is only ever the
    /// signer's own.
    pub fn dedupe_key(&self) -> String {
        let id = match self.payload.get("event_id") {
            Some(Value::Str(event_id)) => event_id.clone(),
            Some(other) => to_canonical(other),
            None => to_canonical(&self.payload),
        };
        format!("{}:{}:{}", self.event_type, self.node_id, id)
    }

    /// The payload of the control message (envelope type = `event_type`), in field order.
    pub fn to_value(&self) -> Value {
        self.fields(true)
    }

    fn fields(&self, all: bool) -> Value {
        let s = |x: &str| Value::Str(x.to_string());
        let mut members = vec![
            ("type", s(&self.event_type)),
            ("payload", self.payload.clone()),
            ("node_id", s(&self.node_id)),
            ("timestamp", Value::Int(self.timestamp)),
        ];
        if all {
            members.push(("signature", s(&self.signature)));
            members.push(("id", s(&self.id)));
        }
        members.push(("version", Value::Int(self.version)));
        object(members)
    }
}

impl Signed for ControlEvent {
    const KIND: &'static str = "control_event";

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

    /// The type must be one of the four, and its actor field must name the signer.
    fn check_rules(&self) -> Result<(), Reject> {
        let kind = self
            .kind()
            .ok_or_else(|| Reject::UnknownEventType(self.event_type.clone()))?;
        let field = kind.actor_field();
        let actor = self.payload_str(field);
        if actor != self.node_id {
            return Err(Reject::ActorMismatch {
                field,
                actor: actor.to_string(),
                signer: self.node_id.clone(),
            });
        }
        Ok(())
    }
}
