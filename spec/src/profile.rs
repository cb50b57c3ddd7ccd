//! NodeProfile (reference §c.3): a node's self-description, signed by the node.

use crate::error::Reject;
use crate::fields::Fields;
use crate::json::{object, Value};
use crate::signed::Signed;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeProfile {
    pub node_id: String,
    pub display_name: String,
    pub bio: String,
    pub website: String,
    pub avatar_url: String,
    pub donation_address: String,
    pub timestamp: i64,
    pub signature: String,
    pub id: String,
    pub schema_version: i64,
}

const PROFILE_FIELDS: [&str; 10] = [
    "node_id",
    "display_name",
    "bio",
    "website",
    "avatar_url",
    "donation_address",
    "timestamp",
    "signature",
    "id",
    "schema_version",
];

impl NodeProfile {
    /// Reads it from a parsed payload (copying it; see [`Self::from_json`] to move it).
    pub fn from_value(value: &Value) -> Result<Self, Reject> {
        Self::from_json(value.clone())
    }

    /// Reads it from a parsed payload, taking the payload apart.
    pub fn from_json(value: Value) -> Result<Self, Reject> {
        let mut f = Fields::new(value, &PROFILE_FIELDS)?;
        Ok(NodeProfile {
            node_id: f.string("node_id")?,
            display_name: f.string_or("display_name", "")?,
            bio: f.string_or("bio", "")?,
            website: f.string_or("website", "")?,
            avatar_url: f.string_or("avatar_url", "")?,
            donation_address: f.string_or("donation_address", "")?,
            timestamp: f.int("timestamp")?,
            signature: f.string("signature")?,
            id: f.string("id")?,
            schema_version: f.int_or("schema_version", 1)?,
        })
    }

    /// The payload of a `profile` message, in dataclass order.
    pub fn to_value(&self) -> Value {
        self.fields(true)
    }

    fn fields(&self, all: bool) -> Value {
        let s = |x: &str| Value::Str(x.to_string());
        let mut members = vec![
            ("node_id", s(&self.node_id)),
            ("display_name", s(&self.display_name)),
            ("bio", s(&self.bio)),
            ("website", s(&self.website)),
            ("avatar_url", s(&self.avatar_url)),
            ("donation_address", s(&self.donation_address)),
            ("timestamp", Value::Int(self.timestamp)),
        ];
        if all {
            members.push(("signature", s(&self.signature)));
            members.push(("id", s(&self.id)));
        }
        members.push(("schema_version", Value::Int(self.schema_version)));
        object(members)
    }
}

impl Signed for NodeProfile {
    const KIND: &'static str = "profile";

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
}
