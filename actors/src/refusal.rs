//! Why an inbound object was refused, and how much that weighs against the peer that sent it.
//! (Its own file: the messages carry it and the ingest makes it.)

/// Why an inbound object was refused. The kind says what was wrong and so how much it weighs
/// against the peer that sent it ([`IngestError::severity`]), on either transport.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not a frame of the protocol: not JSON, a bad envelope, a message that carries no object.
    #[error("{}", Capped(.0))]
    Wire(String),
    /// A signed object that fails its checks: id, signature, schema, the kind's rules.
    #[error("{}", Capped(.0))]
    Object(String),
    /// A valid object that can never join the graph or count (a second root, a child naming
    /// another task, an event of a foreign class): possibly honest disagreement.
    #[error("{}", Capped(.0))]
    Lineage(String),
    /// Artifact bytes that do not hash to their cid, or too large.
    #[error("artifact: {}", Capped(.0))]
    Artifact(String),
    /// Requests beyond the peer's budget.
    #[error("{}", Capped(.0))]
    Rate(String),
    /// A valid object this node has no room for now (the held-record pool, or its signer's
    /// share of it, is full): no fault of the peer that relayed it (a reference node relays
    /// every signed record), so it costs that peer nothing.
    #[error("{}", Capped(.0))]
    Full(String),
    /// A valid object that lost to a rule every node applies alike, which an honest relay may
    /// still pass on: a root its task's manifest does not allow (a reference node keeps the
    /// first root it saw and relays it), or a root that waited for the manifest and lost.
    /// Costs the peer nothing.
    #[error("{}", Capped(.0))]
    Superseded(String),
}

/// A reason as logs and replies show it: reasons can quote what a stranger sent, so at most
/// [`MAX_REASON_BYTES`] of one are shown, with the full length.
pub struct Capped<'a>(pub &'a str);

/// Bytes of a reason shown at most.
pub const MAX_REASON_BYTES: usize = 300;

impl std::fmt::Display for Capped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= MAX_REASON_BYTES {
            return f.write_str(self.0);
        }
        let mut end = MAX_REASON_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

/// How much an offence weighs against its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// No fault of the sender's.
    None,
    /// What an honest peer may send (it disagrees on lineage): half of a serious offence.
    Minor,
    /// What no honest peer sends: forged or malformed data, floods.
    Serious,
}

impl Severity {
    /// Offence points: a serious offence counts 2, a minor one 1 (the ban thresholds are set in
    /// these points: `peer_score::MESH_BAN_AT` and the legacy bridge's limit).
    pub fn points(self) -> u32 {
        match self {
            Severity::None => 0,
            Severity::Minor => 1,
            Severity::Serious => 2,
        }
    }
}

impl IngestError {
    pub fn severity(&self) -> Severity {
        match self {
            IngestError::Full(_) | IngestError::Superseded(_) => Severity::None,
            IngestError::Lineage(_) => Severity::Minor,
            IngestError::Wire(_)
            | IngestError::Object(_)
            | IngestError::Artifact(_)
            | IngestError::Rate(_) => Severity::Serious,
        }
    }
}

/// Offence points of everything `problems` holds.
pub fn points(problems: &[IngestError]) -> u32 {
    problems.iter().map(|p| p.severity().points()).sum()
}

/// The points of the worst of `problems` (one offence for a whole batch, such as a sync page).
pub fn worst_points(problems: &[IngestError]) -> u32 {
    problems
        .iter()
        .map(|p| p.severity().points())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_shown_capped_at_a_char_boundary() {
        let short = IngestError::Object("bad id".into());
        assert_eq!(short.to_string(), "bad id");
        let long = IngestError::Wire(format!("x{}", "é".repeat(400)));
        let shown = long.to_string();
        assert!(shown.len() < MAX_REASON_BYTES + 30, "{}", shown.len());
        assert!(shown.ends_with("… (801 bytes)"), "{shown}");
    }
}
