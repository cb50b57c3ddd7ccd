//! spore-actors: the spored node. For now the store (redb) and the lineage rules it applies;
//! the actors that own it arrive with the mesh.

pub mod lineage;
pub mod store;

pub use store::{Reader, Store, StoreError, Writer};
