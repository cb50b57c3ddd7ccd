//! In-process meshes on 127.0.0.1: nodes converge through sync and gossip; a forged record from
//! a rogue peer is refused, not stored, not forwarded, and costs the rogue its score.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{identity, record, TASK};
use futures::StreamExt as _;
use libp2p::gossipsub::IdentTopic;
use libp2p::Multiaddr;
use spore_actors::messages::{GetListenAddrs, GetPeers};
use spore_actors::net::{self, NetConfig};
use spore_actors::node::{self, NodeOptions, Registry};
use spore_actors::Store;
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Status};

struct TestNode {
    _dir: tempfile::TempDir,
    registry: Registry,
    addr: Multiaddr,
}

async fn start_node(seed: u8, peers: Vec<Multiaddr>) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
    let registry = node::start(
        store,
        NodeOptions {
            seed: [seed; 32],
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            peers,
            pinned_task: None,
            net: NetConfig {
                resync_interval: Duration::from_secs(1),
                ..NetConfig::default()
            },
        },
    )
    .unwrap();
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
                    if seen.is_some_and(|p| p.offences >= 1 && p.gossip_score.is_some_and(|s| s < 0.0)) {
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
