//! spore-actors: the spored node. For now the store (redb) and the lineage rules it applies;
//! the actors that own it arrive with the mesh.

pub mod lineage;
pub mod store;

pub use store::{Reader, Store, StoreError, Writer};
pub mod frontier_tracker;
pub mod gossip_router;
pub mod ingest;
pub mod messages;
pub mod net;
pub mod node;
pub mod peer_manager;
pub mod peer_table;
pub mod task_registry;
