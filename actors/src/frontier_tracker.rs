//! FrontierTracker: follows the experiment DAG. The store maintains frontier, best and counters
//! on every insert; this actor logs what arrives and answers frontier queries from a read
//! snapshot. (Live views follow the store writer's events directly.)

use std::sync::Arc;

use actix::prelude::*;
use spore_spec::Goal;
use tracing::{debug, info};

use crate::messages::Stored;
use crate::supervision::Restarts;
use crate::Store;

pub struct FrontierTracker {
    store: Arc<Store>,
    stored_records: u64,
    restarts: Restarts,
}

impl FrontierTracker {
    pub fn new(store: Arc<Store>, restarts: Restarts) -> Self {
        FrontierTracker {
            store,
            stored_records: 0,
            restarts,
        }
    }
}

impl Actor for FrontierTracker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.restarts.started(ctx);
    }
}

impl Supervised for FrontierTracker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.restarting();
    }
}

impl Handler<Stored> for FrontierTracker {
    type Result = ();

    fn handle(&mut self, msg: Stored, _: &mut Context<Self>) {
        self.stored_records += msg.experiments.len() as u64;
        match msg.experiments.len() {
            0 => {}
            1 => {
                debug!(id = %msg.experiments[0], total_this_run = self.stored_records, "record stored")
            }
            n => info!(
                new = n,
                total_this_run = self.stored_records,
                "records stored"
            ),
        }
    }
}

/// The best `limit` record ids of a task.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, String>")]
pub struct GetFrontier {
    pub task_id: String,
    pub limit: usize,
}

impl Handler<GetFrontier> for FrontierTracker {
    type Result = Result<Vec<String>, String>;

    fn handle(&mut self, msg: GetFrontier, _: &mut Context<Self>) -> Self::Result {
        let read = self.store.read().map_err(|e| e.to_string())?;
        let goal: Goal = read.task_goal(&msg.task_id).map_err(|e| e.to_string())?;
        read.frontier_ids_limited(&msg.task_id, goal, msg.limit)
            .map_err(|e| e.to_string())
    }
}
