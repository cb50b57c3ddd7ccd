//! The node's store: one redb file in the data dir, versioned table names, one writer.
//!
//! Records are kept exactly as signed (their wire JSON), so re-serving them never changes a
//! byte of what was hashed (the reference's SQLite round trip did, see reference §e.1). Derived
//! state (task of each record, frontier, per-task counters) is maintained on write, so reads
//! stay fast at any size.

mod artifacts;
mod codec;
mod control;
mod experiments;
mod log;
mod nodes;
mod peers;
mod profiles;
mod removal;
mod tables;
mod tasks;
mod verdicts;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, WriteTransaction};

use crate::clock::Clock;

pub use artifacts::MAX_ARTIFACT_BYTES;
pub use codec::IndexEntry;
pub use control::{ControlOutcome, MAX_CONTESTED_VOTES};
pub use experiments::{ExperimentOutcome, TaskStats, HELD_FOR_SECS, MAX_HELD_PER_SIGNER};
pub use log::{LogEntry, LogKind};
pub use nodes::{NodeStats, MAX_NODE_NAMES};
pub use profiles::ProfileOutcome;
pub use tasks::{TaskOutcome, TaskRow, TaskSource};
pub use verdicts::{claim_of, VerdictSummary};

/// When a commit reaches the disk ([`Store::write_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On disk when the commit returns.
    Immediate,
    /// On disk with the next immediate commit.
    Lazy,
}

/// redb page cache of one store. Small on purpose: records are keyed by their (random) ids, so
/// at 100k records no cache of a size a relay can afford holds the working set, and measured at
/// 8, 16 and 32 MiB the sync, import and explorer figures did not move beyond run-to-run noise,
/// while the peak RSS of a relay serving 100k records went 85-94 -> 47-50 MiB
/// (docs/benchmarks.md, issue #18).
pub const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// The page cache of a bulk import's short-lived process: inserting 100k records in one
/// transaction, 32 MiB makes it ~20 % faster than [`CACHE_BYTES`].
pub const BULK_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The store's file name inside `<data_dir>/db/`.
pub const STORE_FILE: &str = "spored.redb";

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} is in use by another spored process")]
    InUse { path: String },
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt store entry in {table}: {what}")]
    Corrupt { table: &'static str, what: String },
    #[error("artifact bytes hash to {computed}, not to the claimed cid {claimed}")]
    ArtifactMismatch { claimed: String, computed: String },
    #[error("artifact of {0} bytes exceeds the 10 MiB limit")]
    ArtifactTooLarge(usize),
    #[error("not a cid (64 lowercase hex characters): {0:?}")]
    BadCid(String),
    #[error("held-record pool is full ({0} records waiting for parents)")]
    HeldPoolFull(u64),
    #[error("{signer} already has {held} records waiting for parents (the most one signer may)")]
    HeldQuotaFull { signer: String, held: u64 },
    #[error("{0}")]
    Aborted(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// The node's database.
pub struct Store {
    db: Database,
    /// The redb file (its size is reported in `/metrics`).
    path: std::path::PathBuf,
    /// What "now" is for verdicts (a challenge's timeout): the system's, or a test's.
    clock: Clock,
    /// The arrival log's last number as of the last commit, and as of the last durable one:
    /// peers are served the log only up to the durable one ([`Reader::durable_log_seq`]), so
    /// no peer moves its cursor past numbers a crash could give to other objects later.
    written_log: AtomicU64,
    durable_log: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_clock(path, Clock::system())
    }

    /// [`Store::open`] with the clock verdicts are computed by (a test's manual clock).
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Store, StoreError> {
        Store::open_with(path, clock, CACHE_BYTES)
    }

    /// Bytes of the store's file on disk.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// [`Store::open`] for one bulk write (`spored import` without a running node): a larger
    /// page cache, [`BULK_CACHE_BYTES`], for the few seconds the process lives.
    pub fn open_for_bulk(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, Clock::system(), BULK_CACHE_BYTES)
    }

    #[allow(clippy::disallowed_methods)] // the backfills run before any writer exists
    fn open_with(path: &Path, clock: Clock, cache_bytes: usize) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        }
        // redb's default page cache (1 GiB) would hold most of a large store in memory; a node
        // should stay small, and reads of recent data hit the OS page cache anyway.
        let db = match Database::builder().set_cache_size(cache_bytes).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse {
                    path: path.display().to_string(),
                })
            }
            Err(e) => return Err(StoreError::Db(e.into())),
        };
        let store = Store {
            db,
            path: path.to_path_buf(),
            clock,
            written_log: AtomicU64::new(0),
            durable_log: AtomicU64::new(0),
        };
        // Opening every table once creates the missing ones, so readers never find one absent;
        // indexes added after a store was written are built here, once.
        let built = store.write(|w| w.backfill_node_indexes())?;
        if built > 0 {
            tracing::info!(records = built, "built the per-node indexes");
        }
        let counted = store.write(|w| w.backfill_node_stats())?;
        if counted > 0 {
            tracing::info!(records = counted, "built the per-node counters");
        }
        let held = store.write(|w| w.backfill_held_index())?;
        if held > 0 {
            tracing::info!(held, "indexed the held records by arrival and signer");
        }
        let events = store.write(|w| w.backfill_verdicts())?;
        if events > 0 {
            tracing::info!(
                events,
                "indexed control events by record and applied verdicts"
            );
        }
        // a default-task tree grown from another root (before the root was pinned) goes
        let task = crate::default_task::TASK_ID;
        store.write(|w| w.enforce_root_rule(task, None, crate::default_task::pinned_root(task)))?;
        // what is in the file now is on disk (the backfills made every table exist)
        let top = store.read()?.last_seq()?;
        store.written_log.store(top, Ordering::SeqCst);
        store.durable_log.store(top, Ordering::SeqCst);
        Ok(store)
    }

    /// Runs `f` in one write transaction: everything it wrote is committed together when it
    /// returns `Ok`, and nothing is when it returns `Err`.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        #[allow(clippy::disallowed_methods)] // the same rule covers both
        self.write_with(Durability::Immediate, f)
    }

    /// [`Store::write`] with the durability of its commit: [`Durability::Lazy`] commits are
    /// seen by readers at once but reach the disk only with the next durable commit (the store
    /// writer's batching of what peers send; see `store_writer`). After a crash the store is
    /// as of its last durable commit.
    pub fn write_with<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Writer<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut txn = self.db.begin_write()?;
        if durability == Durability::Lazy {
            // refused only in the shared-between-processes modes, which this store does not use
            let _ = txn.set_durability(redb::Durability::None);
        }
        let result = Writer::new(&txn, self.clock.now()).and_then(|mut writer| {
            let r = f(&mut writer)?;
            writer.flush()?;
            // the last number this transaction gave, if it appended to the log
            Ok((r, writer.next_seq.map(|next| next - 1)))
        });
        match result {
            Ok((r, appended)) => {
                txn.commit()?;
                if let Some(top) = appended {
                    self.written_log.fetch_max(top, Ordering::SeqCst);
                }
                if durability == Durability::Immediate {
                    let written = self.written_log.load(Ordering::SeqCst);
                    self.durable_log.fetch_max(written, Ordering::SeqCst);
                }
                Ok(r)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        }
    }

    /// A consistent snapshot for reading; readers never block the writer.
    pub fn read(&self) -> Result<Reader, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(Reader {
            t: tables::ReadTables::open(&txn)?,
            now: self.clock.now(),
            durable_log: self.durable_log.load(Ordering::SeqCst),
        })
    }

    /// The clock verdicts are computed by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// Writes inside one transaction (see [`Store::write`]).
