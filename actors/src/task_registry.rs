//! TaskRegistry: owns the node's answer to "which task is most active", the task a node without
//! a pinned task researches. It follows the store writer's events (a task or a record stored) and
//! recomputes the answer off the actor thread when they could change it; others ask it
//! (`GetActiveTask`) instead of ranking every task themselves.

use actix::prelude::*;
use tracing::{info, warn};

use crate::reads::Reads;
use crate::store_writer::{wake_ups, Look, NodeEvent, StoreWriter, Wake};
use crate::supervision::Restarts;

pub struct TaskRegistry {
    reads: Reads,
    writer: StoreWriter,
    restarts: Restarts,
    /// The most active task as last computed (`None`: not computed yet).
    active: Option<Option<String>>,
    looking: bool,
    look_again: bool,
}

impl TaskRegistry {
    pub fn new(reads: Reads, writer: StoreWriter, restarts: Restarts) -> Self {
        TaskRegistry {
            reads,
            writer,
            restarts,
            active: None,
            looking: false,
            look_again: false,
        }
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.looking {
            self.look_again = true;
            return;
        }
        self.looking = true;
        let active = self.reads.read(|read| read.active_task(None));
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(active).map(|active, act, ctx| {
                act.looking = false;
                match active {
                    Ok(active) => {
                        if act.active.as_ref() != Some(&active) {
                            if let Some(id) = &active {
                                info!(task_id = %id, "most active task");
                            }
                        }
                        act.active = Some(active);
                    }
                    Err(e) => warn!(error = %e, "task registry: cannot read the store"),
                }
                if std::mem::take(&mut act.look_again) {
                    ctx.notify(Look);
                }
            }),
        );
    }
}

impl Actor for TaskRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.restarts.started(ctx);
        ctx.add_stream(wake_ups(&self.writer, |e| {
            match e {
                NodeEvent::TaskStored { task_id } => {
                    info!(task_id = %task_id, "task manifest stored")
                }
                NodeEvent::ProfileStored { node_id } => info!(node_id = %node_id, "profile stored"),
                _ => {}
            }
            matches!(
                e,
                NodeEvent::TaskStored { .. } | NodeEvent::RecordAccepted { .. }
            )
        }));
        ctx.notify(Look);
    }
}

impl Supervised for TaskRegistry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.restarting();
        self.active = None;
        self.looking = false;
    }
}

impl Handler<Look> for TaskRegistry {
    type Result = ();

    fn handle(&mut self, _: Look, ctx: &mut Context<Self>) {
        self.look(ctx);
    }
}

impl StreamHandler<Wake> for TaskRegistry {
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.look(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {} // the node is stopping
}

/// The most active task (most records, then the latest), if any task has records or a
/// manifest; a pinned task is the asker's business.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, String>")]
pub struct GetActiveTask;

impl Handler<GetActiveTask> for TaskRegistry {
    type Result = ResponseFuture<Result<Option<String>, String>>;

    fn handle(&mut self, _: GetActiveTask, _: &mut Context<Self>) -> Self::Result {
        if let Some(active) = &self.active {
            let active = active.clone();
            return Box::pin(async move { Ok(active) });
        }
        // asked before the first look finished: compute it for this answer
        let reads = self.reads.clone();
        Box::pin(async move {
            reads
                .read(|read| read.active_task(None))
                .await
                .map_err(|e| e.to_string())
        })
    }
}
