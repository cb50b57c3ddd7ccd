//! Node profiles: the newest signed profile of each node.

use redb::ReadableTable;
use spore_spec::json;
use spore_spec::NodeProfile;

use super::{Reader, StoreError, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileOutcome {
    Accepted,
    Duplicate,
    /// The stored profile of this node is newer.
    Stale,
}

impl Writer<'_> {
    /// Stores a verified profile unless the stored one is newer or the same (reference §c.3:
    /// a tie on timestamp with a different id replaces).
    pub fn insert_profile(&mut self, profile: &NodeProfile) -> Result<ProfileOutcome, StoreError> {
        let table = &mut self.t.profiles;
        if let Some(bytes) = table.get(profile.node_id.as_str())? {
            let stored = parse_profile(bytes.value())?;
            if stored.id == profile.id {
                return Ok(ProfileOutcome::Duplicate);
            }
            if stored.timestamp > profile.timestamp {
                return Ok(ProfileOutcome::Stale);
            }
        }
        let bytes = json::to_wire(&profile.to_value()).into_bytes();
        table.insert(profile.node_id.as_str(), bytes.as_slice())?;
        self.append_log(super::LogKind::Profile, &profile.node_id)?;
        Ok(ProfileOutcome::Accepted)
    }
}

impl Reader {
    pub fn profile(&self, node_id: &str) -> Result<Option<NodeProfile>, StoreError> {
        let table = &self.t.profiles;
        let bytes = table.get(node_id)?;
        bytes.map(|b| parse_profile(b.value())).transpose()
    }

    pub fn profiles(&self) -> Result<Vec<NodeProfile>, StoreError> {
        let table = &self.t.profiles;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            out.push(parse_profile(v.value())?);
        }
        Ok(out)
    }
}

fn parse_profile(bytes: &[u8]) -> Result<NodeProfile, StoreError> {
    super::codec::parse_stored(bytes, "profiles_v1", NodeProfile::from_json)
}
