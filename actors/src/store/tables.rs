//! Table definitions. Names carry a version so a future layout can live beside this one and be
//! migrated explicitly.

use redb::{ReadOnlyTable, ReadTransaction, Table, TableDefinition, WriteTransaction};

use super::StoreError;

/// Record id → the record's wire JSON (sorted keys; v1 records carry their derived task id).
pub const EXPERIMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiments_v1");
/// Record id → [`super::IndexEntry`]: task, parent, status, metric, flags.
pub const EXPERIMENT_INDEX: TableDefinition<&str, &[u8]> =
    TableDefinition::new("experiment_index_v1");
/// parent id ‖ child id → ().
pub const CHILDREN: TableDefinition<&[u8], ()> = TableDefinition::new("children_v1");
/// task id ‖ sortable timestamp ‖ record id → ().
pub const TASK_RECORDS: TableDefinition<&[u8], ()> = TableDefinition::new("task_records_v1");
/// goal ‖ task id ‖ sortable metric ‖ record id → (): the frontier of each task, best first.
pub const FRONTIER: TableDefinition<&[u8], ()> = TableDefinition::new("frontier_v1");
/// Task id → [`super::TaskStats`].
pub const TASK_STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("task_stats_v1");
/// missing parent id ‖ record id → the held record's wire JSON.
pub const HELD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("held_v1");
/// sortable arrival time ‖ missing parent id ‖ record id → (): when each held record came, so
/// the pool expires ([`super::experiments::HELD_FOR_SECS`]). An entry whose record was released
/// since is dropped when its time comes.
pub const HELD_SINCE: TableDefinition<&[u8], ()> = TableDefinition::new("held_since_v1");
/// Signer (node id) → number of its records held (per-signer quota).
pub const HELD_SIGNERS: TableDefinition<&str, u64> = TableDefinition::new("held_signers_v1");
/// Task id → task row JSON (manifest or legacy).
pub const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks_v1");
/// Event id → event wire JSON.
pub const CONTROL_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("control_events_v1");
/// sortable timestamp ‖ event id → ().
pub const CONTROL_BY_TIME: TableDefinition<&[u8], ()> = TableDefinition::new("control_by_time_v1");
/// `<type>:<signer>:<event_id>` → event id. The signer is part of the key: with the reference's
/// `<type>:<event_id>`, anyone could sign an event under an honest node's predictable event id
/// first and have the honest one refused as a duplicate.
pub const CONTROL_DEDUPE: TableDefinition<&str, &str> = TableDefinition::new("control_dedupe_v2");
/// record id ‖ `:` ‖ vote kind ‖ `:` ‖ signer (‖ `:` ‖ challenger, for responses) → event id: the
/// one vote of each signer about each record that is kept, the first that came.
pub const VOTES: TableDefinition<&str, &str> = TableDefinition::new("votes_v1");
/// record id ‖ event id → (): the control events about each record.
pub const CONTROL_BY_EXPERIMENT: TableDefinition<&[u8], ()> =
    TableDefinition::new("control_by_experiment_v1");
