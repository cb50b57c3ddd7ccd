//! Store reads for code that runs on an actor's thread. redb serves readers concurrently, but a
//! read still touches the disk and may scan; on the System thread (which drives the swarm, every
//! legacy connection and the control socket) it would hold everything else up. Each read runs
//! on a blocking thread with its own snapshot. `clippy.toml` forbids `Store::read` and
//! `Store::write` elsewhere in the node's code, so it stays that way.

use std::sync::Arc;

use crate::{Reader, Store, StoreError};

/// A cheap handle for reading the node's store off the actor threads.
#[derive(Clone, Debug)]
pub struct Reads {
    store: Arc<Store>,
}

impl Reads {
    pub fn new(store: Arc<Store>) -> Reads {
        Reads { store }
    }

    /// Runs `f` on a consistent snapshot, on a blocking thread. The future does not borrow
    /// the handle, so an actor can spawn it in its context.
    pub fn read<R, F>(&self, f: F) -> impl std::future::Future<Output = Result<R, StoreError>>
    where
        R: Send + 'static,
        F: FnOnce(&Reader) -> Result<R, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                #[allow(clippy::disallowed_methods)] // the one place actor code reads
                let read = store.read()?;
                f(&read)
            })
            .await
            .map_err(|e| StoreError::Aborted(format!("a store read was lost: {e}")))?
        }
    }
}