pub struct Writer<'t> {
    t: tables::WriteTables<'t>,
    stats: std::collections::HashMap<String, TaskStats>,
    node_stats: std::collections::HashMap<String, NodeStats>,
    held_count: Option<u64>,
    next_seq: Option<u64>,
    changes: Changes,
    /// The store's clock when the transaction began.
    now: i64,
}

/// What a transaction changed beyond the objects it was asked to store, for the events the
/// node publishes after the commit (see `store_writer`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tasks whose frontier gained or lost a record.
    pub frontier_tasks: std::collections::BTreeSet<String>,
    /// Records whose verdict (verifications, challenges, dispute outcome) changed.
    pub verdicts: std::collections::BTreeSet<String>,
    /// Artifacts stored for the first time.
    pub artifacts: Vec<String>,
}

impl<'t> Writer<'t> {
    fn new(txn: &'t WriteTransaction, now: i64) -> Result<Self, StoreError> {
        Ok(Writer {
            t: tables::WriteTables::open(txn)?,
            stats: Default::default(),
            node_stats: Default::default(),
            held_count: None,
            next_seq: None,
            changes: Changes::default(),
            now,
        })
    }

    /// What this transaction changed so far (and forgets it).
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.flush_stats()?;
        self.flush_node_stats()
    }
}

/// Reads from one snapshot (see [`Store::read`]).
pub struct Reader {
    t: tables::ReadTables,
    /// The store's clock when the snapshot was taken.
    now: i64,
    /// The arrival log's last number known to be on disk when the snapshot was taken.
    durable_log: u64,
}
