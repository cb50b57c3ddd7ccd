//! Typed messages between the actors. Each has its reply type beside it.

use actix::Message;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

/// Where an inbound object came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Live gossip, held by gossipsub until validated.
    Gossip {
        source: PeerId,
        message_id: MessageId,
    },
    /// A page of a sync response (never re-gossiped: peers sync themselves).
    Sync { source: PeerId },
    /// This node (CLI, research loop): stored, then published.
    Local,
    /// A connection of the legacy bridge (a reference 0.6.0 peer): stored, then published on
    /// the mesh and sent to the other legacy peers.
    Legacy {
        conn: u64,
        /// The peer's address (what its standing and artifact requests go by).
        addr: Option<std::net::SocketAddr>,
    },
}

/// Frame bodies (`{"type":…,"payload":…}`) to check, store and, if new, pass on.
#[derive(Message)]
#[rtype(result = "IngestSummary")]
pub struct Ingest {
    pub origin: Origin,
    pub bodies: Vec<String>,
    /// For sync pages: the responder's log range the page covers, `(after, last)`.
    pub sync_range: Option<(u64, u64)>,
}

/// What happened to the bodies of one [`Ingest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub accepted: u64,
    pub held: u64,
    pub duplicates: u64,
    /// Of the duplicates, those not passed on by gossip: objects that lost a dedupe rule (an
    /// event id already taken, a profile older than the one held) and, for gossip, copies in
    /// other bytes than the canonical ones (whitespace, key order, escapes, extra envelope
    /// members; found by the router, off the writer's thread).
    pub variants: u64,
    pub rejected: u64,
    /// One per rejected body, with its kind and reason.
    pub problems: Vec<crate::refusal::IngestError>,
    /// For a sync page: whether the peer's cursor moved to the page's end (false when the
    /// cursor was not where the page started, e.g. an earlier page failed).
    pub cursor_advanced: bool,
}

/// PeerManager: publish a frame body on its topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub message_type: String,
    pub body: String,
}

/// PeerManager: tell gossipsub what validation decided.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Validated {
    pub source: PeerId,
    pub message_id: MessageId,
    pub acceptance: MessageAcceptance,
}

/// PeerManager: a peer sent something invalid.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Penalize {
    pub peer: PeerId,
    pub reason: String,
    /// Offence points ([`crate::refusal::Severity::points`]).
    pub points: u32,
}

/// PeerManager: what the node knows about its peers.
#[derive(Message)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct GetPeers;

#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub connected: bool,
    /// gossipsub's score of the peer (negative after invalid messages).
    pub gossip_score: Option<f64>,
    /// Offence points, decayed (`peer_score`).
    pub offence_points: f64,
    pub banned: bool,
}

/// PeerManager: the addresses this node listens on.
#[derive(Message)]
#[rtype(result = "Vec<libp2p::Multiaddr>")]
pub struct GetListenAddrs;

/// FrontierTracker / TaskRegistry: objects were stored (ids by kind).
#[derive(Message, Clone, Debug, Default)]
#[rtype(result = "()")]
pub struct Stored {
    pub experiments: Vec<String>,
    /// The task of each of `experiments`, in the same order.
    pub experiment_tasks: Vec<String>,
    pub tasks: Vec<String>,
    pub control_events: Vec<String>,
    /// `(event type, record it names)` of each of `control_events`, in the same order.
    pub control_subjects: Vec<(String, String)>,
    pub profiles: Vec<String>,
}

/// Any actor: stop cleanly.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Tell the acceptance gossipsub needs from an ingest outcome. A valid object this node already
/// had (it came by sync, or by another gossip message) is still accepted, so gossipsub forwards
/// it: ignoring it would cut the gossip path for every peer behind this node, which would then
/// wait for their next re-sync (the propagation tail seen in issue #3's benchmark). Gossipsub's
/// own duplicate cache stops loops.
pub fn acceptance(valid: bool, rejected: bool) -> MessageAcceptance {
    if rejected {
        MessageAcceptance::Reject
    } else if valid {
        MessageAcceptance::Accept
    } else {
        MessageAcceptance::Ignore
    }
}

/// GossipRouter: newly stored objects (frame bodies) to send to every legacy peer except the
/// one they came from.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward {
    pub except: Option<u64>,
    pub bodies: Vec<String>,
}

/// A connection sent invalid objects or frames.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Offence {
    pub conn: u64,
    /// Offence points ([`crate::refusal::Severity::points`]).
    pub points: u32,
    pub reason: String,
}
