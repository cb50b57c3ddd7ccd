//! The libp2p side of the node: transport (TCP + Noise + Yamux), the behaviours, the topics and
//! the request-response protocol used for sync and artifacts.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite};

use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, identify, kad, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};

/// Gossip topics, one per object kind.
pub const TOPIC_EXPERIMENTS: &str = "spore/experiments/1";
pub const TOPIC_TASKS: &str = "spore/tasks/1";
pub const TOPIC_CONTROL: &str = "spore/control/1";
pub const TOPIC_PROFILES: &str = "spore/profiles/1";
pub const TOPICS: [&str; 4] = [
    TOPIC_EXPERIMENTS,
    TOPIC_TASKS,
    TOPIC_CONTROL,
    TOPIC_PROFILES,
];

/// The topic a message type travels on.
pub fn topic_for(message_type: &str) -> &'static str {
    match message_type {
        "experiment" => TOPIC_EXPERIMENTS,
        "task" => TOPIC_TASKS,
        "profile" => TOPIC_PROFILES,
        _ => TOPIC_CONTROL,
    }
}

/// Connections this node dials (its configured peers), kept apart from the inbound ones.
pub const OUTBOUND_RESERVE: u32 = 64;
/// Largest gossip message and sync page (a frame of the reference protocol is at most 10 MiB).
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Objects per sync page and bytes per page; a page is one response.
pub const SYNC_PAGE_ITEMS: usize = 2_000;
pub const SYNC_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A request on `/spore/sync/1`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Request {
    /// Objects of the responder's log after `after`, at most `limit`.
    Log { after: u64, limit: u32 },
    /// The artifact whose SHA-256 is `cid`.
    Artifact { cid: String },
    /// Never sent: what [`SyncCodec`] makes of a request it cannot read (over the size cap, or
    /// not a request), so PeerManager learns who sent it.
    #[serde(skip)]
    Unreadable(String),
}

/// Largest request on `/spore/sync/1`.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// The codec of `/spore/sync/1`: CBOR with size caps. libp2p drops a request it cannot read
/// without telling anyone; this codec hands it on as [`Request::Unreadable`] instead, so the
/// sender can be counted an offence.
#[derive(Clone)]
pub struct SyncCodec {
    inner: request_response::cbor::codec::Codec<Request, Response>,
}

impl Default for SyncCodec {
    fn default() -> Self {
        SyncCodec {
            inner: request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_REQUEST_BYTES)
                .set_response_size_maximum(MAX_MESSAGE_BYTES as u64 + 1024 * 1024),
        }
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(MAX_REQUEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .await?;
        if bytes.len() as u64 > MAX_REQUEST_BYTES {
            return Ok(Request::Unreadable(format!(
                "over the {MAX_REQUEST_BYTES}-byte cap"
            )));
        }
        let mut cursor = futures::io::Cursor::new(bytes);
        Ok(self
            .inner
            .read_request(protocol, &mut cursor)
            .await
            .unwrap_or_else(|e| Request::Unreadable(format!("not a request: {e}"))))
    }

    async fn read_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.inner.read_response(protocol, io).await
    }

    async fn write_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.inner.write_request(protocol, io, request).await
    }

    async fn write_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.inner.write_response(protocol, io, response).await
    }
}

/// A response on `/spore/sync/1`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Response {
    /// Frame bodies in log order; `last` is the sequence number of the last one, `end` says
    /// the responder had nothing more.
    Log {
        bodies: Vec<String>,
        last: u64,
        end: bool,
    },
    /// The artifact's bytes, or `None` when the responder does not have it.
    Artifact { cid: String, bytes: Option<Vec<u8>> },
    /// The request was refused (malformed, or too many from this peer).
    Refused { reason: String },
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub per_address: crate::per_address::PerAddressLimit,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

impl Response {
    /// About how many bytes this response takes in memory (its bodies or artifact).
    pub fn size(&self) -> usize {
        match self {
            Response::Log { bodies, .. } => bodies.iter().map(|b| b.len() + 24).sum::<usize>() + 64,
            Response::Artifact { cid, bytes } => {
                cid.len() + bytes.as_ref().map_or(0, Vec::len) + 64
            }
            Response::Refused { reason } => reason.len() + 64,
        }
    }
}

