//! TaskRegistry: task manifests, legacy tasks, profiles and the active task.

use std::sync::Arc;

use actix::prelude::*;
use tracing::info;

use crate::messages::Stored;
use crate::Store;

pub struct TaskRegistry {
    store: Arc<Store>,
    pinned: Option<String>,
}

impl TaskRegistry {
    pub fn new(store: Arc<Store>, pinned: Option<String>) -> Self {
        TaskRegistry { store, pinned }
    }
}

impl Actor for TaskRegistry {
    type Context = Context<Self>;
}

impl Supervised for TaskRegistry {}

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
