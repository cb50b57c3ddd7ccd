//! spore-spec: the Spore Mesh protocol as code, byte-compatible with the reference (sporemesh
//! 0.6.0). Signed objects, canonical JSON, ids, Ed25519 signatures, wire frames and messages,
//! validation with typed reasons. No IO, no async.

pub mod control;
pub mod crypto;
pub mod error;
pub mod experiment;
mod fields;
pub mod hardware;
pub mod json;
pub mod object;
pub mod profile;
pub mod signed;
pub mod task;
pub mod wire;

pub use control::{ControlEvent, ControlKind};
pub use crypto::Identity;
pub use error::Reject;
pub use experiment::{ExperimentRecord, Status};
pub use fields::Number;
pub use json::Value;
pub use object::SignedObject;
pub use profile::NodeProfile;
pub use signed::Signed;
pub use task::{Goal, TaskManifest};
pub use wire::{Message, WireError};
