//! In-process meshes on 127.0.0.1: nodes converge through sync and gossip; a forged record from
//! a rogue peer is refused, not stored, not forwarded, and costs the rogue its score; oversized
//! requests, unknown protocols and request floods cost the sender a ban, not the node its service.

#![allow(clippy::disallowed_methods)] // this process owns its stores

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{identity, loopback_options, record, TASK};
use futures::StreamExt as _;
use libp2p::gossipsub::IdentTopic;
use libp2p::Multiaddr;
use spore_actors::messages::{GetListenAddrs, GetPeers};
use spore_actors::net::{self, NetConfig};
use spore_actors::node::{Node, Registry};
use spore_actors::Store;
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Signed as _, Status};

struct TestNode {
    _dir: tempfile::TempDir,
    registry: Registry,
    addr: Multiaddr,
}

async fn start_node(seed: u8, peers: Vec<Multiaddr>) -> TestNode {
    start_node_with(loopback_options(seed, peers)).await
}

async fn start_node_with(options: spore_actors::node::NodeOptions) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
    let registry = Node::builder(store, options).spawn().unwrap().registry;
    let addr = wait_for("a listen address", || async {
        registry
            .peers
            .send(GetListenAddrs)
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    let addr = addr.with(libp2p::multiaddr::Protocol::P2p(registry.peer_id));
    TestNode {
        _dir: dir,
        registry,
        addr,
    }
}

/// Polls `check` every 50 ms until it gives a value, for at most 30 s.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(node: &TestNode) -> u64 {
    node.registry
        .store
        .read()
        .unwrap()
        .experiment_count()
        .unwrap()
}

fn chain(n: usize, start_ts: i64) -> Vec<ExperimentRecord> {
    let who = identity(9);
    let mut out: Vec<ExperimentRecord> = Vec::new();
    for i in 0..n {
        let parent = out.last().map(|r| r.id.clone());
        let status = if i % 3 == 2 {
            Status::Discard
        } else {
            Status::Keep
        };
        out.push(record(
            &who,
            parent.as_deref(),
            TASK,
            status,
            1.0 - i as f64 * 0.01,
            start_ts + i as i64,
        ));
    }
    out
}

fn bodies(records: &[ExperimentRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| Message::Experiment(r.clone()).encode_body())
        .collect()
}

#[test]
fn two_nodes_sync_then_gossip_both_ways() {
    actix_rt::System::new().block_on(async {
        let a = start_node(1, vec![]).await;
        let records = chain(30, 1000);
        let summary = a
            .registry
            .publish_local(bodies(&records[..20]))
            .await
            .unwrap();
        assert_eq!(summary.accepted, 20);

        // b joins later: sync brings what a already had
        let b = start_node(2, vec![a.addr.clone()]).await;
        wait_for("b to sync 20 records", || async {
            (count(&b) == 20).then_some(())
        })
        .await;

        // live gossip, a → b and b → a
        a.registry
            .publish_local(bodies(&records[20..25]))
            .await
            .unwrap();
        wait_for("gossip a → b", || async {
            (count(&b) == 25).then_some(())
        })
        .await;
        b.registry
            .publish_local(bodies(&records[25..]))
            .await
            .unwrap();
        wait_for("gossip b → a", || async {
            (count(&a) == 30).then_some(())
        })
        .await;

        let (ra, rb) = (
            a.registry.store.read().unwrap(),
            b.registry.store.read().unwrap(),
        );
        for r in &records {
            assert_eq!(
                ra.experiment_wire(&r.id).unwrap(),
                rb.experiment_wire(&r.id).unwrap()
            );
        }
        assert_eq!(
            ra.frontier_ids(TASK, spore_spec::Goal::Minimize).unwrap(),
            rb.frontier_ids(TASK, spore_spec::Goal::Minimize).unwrap()
        );
        a.registry.shutdown().await;
        b.registry.shutdown().await;
    });
}

#[test]
fn five_nodes_converge() {
    actix_rt::System::new().block_on(async {
        let hub = start_node(10, vec![]).await;
        let mut nodes = vec![];
        for i in 0..4u8 {
            // a line and a star: node i dials the hub and the previous node
            let mut peers = vec![hub.addr.clone()];
            if let Some(prev) = nodes.last() {
                let prev: &TestNode = prev;
                peers.push(prev.addr.clone());
            }
            nodes.push(start_node(11 + i, peers).await);
        }
        let records = chain(40, 5000);
        // each node publishes a slice; children may arrive before parents anywhere
        for (i, part) in records.chunks(10).enumerate() {
            nodes[3 - i]
                .registry
                .publish_local(bodies(part))
                .await
                .unwrap();
        }
        for node in nodes.iter().chain([&hub]) {
            wait_for("every node to hold 40 records", || async {
                (count(node) == 40).then_some(())
            })
            .await;
            assert_eq!(node.registry.store.read().unwrap().held_count().unwrap(), 0);
        }
        for node in nodes.iter().chain([&hub]) {
            node.registry.shutdown().await;
        }
    });
}

