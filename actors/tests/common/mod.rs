//! Helpers shared by the store tests: signed records made on the spot.

#![allow(dead_code)]

use std::time::Duration;

use spore_actors::net::NetConfig;
use spore_actors::node::NodeOptions;
use spore_spec::{ExperimentRecord, Identity, Number, Signed, Status};

pub const TASK: &str = "3094a2dfd2296bef1d10bad5bd5636e6b84fe0b57c823b043cb6c98cf3fbb371";

pub fn identity(n: u8) -> Identity {
    Identity::from_seed([n; 32])
}

/// A signed v2 record in `task` with the given parent, status and metric.
pub fn record(
    who: &Identity,
    parent: Option<&str>,
    task: &str,
    status: Status,
    val: f64,
    timestamp: i64,
) -> ExperimentRecord {
    let mut r = ExperimentRecord {
        parent: parent.map(str::to_string),
        depth: parent.map_or(0, |_| 1),
        code_cid: "c".repeat(64),
        diff: String::new(),
        dataset_cid: "tiny".into(),
        prepare_cid: String::new(),
        time_budget: 60,
        val_bpb: Number::Float(val),
        peak_vram_mb: Number::Float(0.0),
        num_steps: 10,
        num_params: 1000,
        status,
        description: format!("val {val}"),
        hypothesis: String::new(),
        agent_model: "test".into(),
        gpu_model: "CPU".into(),
        cuda_version: "cpu".into(),
        torch_version: "none".into(),
        node_id: who.node_id(),
        task_id: task.to_string(),
        timestamp,
        signature: String::new(),
        id: String::new(),
        version: 2,
    };
    r.sign_with(who);
    r
}

/// A node on 127.0.0.1 (OS-chosen port) with identity `[seed; 32]`, dialling `peers`,
/// re-syncing every second, without the reference protocol's listener.
pub fn loopback_options(seed: u8, peers: Vec<libp2p::Multiaddr>) -> NodeOptions {
    NodeOptions {
        seed: [seed; 32],
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        peers,
        net: NetConfig {
            resync_interval: Duration::from_secs(1),
            ..NetConfig::default()
        },
        legacy_listen: None,
        legacy: Default::default(),
    }
}
