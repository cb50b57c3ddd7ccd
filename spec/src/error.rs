//! Why a signed object is refused: one typed reason per rule, so callers and tests can tell
//! "forged" from "malformed" from "well-formed but not allowed".

/// The reason a signed object (record, manifest, control event, profile) is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error("not a json object")]
    NotAnObject,
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{0}` is an integer outside the 64-bit range")]
    IntOutOfRange(&'static str),
    #[error("field `{0}` is not a finite number")]
    NonFinite(&'static str),
    #[error("field `{field}` must be {expected}")]
    BadFormat {
        field: &'static str,
        expected: &'static str,
    },
    #[error("invalid status `{0}` (expected keep, discard or crash)")]
    InvalidStatus(String),
    #[error("id mismatch: claimed {claimed}, content hashes to {computed}")]
    IdMismatch { claimed: String, computed: String },
    #[error("invalid signature for signer {signer}")]
    BadSignature { signer: String },
    #[error("unknown control event type `{0}`")]
    UnknownEventType(String),
    #[error("event type `{event}` does not match message type `{envelope}`")]
    TypeMismatch { envelope: String, event: String },
    #[error("`{field}` is {actor} but the event is signed by {signer}")]
    ActorMismatch {
        field: &'static str,
        actor: String,
        signer: String,
    },
}