#[test]
fn a_forged_record_is_refused_not_forwarded_and_costs_the_sender() {
    actix_rt::System::new().block_on(async {
        let victim = start_node(20, vec![]).await;
        let bystander = start_node(21, vec![victim.addr.clone()]).await;

        // the rogue speaks the protocol but lies: it runs a bare swarm with our behaviour
        let mut rogue = net::build_swarm([66; 32], &NetConfig::default()).unwrap();
        rogue.dial(victim.addr.clone()).unwrap();
        let genuine = chain(1, 9000).remove(0);
        let mut forged = genuine.clone();
        forged.val_bpb = spore_spec::Number::Float(0.01); // better than anything, id unchanged
        let topic = IdentTopic::new(net::TOPIC_EXPERIMENTS);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = 0;
        let rogue_id = *rogue.local_peer_id();
        let victim_peers = victim.registry.peers.clone();
        loop {
            tokio::select! {
                _ = rogue.select_next_some() => {}
                _ = actix_rt::time::sleep(Duration::from_millis(200)) => {
                    // once subscribed, publish a different forgery each time (no dedupe)
                    let mut f = forged.clone();
                    f.description = format!("forged {sent}");
                    let body = Message::Experiment(f).encode_body();
                    if rogue.behaviour_mut().gossipsub.publish(topic.clone(), body.into_bytes()).is_ok() {
                        sent += 1;
                    }
                    let peers = victim_peers.send(GetPeers).await.unwrap();
                    let seen = peers.iter().find(|p| p.peer_id == rogue_id);
                    if seen.is_some_and(|p| p.offence_points >= 1.0 && p.gossip_score.is_some_and(|s| s < 0.0)) {
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "victim never penalised the rogue (sent {sent})");
        }
        assert_eq!(count(&victim), 0, "forged record stored");
        // give gossip time to (not) travel, then check the bystander never got it either
        actix_rt::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(count(&bystander), 0, "forged record forwarded");

        // the victim still serves honest peers
        victim.registry.publish_local(bodies(std::slice::from_ref(&genuine))).await.unwrap();
        wait_for("genuine record at the bystander", || async { (count(&bystander) == 1).then_some(()) }).await;
        victim.registry.shutdown().await;
        bystander.registry.shutdown().await;
    });
}

#[test]
fn garbage_on_the_port_is_dropped_and_the_node_keeps_serving() {
    actix_rt::System::new().block_on(async {
        let victim = start_node(30, vec![]).await;
        let honest = start_node(31, vec![victim.addr.clone()]).await;

        // raw garbage and an absurd length prefix on the TCP port: the Noise handshake fails
        let tcp_port = victim
            .addr
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .unwrap();
        for junk in [vec![0xffu8; 64 * 1024], u32::MAX.to_be_bytes().to_vec()] {
            use tokio::io::AsyncWriteExt as _;
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
                .await
                .unwrap();
            let _ = stream.write_all(&junk).await;
            drop(stream);
        }

        // honest peers are still served
        let records = chain(3, 20_000);
        victim
            .registry
            .publish_local(bodies(&records))
            .await
            .unwrap();
        wait_for("honest peer to get the records", || async {
            (count(&honest) == 3).then_some(())
        })
        .await;
        victim.registry.shutdown().await;
        honest.registry.shutdown().await;
    });
}

/// A bare swarm speaking only `protocol` on request-response (for hostile peers).
fn rogue_swarm(
    seed: u8,
    protocol: &'static str,
) -> libp2p::Swarm<libp2p::request_response::cbor::Behaviour<net::Request, net::Response>> {
    use libp2p::request_response::{self, ProtocolSupport};
    let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::cbor::Behaviour::new(
                [(libp2p::StreamProtocol::new(protocol), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(1024),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// Drives `rogue` until `done` says so (checked every 100 ms), for at most 30 s.
async fn drive_until<B, F, Fut>(rogue: &mut libp2p::Swarm<B>, what: &str, done: F)
where
    B: libp2p::swarm::NetworkBehaviour,
    B::ToSwarm: std::fmt::Debug,
    F: FnMut(&mut libp2p::Swarm<B>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    drive_until_with(rogue, what, |_| {}, done).await
}

/// [`drive_until`], handing each of the swarm's events to `on_event`.
async fn drive_until_with<B, E, F, Fut>(
    rogue: &mut libp2p::Swarm<B>,
    what: &str,
    mut on_event: E,
    mut done: F,
) where
    B: libp2p::swarm::NetworkBehaviour,
    B::ToSwarm: std::fmt::Debug,
    E: FnMut(libp2p::swarm::SwarmEvent<B::ToSwarm>),
    F: FnMut(&mut libp2p::Swarm<B>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            event = rogue.select_next_some() => on_event(event),
            _ = actix_rt::time::sleep(Duration::from_millis(100)) => {
                if done(rogue).await {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// A TCP transport that dials from `source` (libp2p's own binds the unspecified address, so on
/// loopback every dial comes from 127.0.0.1). It does not listen.
struct DialFrom(std::net::Ipv4Addr);

impl libp2p::core::Transport for DialFrom {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = futures::future::BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _: libp2p::core::transport::ListenerId,
        addr: Multiaddr,
    ) -> Result<(), libp2p::core::transport::TransportError<Self::Error>> {
        Err(libp2p::core::transport::TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: libp2p::core::transport::ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: libp2p::core::transport::DialOpts,
    ) -> Result<Self::Dial, libp2p::core::transport::TransportError<Self::Error>> {
        use libp2p::multiaddr::Protocol;
        let mut parts = addr.iter();
        let (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) = (parts.next(), parts.next())
        else {
            return Err(libp2p::core::transport::TransportError::MultiaddrNotSupported(addr));
        };
        let source = self.0;
        Ok(Box::pin(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((source, 0).into())?;
            let stream = socket.connect((ip, port).into()).await?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }))
    }

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<libp2p::core::transport::TransportEvent<Self::ListenerUpgrade, Self::Error>>
    {
        std::task::Poll::Pending
    }
}

/// [`rogue_swarm`] on `/spore/sync/1`, dialling from `source`.
fn swarm_from(
    source: std::net::Ipv4Addr,
    seed: u8,
) -> libp2p::Swarm<libp2p::request_response::cbor::Behaviour<net::Request, net::Response>> {
    use libp2p::core::upgrade::Version;
    use libp2p::core::Transport as _;
    use libp2p::request_response::{self, ProtocolSupport};
    let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            DialFrom(source)
                .upgrade(Version::V1)
                .authenticate(libp2p::noise::Config::new(key).unwrap())
                .multiplex(libp2p::yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|_| {
            request_response::cbor::Behaviour::new(
                [(
                    libp2p::StreamProtocol::new("/spore/sync/1"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build()
}

async fn standing(
    node: &TestNode,
    peer: libp2p::PeerId,
) -> Option<spore_actors::messages::PeerInfo> {
    node.registry
        .peers
        .send(GetPeers)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer)
}

#[test]
fn oversized_requests_unknown_protocols_and_request_floods_cost_the_sender_not_the_node() {
    use libp2p::request_response::{Event, OutboundFailure};
    use spore_actors::net::Request;
    actix_rt::System::new().block_on(async {
        let victim = start_node(40, vec![]).await;
        let honest = start_node(41, vec![victim.addr.clone()]).await;
        let records = chain(51, 30_000);
        victim
            .registry
            .publish_local(bodies(&records[..50]))
            .await
            .unwrap();

        // an unknown protocol: negotiation fails on the rogue's side, nothing else happens
        let mut stranger = rogue_swarm(70, "/spore/unknown/1");
        stranger.dial(victim.addr.clone()).unwrap();
        let victim_id = victim.registry.peer_id;
        let refused = std::rc::Rc::new(std::cell::Cell::new(false));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut asked = false;
        while !refused.get() {
            tokio::select! {
                event = stranger.select_next_some() => match event {
                    libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } if !asked => {
                        asked = true;
                        stranger.behaviour_mut().send_request(&victim_id, Request::Log { after: 0, limit: 10 });
                    }
                    libp2p::swarm::SwarmEvent::Behaviour(Event::OutboundFailure { error: OutboundFailure::UnsupportedProtocols, .. }) => refused.set(true),
                    _ => {}
                },
                _ = actix_rt::time::sleep(Duration::from_millis(100)) => {}
            }
            assert!(Instant::now() < deadline, "unknown protocol was not refused");
        }
        drop(stranger);

        // oversized requests (1 MB, the cap is 64 KiB): unreadable, each an offence, then a ban
        let mut big = rogue_swarm(71, "/spore/sync/1");
        big.dial(victim.addr.clone()).unwrap();
        let big_id = *big.local_peer_id();
        let mut sent = 0;
        drive_until(&mut big, "a ban for oversized requests", |big| {
            if sent < 10 && big.is_connected(&victim_id) {
                big.behaviour_mut().send_request(
                    &victim_id,
                    Request::Artifact { cid: "a".repeat(1_000_000) },
                );
                sent += 1;
            }
            let victim = &victim;
            async move { standing(victim, big_id).await.is_some_and(|p| p.banned) }
        })
        .await;
        drive_until(&mut big, "the oversized sender disconnected", |big| {
            let gone = !big.is_connected(&victim_id);
            async move { gone }
        })
        .await;
        drop(big);

        // a flood: 300 log requests at once, again every 100 ms while connected; an honest node
        // keeps at most 5 in flight
        let mut flood = rogue_swarm(72, "/spore/sync/1");
        flood.dial(victim.addr.clone()).unwrap();
        let flood_id = *flood.local_peer_id();
        drive_until(&mut flood, "a ban for the flood", |flood| {
            if flood.is_connected(&victim_id) {
                for _ in 0..300 {
                    flood.behaviour_mut().send_request(&victim_id, Request::Log { after: 0, limit: 2000 });
                }
            }
            let victim = &victim;
            async move { standing(victim, flood_id).await.is_some_and(|p| p.banned && p.offence_points > 5.9) }
        })
        .await;
        drive_until(&mut flood, "the flooder disconnected", |flood| {
            let gone = !flood.is_connected(&victim_id);
            async move { gone }
        })
        .await;
        // a banned peer that dials again is dropped at once
        flood.dial(victim.addr.clone()).unwrap();
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        drive_until(&mut flood, "the banned peer kept out", |flood| {
            let gone = !flood.is_connected(&victim_id);
            async move { gone }
        })
        .await;

        // the honest peer was served all along and still is
        wait_for("the first 50 at the honest peer", || async { (count(&honest) == 50).then_some(()) }).await;
        let new = victim
            .registry
            .publish_local(bodies(&records[50..]))
            .await
            .unwrap();
        assert_eq!(new.accepted, 1);
        wait_for("a new record at the honest peer", || async { (count(&honest) == 51).then_some(()) }).await;
        let honest_standing = standing(&victim, honest.registry.peer_id).await.unwrap();
        assert_eq!((honest_standing.offence_points, honest_standing.banned), (0.0, false));
        victim.registry.shutdown().await;
        honest.registry.shutdown().await;
    });
}

/// Does `node` hold the artifact `cid`?
fn holds_artifact(node: &TestNode, cid: &str) -> bool {
    node.registry
        .store
        .read()
        .unwrap()
        .artifact(cid)
        .unwrap()
        .is_some()
}

#[test]
fn artifacts_pushed_unasked_are_refused_by_gossip_sync_and_reference_frames() {
    use libp2p::request_response::{Event, Message as RrMessage};
    use spore_actors::net::{Request, Response};
    actix_rt::System::new().block_on(async {
        let mut options = loopback_options(50, vec![]);
        options.legacy_listen = Some("127.0.0.1:0".into());
        let victim = start_node_with(options).await;
        let junk = |what: &str| {
            let code = format!("junk pushed by {what}").into_bytes();
            let cid = spore_spec::crypto::sha256_hex(&code);
            (
                cid.clone(),
                Message::CodeResponse {
                    code_cid: cid,
                    code,
                }
                .encode_body(),
            )
        };

        // 1. by gossip, from a peer speaking the whole protocol
        let (gossiped, body) = junk("gossip");
        let mut rogue = net::build_swarm([67; 32], &NetConfig::default()).unwrap();
        rogue.dial(victim.addr.clone()).unwrap();
        let rogue_id = *rogue.local_peer_id();
        let topic = IdentTopic::new(net::TOPIC_EXPERIMENTS);
        let mut published = false;
        drive_until(&mut rogue, "the gossiped artifact refused", |rogue| {
            if !published {
                published = rogue
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic.clone(), body.clone().into_bytes())
                    .is_ok();
            }
            let victim = &victim;
            async move {
                standing(victim, rogue_id)
                    .await
                    .is_some_and(|p| p.offence_points >= 1.0)
            }
        })
        .await;
        assert!(
            !holds_artifact(&victim, &gossiped),
            "gossiped artifact stored"
        );
        drop(rogue);

        // 2. inside a sync page: the victim syncs from whoever connects; this one answers
        // every log request with an artifact
        let (synced, body) = junk("a sync page");
        let mut server = rogue_swarm(68, "/spore/sync/1");
        server.dial(victim.addr.clone()).unwrap();
        let server_id = *server.local_peer_id();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            tokio::select! {
                event = server.select_next_some() => {
                    if let libp2p::swarm::SwarmEvent::Behaviour(Event::Message {
                        message: RrMessage::Request { request: Request::Log { .. }, channel, .. },
                        ..
                    }) = event
                    {
                        let page = Response::Log { bodies: vec![body.clone()], last: 1, end: true };
                        let _ = server.behaviour_mut().send_response(channel, page);
                    }
                }
                _ = actix_rt::time::sleep(Duration::from_millis(100)) => {
                    if standing(&victim, server_id).await.is_some_and(|p| p.offence_points >= 1.0) {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the sync page's artifact was not refused"
            );
        }
        assert!(
            !holds_artifact(&victim, &synced),
            "artifact from a sync page stored"
        );
        drop(server);

        // 3. a reference-protocol peer's unasked `code_response` frame
        let (framed, body) = junk("a reference frame");
        let legacy = victim
            .registry
            .legacy
            .send(spore_actors::legacy::GetLegacyAddr)
            .await
            .unwrap()
            .unwrap();
        {
            use tokio::io::AsyncWriteExt as _;
            let mut stream = tokio::net::TcpStream::connect(legacy).await.unwrap();
            let frame = spore_spec::wire::encode_frame(body.as_bytes()).unwrap();
            stream.write_all(&frame).await.unwrap();
            // then an honest record on the same connection: stored, so the frame before it was
            // read and handled
            let record = chain(1, 40_000).remove(0);
            let honest = Message::Experiment(record).encode_frame().unwrap();
            stream.write_all(&honest).await.unwrap();
            wait_for("the record after the frame", || async {
                (count(&victim) == 1).then_some(())
            })
            .await;
        }
        assert!(
            !holds_artifact(&victim, &framed),
            "unasked reference artifact stored"
        );
        victim.registry.shutdown().await;
    });
}

/// A rogue peer and an observer, both dialled to `victim` (swarms of `seeds`): once both are in
/// the victim's gossip mesh and `ready()`, the rogue publishes each of `first`, then `last` half a
/// second later. Returns what the observer received, once `last` reached it (at most 30 s), and
/// the rogue's peer id.
async fn gossip_via_rogue(
    victim: &TestNode,
    seeds: (u8, u8),
    config: &NetConfig,
    ready: impl Fn() -> bool,
    first: &[&str],
    last: &str,
) -> (Vec<Vec<u8>>, libp2p::PeerId) {
    let topic = IdentTopic::new(net::TOPIC_EXPERIMENTS);
    let mut rogue = net::build_swarm([seeds.0; 32], config).unwrap();
    let mut observer = net::build_swarm([seeds.1; 32], config).unwrap();
    rogue.dial(victim.addr.clone()).unwrap();
    observer.dial(victim.addr.clone()).unwrap();
    let (mut sent_first, mut sent_last) = (false, false);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = rogue.select_next_some() => {}
            event = observer.select_next_some() => {
                if let libp2p::swarm::SwarmEvent::Behaviour(net::BehaviourEvent::Gossipsub(
                    libp2p::gossipsub::Event::Message { message, .. },
                )) = event
                {
                    seen.push(message.data);
                }
            }
            _ = actix_rt::time::sleep(Duration::from_millis(200)) => {
                let meshed = |s: &libp2p::Swarm<net::Behaviour>| s.behaviour().gossipsub.mesh_peers(&topic.hash()).count() > 0;
                if !sent_first && ready() && meshed(&rogue) && meshed(&observer) {
                    sent_first = first.iter().all(|body| {
                        rogue.behaviour_mut().gossipsub.publish(topic.clone(), body.as_bytes().to_vec()).is_ok()
                    });
                } else if sent_first && !sent_last {
                    actix_rt::time::sleep(Duration::from_millis(500)).await;
                    sent_last = rogue.behaviour_mut().gossipsub.publish(topic.clone(), last.as_bytes().to_vec()).is_ok();
                }
                if seen.iter().any(|m| m == last.as_bytes()) {
                    return (seen, *rogue.local_peer_id());
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new record never reached the observer"
        );
    }
}

#[test]
fn copies_in_other_bytes_and_orphans_are_not_forwarded() {
    actix_rt::System::new().block_on(async {
        let victim = start_node(55, vec![]).await;
        let records = chain(2, 50_000);
        victim
            .registry
            .publish_local(bodies(&records[..1]))
            .await
            .unwrap();
        // the same record in other bytes (a space in the envelope), and a genuinely new one
        let held = bodies(&records[..1]).remove(0);
        let variant = held.replacen("\"payload\":", "\"payload\": ", 1);
        assert_ne!(variant, held);
        let fresh = bodies(&records[1..]).remove(0);
        // and a record whose parent nobody has: held, not passed on
        let orphan = record(
            &identity(9),
            Some(&"e".repeat(64)),
            TASK,
            Status::Keep,
            0.5,
            50_100,
        );
        let orphan = bodies(&[orphan]).remove(0);

        let (seen, rogue_id) = gossip_via_rogue(
            &victim,
            (68, 69),
            &NetConfig::default(),
            || true,
            &[&variant, &orphan],
            &fresh,
        )
        .await;
        assert!(
            !seen.iter().any(|m| m == variant.as_bytes()),
            "the variant was forwarded"
        );
        assert!(
            !seen.iter().any(|m| m == orphan.as_bytes()),
            "the orphan was forwarded"
        );
        assert_eq!(count(&victim), 2);
        let held = victim.registry.store.read().unwrap().held_count().unwrap();
        assert_eq!(held, 1, "the orphan is held");
        let rogue_standing = standing(&victim, rogue_id).await.unwrap();
        assert_eq!(
            rogue_standing.offence_points, 0.0,
            "a variant is not an offence"
        );
        victim.registry.shutdown().await;
    });
}

#[test]
fn an_old_object_replayed_by_gossip_is_not_passed_on() {
    actix_rt::System::new().block_on(async {
        // a short window, so the test need not wait ten minutes
        let window = Duration::from_secs(2);
        let mut options = loopback_options(56, vec![]);
        options.net.gossip_replay_window = window;
        let victim = start_node_with(options).await;
        let records = chain(2, 60_000);
        victim
            .registry
            .publish_local(bodies(&records[..1]))
            .await
            .unwrap();
        // the exact bytes the victim stored, once its gossipsub and router forgot them
        let replay = bodies(&records[..1]).remove(0);
        let fresh = bodies(&records[1..]).remove(0);
        let config = NetConfig {
            gossip_replay_window: window,
            ..NetConfig::default()
        };
        let stored_at = Instant::now();
        let old = || stored_at.elapsed() > window + Duration::from_secs(1);
        let (seen, _) = gossip_via_rogue(&victim, (78, 79), &config, old, &[&replay], &fresh).await;
        assert!(
            !seen.iter().any(|m| m == replay.as_bytes()),
            "the replayed record was passed on"
        );
        assert_eq!(count(&victim), 2);
        victim.registry.shutdown().await;
    });
}

/// Drives `swarm` in a task of its own, counting its connections to `to` now open (`open`) and
/// its dials that failed (`failed`). Dropping the task's handle (abort) drops the swarm.
fn drive_counting(
    mut swarm: libp2p::Swarm<
        impl libp2p::swarm::NetworkBehaviour<ToSwarm: std::fmt::Debug> + 'static,
    >,
    to: libp2p::Multiaddr,
    open: std::rc::Rc<std::cell::Cell<i32>>,
    failed: std::rc::Rc<std::cell::Cell<i32>>,
) -> actix_rt::task::JoinHandle<()> {
    use libp2p::swarm::SwarmEvent;
    actix_rt::spawn(async move {
        swarm.dial(to).unwrap();
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => open.set(open.get() + 1),
                SwarmEvent::ConnectionClosed { .. } => open.set(open.get() - 1),
                SwarmEvent::OutgoingConnectionError { .. } => failed.set(failed.get() + 1),
                _ => {}
            }
        }
    })
}

#[test]
fn one_address_with_fresh_peer_ids_cannot_take_every_inbound_slot() {
    use std::cell::Cell;
    use std::rc::Rc;
    actix_rt::System::new().block_on(async {
        let mut options = loopback_options(50, vec![]);
        options.net.max_inbound_per_ip = 3;
        let victim = start_node_with(options).await;
        let records = chain(20, 40_000);
        victim
            .registry
            .publish_local(bodies(&records))
            .await
            .unwrap();
        let connected_here = || async {
            let peers = victim.registry.peers.send(GetPeers).await.unwrap();
            peers.iter().filter(|p| p.connected).count()
        };

        // five strangers on 127.0.0.1, each with a key of its own: three get in
        let (open, failed) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let mut strangers: Vec<_> = (0..5u8)
            .map(|i| {
                let swarm = rogue_swarm(80 + i, "/spore/sync/1");
                drive_counting(swarm, victim.addr.clone(), open.clone(), failed.clone())
            })
            .collect();
        wait_for("three strangers in, two refused", || async {
            (open.get() == 3 && failed.get() == 2).then_some(())
        })
        .await;
        assert_eq!(connected_here().await, 3);

        // an honest peer on another loopback address is let in and served
        let mut honest = swarm_from(std::net::Ipv4Addr::new(127, 0, 0, 2), 60);
        honest.dial(victim.addr.clone()).unwrap();
        let victim_id = victim.registry.peer_id;
        let served = Rc::new(Cell::new(0));
        let mut asked = false;
        let served_in = served.clone();
        drive_until_with(
            &mut honest,
            "the honest peer served",
            move |event| {
                if let libp2p::swarm::SwarmEvent::Behaviour(
                    libp2p::request_response::Event::Message {
                        message:
                            libp2p::request_response::Message::Response {
                                response: net::Response::Log { bodies, .. },
                                ..
                            },
                        ..
                    },
                ) = event
                {
                    served_in.set(bodies.len());
                }
            },
            |honest| {
                if !asked && honest.is_connected(&victim_id) {
                    asked = true;
                    honest.behaviour_mut().send_request(
                        &victim_id,
                        net::Request::Log {
                            after: 0,
                            limit: 100,
                        },
                    );
                }
                let served = served.get();
                async move { served == 20 }
            },
        )
        .await;
        assert_eq!(connected_here().await, 4);

        // a stranger that leaves frees its address's slot for the next
        strangers.remove(0).abort();
        wait_for("the first stranger gone", || async {
            (connected_here().await == 3).then_some(())
        })
        .await;
        let late = Rc::new(Cell::new(0));
        strangers.push(drive_counting(
            rogue_swarm(90, "/spore/sync/1"),
            victim.addr.clone(),
            late.clone(),
            failed.clone(),
        ));
        wait_for("the late stranger in", || async {
            (late.get() == 1).then_some(())
        })
        .await;
        assert_eq!(connected_here().await, 4);
        assert_eq!(failed.get(), 2);

        for stranger in strangers {
            stranger.abort();
        }
        victim.registry.shutdown().await;
    });
}

/// The sync codec of a peer that sends its requests and never reads an answer: the responder's
/// writes stall once the stream's window is full.
#[derive(Clone, Default)]
struct NeverReads(net::SyncCodec);

impl libp2p::request_response::Codec for NeverReads {
    type Protocol = libp2p::StreamProtocol;
    type Request = net::Request;
    type Response = net::Response;

    async fn read_request<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<net::Request>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        self.0.read_request(p, io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
    ) -> std::io::Result<net::Response>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        futures::future::pending().await
    }

    async fn write_request<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
        r: net::Request,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        self.0.write_request(p, io, r).await
    }

    async fn write_response<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
        r: net::Response,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        self.0.write_response(p, io, r).await
    }
}

fn never_reading_swarm(seed: u8) -> libp2p::Swarm<libp2p::request_response::Behaviour<NeverReads>> {
    use libp2p::request_response::{self, ProtocolSupport};
    let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                NeverReads::default(),
                [(
                    libp2p::StreamProtocol::new("/spore/sync/1"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(120)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

#[test]
fn peers_that_ask_for_log_pages_and_never_read_cannot_keep_others_waiting() {
    use libp2p::request_response::{Event, Message as RrMessage};
    use net::{Request, Response};
    actix_rt::System::new().block_on(async {
        let victim = start_node(52, vec![]).await;
        let victim_id = victim.registry.peer_id;
        // records with a 2 KB diff each: a page is its byte cap (4 MiB) before its item cap
        let who = identity(9);
        let mut records: Vec<ExperimentRecord> = Vec::new();
        for i in 0..4_000 {
            let parent = records.last().map(|r| r.id.clone());
            let mut r = record(&who, parent.as_deref(), TASK, Status::Keep, 1.0, 50_000 + i);
            r.diff = format!("{i}\n{}", "+".repeat(2_000));
            r.sign_with(&who);
            records.push(r);
        }
        victim
            .registry
            .publish_local(bodies(&records))
            .await
            .unwrap();

        // eight peer ids on one address (its connection cap) each ask for eight full pages,
        // as many as a peer may have in flight, then stop reading
        let mut slow: Vec<_> = (0..8u8).map(|i| never_reading_swarm(100 + i)).collect();
        for rogue in &mut slow {
            rogue.dial(victim.addr.clone()).unwrap();
        }
        let mut asked = 0;
        while asked < slow.len() {
            let rogue = &mut slow[asked];
            drive_until(rogue, "a slow reader connected", |rogue| {
                let connected = rogue.is_connected(&victim_id);
                async move { connected }
            })
            .await;
            for _ in 0..8 {
                rogue.behaviour_mut().send_request(
                    &victim_id,
                    Request::Log {
                        after: 0,
                        limit: 2_000,
                    },
                );
            }
            asked += 1;
        }
        // let every request reach the node (pages start to be written, and stall)
        for rogue in &mut slow {
            let deadline = Instant::now() + Duration::from_millis(300);
            drive_until(rogue, "requests written", |_| async move {
                Instant::now() > deadline
            })
            .await;
        }

        // 64 pages of 4 MiB are twice the budget of all peers together; the address gets a
        // quarter of it, and a peer elsewhere is served at once
        let mut honest = swarm_from(std::net::Ipv4Addr::new(127, 0, 0, 3), 61);
        honest.dial(victim.addr.clone()).unwrap();
        let answer = std::rc::Rc::new(std::cell::RefCell::new(None));
        let answer_in = answer.clone();
        let mut sent = false;
        drive_until_with(
            &mut honest,
            "the honest peer's page",
            move |event| {
                if let libp2p::swarm::SwarmEvent::Behaviour(Event::Message {
                    message: RrMessage::Response { response, .. },
                    ..
                }) = event
                {
                    *answer_in.borrow_mut() = Some(response);
                }
            },
            |honest| {
                if !sent && honest.is_connected(&victim_id) {
                    sent = true;
                    honest.behaviour_mut().send_request(
                        &victim_id,
                        Request::Log {
                            after: 0,
                            limit: 2_000,
                        },
                    );
                }
                let done = answer.borrow().is_some();
                async move { done }
            },
        )
        .await;
        match answer.borrow_mut().take().unwrap() {
            Response::Log { bodies, .. } => assert!(bodies.len() > 1_000, "{}", bodies.len()),
            other => panic!("the honest peer was not served: {other:?}"),
        }
        // the node answers its operator at once throughout
        let asked_at = Instant::now();
        victim.registry.peers.send(GetPeers).await.unwrap();
        assert!(asked_at.elapsed() < Duration::from_secs(1));
        // no slow reader was counted an offence: asking is not wrong, only not reading
        for rogue in &slow {
            let standing = standing(&victim, *rogue.local_peer_id()).await.unwrap();
            assert!(!standing.banned);
        }
        drop(slow);
        victim.registry.shutdown().await;
    });
}

#[test]
fn a_stranger_racing_a_task_root_loses_on_every_node_whatever_came_first() {
    use spore_spec::TaskManifest;
    actix_rt::System::new().block_on(async {
        let creator = identity(30);
        let stranger = identity(31);
        let mut manifest = TaskManifest {
            name: "raced".into(),
            task_type: "ml_train".into(),
            metric: "val_bpb".into(),
            goal: "minimize".into(),
            created_by: creator.node_id(),
            timestamp: 60_000,
            version: 1,
            ..Default::default()
        };
        manifest.sign_with(&creator);
        let task = manifest.task_id.clone();
        let theirs = record(&stranger, None, &task, Status::Keep, 0.5, 60_001);
        let theirs_child = record(
            &stranger,
            Some(&theirs.id),
            &task,
            Status::Keep,
            0.4,
            60_002,
        );
        let ours = record(&creator, None, &task, Status::Keep, 1.0, 60_003);
        let ours_child = record(&creator, Some(&ours.id), &task, Status::Keep, 0.9, 60_004);
        let one = |m: Message| vec![m.encode_body()];

        let b = start_node(56, vec![]).await;
        let a = start_node(55, vec![b.addr.clone()]).await;
        wait_for("a and b connected", || async {
            let peers = a.registry.peers.send(GetPeers).await.unwrap();
            peers.iter().any(|p| p.connected).then_some(())
        })
        .await;
        // the stranger's tree, before any manifest: both nodes take it, as the reference would
        a.registry
            .publish_local(bodies(&[theirs.clone(), theirs_child.clone()]))
            .await
            .unwrap();
        wait_for("the stranger's tree at b", || async {
            (count(&b) == 2).then_some(())
        })
        .await;
        // the creator's root reaches b before its manifest: it waits there
        let held = b
            .registry
            .publish_local(one(Message::Experiment(ours.clone())))
            .await
            .unwrap();
        assert_eq!(held.held, 1);
        // the manifest, at b: b drops the stranger's tree and takes the creator's root; a gets
        // the manifest and the root from b
        let out = b
            .registry
            .publish_local(one(Message::Task(manifest.clone())))
            .await
            .unwrap();
        assert_eq!(out.accepted, 2, "{out:?}");
        b.registry
            .publish_local(one(Message::Experiment(ours_child.clone())))
            .await
            .unwrap();
        let tree = |node: &TestNode| {
            let r = node.registry.store.read().unwrap();
            let mut ids = r.task_record_ids(&task).unwrap();
            ids.sort();
            ids
        };
        let mut expected = vec![ours.id.clone(), ours_child.id.clone()];
        expected.sort();
        for node in [&a, &b] {
            wait_for("the creator's tree alone", || async {
                (tree(node) == expected).then_some(())
            })
            .await;
        }
        // the stranger sends its tree again: refused everywhere now
        let again = a
            .registry
            .publish_local(bodies(std::slice::from_ref(&theirs)))
            .await
            .unwrap();
        assert_eq!(again.rejected, 1);
        // a newcomer syncing from a ends with the same tree
        let c = start_node(57, vec![a.addr.clone()]).await;
        wait_for("the newcomer's tree", || async {
            (tree(&c) == expected).then_some(())
        })
        .await;
        for node in [a, b, c] {
            assert_eq!(count(&node), 2);
            node.registry.shutdown().await;
        }
    });
}
