//! spore-actors: the spored node: the store (redb), the lineage rules, the actors of the mesh,
//! the experiment runner and the research loop.

pub mod auto_operator;
pub mod command_task;
pub mod console;
pub mod lineage;
pub mod llm;
pub mod store;

pub use store::{Reader, Store, StoreError, Writer};

/// Seconds since the Unix epoch (signed timestamps, challenge timeouts).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
pub mod default_task;
pub mod experiment_runner;
pub mod gossip_router;
pub mod ingest;
pub mod legacy;
pub mod messages;
pub mod net;
pub mod node;
pub mod peer_manager;
pub mod peer_table;
pub mod reads;
pub mod research;
pub mod sandbox;
pub mod store_writer;
pub mod supervision;
pub mod task_registry;
pub mod verdict;
pub mod verifier;
