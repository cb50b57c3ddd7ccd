//! spore-actors: the spored node: the store (redb), the lineage rules, the actors of the mesh,
//! the experiment runner and the research loop.

pub mod addresses;
pub mod artifact_fetcher;
pub mod auto_operator;
pub mod clock;
pub mod command_task;
pub mod console;
pub mod control_socket;
pub mod lineage;
pub mod llm;
pub mod store;

pub use store::{Reader, Store, StoreError, Writer};

/// Lowers the calling thread's scheduling priority (on Linux `nice` is per thread) by `by`
/// steps, for CPU-heavy background work (checking signatures, writing the store): when the
/// cores are busy, the thread that drives the network and the actors still gets its turn at
/// once instead of waiting for a time slice. Best effort: elsewhere it does nothing.
pub fn lower_thread_priority(by: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if *libc::__errno_location() == 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + by).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

pub use clock::unix_now;
pub mod default_task;
pub mod experiment_runner;
pub mod gossip_router;
pub mod gpu_corpus;
pub mod ingest;
pub mod legacy;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod node;
pub mod peer_manager;
pub mod peer_score;
pub mod peer_table;
pub mod per_address;
pub mod reads;
pub mod refusal;
pub mod registry;
pub mod research;
pub mod sandbox;
pub mod setting;
pub mod store_writer;
pub mod supervision;
pub mod sync_session;
pub mod task_data;
pub mod task_registry;
pub mod tls;
pub mod verdict;
pub mod verifier;
pub mod warmup;