/// Record id → its verdict summary (`super::VerdictSummary`), for records with events.
pub const VERDICTS: TableDefinition<&str, &[u8]> = TableDefinition::new("verdicts_v1");
/// Record id → the timestamp of its oldest undecided challenge (decided by timeout later).
pub const OPEN_CHALLENGES: TableDefinition<&str, i64> = TableDefinition::new("open_challenges_v1");
/// Node id → latest profile wire JSON.
pub const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles_v1");
/// cid → artifact bytes.
pub const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifacts_v1");
/// Local arrival sequence number → kind byte ‖ key: every accepted object in the order it was
/// stored (parents before children), the order sync serves them in.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log_v1");
/// task id ‖ node id → number of that node's records in the task (participants, per task).
pub const TASK_NODES: TableDefinition<&[u8], u64> = TableDefinition::new("task_nodes_v1");
/// node id ‖ sortable timestamp ‖ record id → () (a node's records, oldest first).
pub const NODE_RECORDS: TableDefinition<&[u8], ()> = TableDefinition::new("node_records_v1");
/// Node id → JSON counters of that publisher (`NodeStats`).
pub const NODE_STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("node_stats_v1");
/// Record id → (): records a verification or upheld dispute confirmed.
pub const VERIFIED: TableDefinition<&str, ()> = TableDefinition::new("verified_v1");
/// Peer id → the highest sequence number of that peer's log we have stored (sync resumes there).
pub const SYNC_CURSORS: TableDefinition<&str, u64> = TableDefinition::new("sync_cursors_v1");
/// Record id ‖ `:` ‖ `run` or `rerun` → what the evaluator (or training child) printed when this
/// node ran the record: local only, never synced (peers' records show it once this node re-ran
/// them).
pub const RUN_OUTPUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("run_outputs_v1");
/// "host:port" or multiaddr → unix seconds last seen.
pub const PEERS: TableDefinition<&str, i64> = TableDefinition::new("peers_v1");

/// Declares the open tables of one transaction, write and read side, from the definitions.
macro_rules! table_set {
    ($($field:ident: $def:ident<$k:ty, $v:ty>),* $(,)?) => {
        /// Every table, opened once per write transaction (opening and closing a redb table
        /// per operation costs more than the operation).
        pub struct WriteTables<'t> {
            $(pub $field: Table<'t, $k, $v>,)*
        }

        impl<'t> WriteTables<'t> {
            /// Opens (creating where missing) every table.
            pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
                Ok(WriteTables { $($field: txn.open_table($def)?,)* })
            }
        }

        /// Every table of one read snapshot.
        #[allow(dead_code)] // the dedupe table is only consulted by writers so far
        pub struct ReadTables {
            $(pub $field: ReadOnlyTable<$k, $v>,)*
        }

        impl ReadTables {
            pub fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
                Ok(ReadTables { $($field: txn.open_table($def)?,)* })
            }
        }
    };
}

table_set! {
    experiments: EXPERIMENTS<&'static str, &'static [u8]>,
    index: EXPERIMENT_INDEX<&'static str, &'static [u8]>,
    children: CHILDREN<&'static [u8], ()>,
    task_records: TASK_RECORDS<&'static [u8], ()>,
    frontier: FRONTIER<&'static [u8], ()>,
    task_stats: TASK_STATS<&'static str, &'static [u8]>,
    held: HELD<&'static [u8], &'static [u8]>,
    held_since: HELD_SINCE<&'static [u8], ()>,
    held_signers: HELD_SIGNERS<&'static str, u64>,
    tasks: TASKS<&'static str, &'static [u8]>,
    control_events: CONTROL_EVENTS<&'static str, &'static [u8]>,
    control_by_time: CONTROL_BY_TIME<&'static [u8], ()>,
    control_dedupe: CONTROL_DEDUPE<&'static str, &'static str>,
    control_by_experiment: CONTROL_BY_EXPERIMENT<&'static [u8], ()>,
    votes: VOTES<&'static str, &'static str>,
    verdicts: VERDICTS<&'static str, &'static [u8]>,
    open_challenges: OPEN_CHALLENGES<&'static str, i64>,
    profiles: PROFILES<&'static str, &'static [u8]>,
    artifacts: ARTIFACTS<&'static str, &'static [u8]>,
    peers: PEERS<&'static str, i64>,
    log: LOG<u64, &'static [u8]>,
    sync_cursors: SYNC_CURSORS<&'static str, u64>,
    task_nodes: TASK_NODES<&'static [u8], u64>,
    node_records: NODE_RECORDS<&'static [u8], ()>,
    verified: VERIFIED<&'static str, ()>,
    node_stats: NODE_STATS<&'static str, &'static [u8]>,
    run_outputs: RUN_OUTPUTS<&'static str, &'static [u8]>,
}
