//! Table definitions. Names carry a version so a future layout can live beside this one and be
//! migrated explicitly.

use redb::{TableDefinition, WriteTransaction};

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
/// Task id → task row JSON (manifest or legacy).
pub const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks_v1");
/// Event id → event wire JSON.
pub const CONTROL_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("control_events_v1");
/// sortable timestamp ‖ event id → ().
pub const CONTROL_BY_TIME: TableDefinition<&[u8], ()> = TableDefinition::new("control_by_time_v1");
/// `<type>:<event_id>` → event id.
pub const CONTROL_DEDUPE: TableDefinition<&str, &str> = TableDefinition::new("control_dedupe_v1");
/// Node id → latest profile wire JSON.
pub const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles_v1");
/// cid → artifact bytes.
pub const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifacts_v1");
/// "host:port" or multiaddr → unix seconds last seen.
pub const PEERS: TableDefinition<&str, i64> = TableDefinition::new("peers_v1");

pub fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EXPERIMENTS)?;
    txn.open_table(EXPERIMENT_INDEX)?;
    txn.open_table(CHILDREN)?;
    txn.open_table(TASK_RECORDS)?;
    txn.open_table(FRONTIER)?;
    txn.open_table(TASK_STATS)?;
    txn.open_table(HELD)?;
    txn.open_table(TASKS)?;
    txn.open_table(CONTROL_EVENTS)?;
    txn.open_table(CONTROL_BY_TIME)?;
    txn.open_table(CONTROL_DEDUPE)?;
    txn.open_table(PROFILES)?;
    txn.open_table(ARTIFACTS)?;
    txn.open_table(PEERS)?;
    Ok(())
}
