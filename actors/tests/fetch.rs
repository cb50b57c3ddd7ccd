//! One artifact fetcher for both transports, in-process on 127.0.0.1: a node connected to a
//! libp2p peer and to a reference-protocol peer gets each artifact from whichever has it,
//! starting with the peer it prefers and falling back across transports in both directions.

#![allow(clippy::disallowed_methods)] // this process owns its stores

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback_options;
use libp2p::Multiaddr;
use spore_actors::artifact_fetcher::FetchArtifact;
use spore_actors::legacy::{GetLegacyAddr, LegacyPeerCount};
use spore_actors::messages::{GetListenAddrs, GetPeers};
use spore_actors::node::{Node, NodeOptions, Registry};
use spore_actors::peer_score::PeerRef;
use spore_actors::Store;

struct TestNode {
    _dir: tempfile::TempDir,
    node: Node,
}

impl TestNode {
    fn registry(&self) -> &Registry {
        &self.node.registry
    }

    fn has(&self, cid: &str) -> bool {
        self.registry()
            .store
            .read()
            .unwrap()
            .artifact(cid)
            .unwrap()
            .is_some()
    }
}

/// A node holding `artifacts`, started with `options`.
fn start(options: NodeOptions, artifacts: &[&[u8]]) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
    for bytes in artifacts {
        let cid = spore_spec::crypto::sha256_hex(bytes);
        store.write(|w| w.put_artifact(&cid, bytes)).unwrap();
    }
    let node = Node::builder(store, options).spawn().unwrap();
    TestNode { _dir: dir, node }
}

/// Polls `check` every 20 ms until it holds, for at most 20 s.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mesh_addr(registry: &Registry) -> Multiaddr {
    loop {
        if let Some(addr) = registry.peers.send(GetListenAddrs).await.unwrap().pop() {
            return addr.with(libp2p::multiaddr::Protocol::P2p(registry.peer_id));
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long the fetching node waits for an answer before it asks the next peer.
const TIMEOUT: Duration = Duration::from_secs(3);

#[test]
fn artifacts_come_from_either_transport_the_preferred_peer_first() {
    actix_rt::System::new().block_on(async {
        let (on_mesh, on_legacy): (&[u8], &[u8]) = (
            b"only the mesh peer has this",
            b"only the reference-protocol peer has this",
        );
        let (x, y) = (
            spore_spec::crypto::sha256_hex(on_mesh),
            spore_spec::crypto::sha256_hex(on_legacy),
        );
        // the mesh peer
        let mesh_peer = start(loopback_options(1, vec![]), &[on_mesh]);
        let mesh_peer_addr = mesh_addr(mesh_peer.registry()).await;
        // the reference-protocol peer (a spored node speaks it too; it never answers for an
        // artifact it lacks, as a 0.6.0 node)
        let mut options = loopback_options(2, vec![]);
        options.legacy_listen = Some("127.0.0.1:0".into());
        let legacy_peer = start(options, &[on_legacy]);
        let legacy_addr = legacy_peer
            .registry()
            .legacy
            .send(GetLegacyAddr)
            .await
            .unwrap()
            .unwrap();
        // the node that fetches: connected to both, a short timeout for the silent peer
        let mut options = loopback_options(3, vec![mesh_peer_addr]);
        options.legacy.peers = vec![legacy_addr.to_string()];
        options.net.fetch.timeout = TIMEOUT;
        let node = start(options, &[]);
        let registry = node.registry().clone();
        loop {
            let mesh = registry.peers.send(GetPeers).await.unwrap();
            let legacy = registry.legacy.send(LegacyPeerCount).await.unwrap();
            if mesh.iter().any(|p| p.connected) && legacy == 1 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!node.has(&x) && !node.has(&y));

        // each preferring the peer that lacks it: the mesh peer says so at once, the reference
        // peer stays silent until the timeout; both end on the other transport
        let started = Instant::now();
        registry.fetcher.do_send(FetchArtifact {
            cid: y.clone(),
            prefer: Some(PeerRef::Mesh(mesh_peer.registry().peer_id)),
        });
        wait_until("the artifact only the reference peer has", || node.has(&y)).await;
        let mesh_to_legacy = started.elapsed();
        let started = Instant::now();
        registry.fetcher.do_send(FetchArtifact {
            cid: x.clone(),
            prefer: Some(PeerRef::Legacy(legacy_addr)),
        });
        wait_until("the artifact only the mesh peer has", || node.has(&x)).await;
        let legacy_to_mesh = started.elapsed();
        assert!(
            mesh_to_legacy < TIMEOUT,
            "a mesh peer's 'missing' moves on at once: {mesh_to_legacy:?}"
        );
        assert!(
            legacy_to_mesh >= TIMEOUT,
            "the preferred reference peer was asked first and waited for: {legacy_to_mesh:?}"
        );
        let bytes = registry.store.read().unwrap().artifact(&y).unwrap();
        assert_eq!(bytes.as_deref(), Some(on_legacy));

        for n in [&node, &legacy_peer, &mesh_peer] {
            n.node.shutdown().await;
        }
    });
}
