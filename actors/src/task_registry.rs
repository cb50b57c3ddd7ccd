//! TaskRegistry: task manifests, legacy tasks, profiles and the active task.

use std::sync::Arc;

use actix::prelude::*;
use tracing::info;

use crate::messages::Stored;
use crate::supervision::Restarts;
use crate::Store;

pub struct TaskRegistry {
    store: Arc<Store>,
    pinned: Option<String>,
    restarts: Restarts,
}

impl TaskRegistry {
    pub fn new(store: Arc<Store>, pinned: Option<String>, restarts: Restarts) -> Self {
        TaskRegistry {
            store,
            pinned,
            restarts,
        }
    }
}

impl Actor for TaskRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.restarts.started(ctx);
    }
}

impl Supervised for TaskRegistry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.restarting();
    }
}

impl Handler<Stored> for TaskRegistry {
    type Result = ();

    fn handle(&mut self, msg: Stored, _: &mut Context<Self>) {
        for task in &msg.tasks {
            info!(task_id = %task, "task manifest stored");
        }
        for node in &msg.profiles {
            info!(node_id = %node, "profile stored");
        }
    }
}

/// The task this node works on: the pinned one, else the most active.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, String>")]
pub struct GetActiveTask;

impl Handler<GetActiveTask> for TaskRegistry {
    type Result = Result<Option<String>, String>;

    fn handle(&mut self, _: GetActiveTask, _: &mut Context<Self>) -> Self::Result {
        let read = self.store.read().map_err(|e| e.to_string())?;
        read.active_task(self.pinned.as_deref())
            .map_err(|e| e.to_string())
    }
}
