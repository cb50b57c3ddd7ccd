//! Propagation in a 10-node loopback mesh (issue #3): time from publishing a record on one node
//! to the last node holding it, p50 and p99 over 100 records. All nodes run in this process on
//! one actix System (one thread), each with its own store and libp2p identity.
//!
//!     cargo bench --bench propagation -- [--nodes 10] [--messages 100]

#![allow(clippy::disallowed_methods)] // this process owns its stores

use std::sync::Arc;
use std::time::{Duration, Instant};

use spore_actors::messages::GetListenAddrs;
use spore_actors::net::NetConfig;
use spore_actors::node::{Node, NodeOptions, Registry};
use spore_actors::Store;

mod common;

fn main() {
    let nodes_n = common::arg("--nodes", 10);
    let messages = common::arg("--messages", 100);
    let (manifest, lines) = common::generate(messages + 1);
    actix_rt::System::new().block_on(async move {
        let mut dirs = Vec::new();
        let mut nodes: Vec<Registry> = Vec::new();
        let mut addrs: Vec<libp2p::Multiaddr> = Vec::new();
        for i in 0..nodes_n {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
            // each node dials up to three earlier ones: a connected mesh, not a star
            let peers = (0..i).rev().step_by(2).take(3).map(|j: usize| addrs[j].clone()).collect();
            let registry = Node::builder(
                store,
                NodeOptions {
                    seed: [100 + i as u8; 32],
                    listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                    peers,
                    net: NetConfig::default(),
                    legacy_listen: None,
                    legacy: Default::default(),
                },
            )
            .spawn()
            .unwrap()
            .registry;
            let addr = loop {
                if let Some(a) = registry.peers.send(GetListenAddrs).await.unwrap().into_iter().next() {
                    break a;
                }
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            };
            addrs.push(addr);
            nodes.push(registry);
            dirs.push(dir);
        }
        // the root first, everywhere, then let the gossip mesh form
        nodes[0].publish_local(vec![manifest, lines[0].clone()]).await.unwrap();
        let everywhere = |n: u64| nodes.iter().all(|r| r.store.read().unwrap().experiment_count().unwrap() >= n);
        while !everywhere(1) {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        actix_rt::time::sleep(Duration::from_secs(3)).await;

        let mut latencies = Vec::new();
        for (k, line) in lines[1..].iter().enumerate() {
            let publisher = &nodes[k % nodes_n];
            let t = Instant::now();
            publisher.publish_local(vec![line.clone()]).await.unwrap();
            while !everywhere(k as u64 + 2) {
                // polling shares the nodes' thread: every 5 ms keeps it from starving them
                actix_rt::time::sleep(Duration::from_millis(5)).await;
                assert!(t.elapsed() < Duration::from_secs(30), "record {k} never reached every node");
            }
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
        latencies.sort_by(f64::total_cmp);
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "{nodes_n}-node mesh, {messages} records: publish to last node p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            p(0.5),
            p(0.99),
            p(1.0)
        );
        for n in &nodes {
            n.shutdown().await;
        }
    });
}
