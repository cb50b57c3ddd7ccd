//! spore-actors: the spored node: the store (redb), the lineage rules, the actors of the mesh,
//! the experiment runner and the research loop.

pub mod auto_operator;
pub mod console;
pub mod lineage;
pub mod llm;
pub mod store;

pub use store::{Reader, Store, StoreError, Writer};
pub mod default_task;
pub mod experiment_runner;
pub mod frontier_tracker;
pub mod gossip_router;
pub mod ingest;
pub mod legacy;
pub mod messages;
pub mod net;
pub mod node;
pub mod peer_manager;
pub mod peer_table;
pub mod research;
pub mod supervision;
pub mod task_registry;
pub mod verdict;
pub mod verifier;