/// Settings of the transport and behaviours.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub mdns: bool,
    /// Addresses on loopback, private and link-local networks that peers report (identify)
    /// are kept and told to others ([`crate::addresses`]).
    pub allow_local_peers: bool,
    pub max_connections: u32,
    pub max_connections_per_peer: u32,
    /// Inbound connections one address (IPv4, or IPv6 /64) may hold, pending or established.
    pub max_inbound_per_ip: u32,
    pub request_timeout: Duration,
    /// How often each connected peer's log is checked for anything gossip missed.
    pub resync_interval: Duration,
    /// Gossip passes an object on only this soon after it was first stored here, and
    /// gossipsub remembers message ids as long: the exact bytes of an old object, replayed,
    /// travel no further (a copy within the window is a duplicate gossipsub drops itself).
    pub gossip_replay_window: Duration,
    /// How hard artifacts are pulled from peers (both transports).
    pub fetch: crate::artifact_fetcher::FetchLimits,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            mdns: false,
            allow_local_peers: false,
            max_connections: 256,
            max_connections_per_peer: 2,
            max_inbound_per_ip: 8,
            request_timeout: Duration::from_secs(60),
            resync_interval: Duration::from_secs(10),
            gossip_replay_window: Duration::from_secs(600),
            fetch: Default::default(),
        }
    }
}

/// Builds the behaviour for `key` (also used by tests that play a hostile peer).
pub fn behaviour(key: &Keypair, config: &NetConfig) -> Result<Behaviour, String> {
    let peer_id = key.public().to_peer_id();
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(500))
        .validation_mode(ValidationMode::Strict)
        // Hold every message until the router has checked it (validate, then forward).
        .validate_messages()
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .duplicate_cache_time(config.gossip_replay_window)
        // Same bytes, same message, whoever publishes them.
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(spore_spec::crypto::sha256_hex(&m.data))
        })
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(|e| format!("gossipsub: {e}"))?;
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in TOPICS {
        // Score what we can judge: invalid messages cost a lot, first deliveries earn a little.
        // Mesh-delivery quotas (P3) are off: on a quiet research network honest peers deliver
        // few messages, and the default quota would push them below the gossip threshold.
        let topic_params = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 100.0,
            first_message_deliveries_weight: 1.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        params
            .topics
            .insert(IdentTopic::new(topic).hash(), topic_params);
    }
    let thresholds = gossipsub::PeerScoreThresholds::default();
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(|e| format!("gossipsub scoring: {e}"))?;
    for topic in TOPICS {
        gossipsub
            .subscribe(&IdentTopic::new(topic))
            .map_err(|e| format!("subscribe {topic}: {e}"))?;
    }

    let sync = request_response::Behaviour::with_codec(
        SyncCodec::default(),
        [(StreamProtocol::new("/spore/sync/1"), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            // a stream is held from the request until its response is written. Room for more
            // than a peer may have in flight (8): the requests past that reach the peer table
            // and are refused as offences (past this, libp2p drops streams unread, and a flood
            // would cost its sender nothing); yamux caps all streams of a connection at 512
            .with_max_concurrent_streams(64),
    );
    let mut kad_config = kad::Config::new(StreamProtocol::new("/spore/kad/1"));
    // only addresses the peer manager checked go into the table (see `crate::addresses`)
    kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    kad.set_mode(Some(kad::Mode::Server));
    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .map_err(|e| format!("mdns: {e}"))?,
        )
    } else {
        None
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        // strangers dialling in cannot take the share this node's own dials (its configured
        // peers: the mesh dials nobody else) need
        .with_max_established_incoming(Some(
            config.max_connections.saturating_sub(OUTBOUND_RESERVE),
        ))
        .with_max_established_outgoing(Some(OUTBOUND_RESERVE))
        .with_max_pending_outgoing(Some(OUTBOUND_RESERVE))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(64));
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        per_address: crate::per_address::PerAddressLimit::new(config.max_inbound_per_ip),
        gossipsub,
        sync,
        identify: identify::Behaviour::new(identify::Config::new("/spore/1".into(), key.public())),
        ping: ping::Behaviour::new(ping::Config::new()),
        kad,
        mdns: Toggle::from(mdns),
    })
}

/// The node's swarm, with the libp2p identity made from the node's Ed25519 seed. Must be called
/// inside a tokio runtime (the actix System is one).
pub fn build_swarm(seed: [u8; 32], config: &NetConfig) -> Result<Swarm<Behaviour>, String> {
    let key = Keypair::ed25519_from_bytes(seed).map_err(|e| format!("identity: {e}"))?;
    let config = config.clone();
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("transport: {e}"))?
        .with_behaviour(move |key| {
            behaviour(key, &config)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })
        })
        .map_err(|e| format!("behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build())
}
