//! GossipRouter: validate, then forward. Every inbound object (gossip, sync page, local publish)
//! is decoded, checked and stored on a blocking thread ([`crate::ingest`]); then gossipsub is told
//! to forward or drop it, offenders are penalised, new objects are announced to the actors that
//! follow them, and missing artifacts are fetched.

use std::sync::Arc;

use actix::prelude::*;
use tracing::{debug, warn};

use crate::frontier_tracker::FrontierTracker;
use crate::ingest::{ingest, IngestOutcome};
use crate::messages::*;
use crate::supervision::Restarts;
use crate::task_registry::TaskRegistry;
use crate::{Store, StoreError};

pub struct GossipRouter {
    store: Arc<Store>,
    peers: MeshLinks,
    frontier: Addr<FrontierTracker>,
    tasks: Addr<TaskRegistry>,
    legacy: LegacyLinks,
    restarts: Restarts,
}

/// What the router sends the PeerManager (recipients, so the router needs no PeerManager type).
#[derive(Clone)]
pub struct MeshLinks {
    pub validated: Recipient<Validated>,
    pub penalize: Recipient<Penalize>,
    pub publish: Recipient<Publish>,
    pub fetch: Recipient<FetchArtifact>,
}

impl MeshLinks {
    pub fn to<A>(addr: &Addr<A>) -> MeshLinks
    where
        A: Actor<Context = Context<A>>
            + Handler<Validated>
            + Handler<Penalize>
            + Handler<Publish>
            + Handler<FetchArtifact>,
    {
        MeshLinks {
            validated: addr.clone().recipient(),
            penalize: addr.clone().recipient(),
            publish: addr.clone().recipient(),
            fetch: addr.clone().recipient(),
        }
    }
}

/// What the router sends the legacy bridge (recipients, so the router needs no bridge type).
#[derive(Clone)]
pub struct LegacyLinks {
    pub forward: Recipient<Forward>,
    pub fetch: Recipient<LegacyFetch>,
    pub offence: Recipient<Offence>,
}

impl LegacyLinks {
    pub fn to<A>(addr: &Addr<A>) -> LegacyLinks
    where
        A: Actor<Context = Context<A>> + Handler<Forward> + Handler<LegacyFetch> + Handler<Offence>,
    {
        LegacyLinks {
            forward: addr.clone().recipient(),
            fetch: addr.clone().recipient(),
            offence: addr.clone().recipient(),
        }
    }
}

impl GossipRouter {
    pub fn new(
        store: Arc<Store>,
        peers: MeshLinks,
        frontier: Addr<FrontierTracker>,
        tasks: Addr<TaskRegistry>,
        legacy: LegacyLinks,
        restarts: Restarts,
    ) -> Self {
        GossipRouter {
            store,
            peers,
            frontier,
            tasks,
            legacy,
            restarts,
        }
    }

    /// Acts on what storing decided.
    fn dispatch(&self, origin: &Origin, outcome: IngestOutcome) -> IngestSummary {
        let summary = outcome.summary;
        match origin {
            Origin::Gossip { source, message_id } => {
                let rejected = summary.rejected > 0;
                self.peers.validated.do_send(Validated {
                    source: *source,
                    message_id: message_id.clone(),
                    acceptance: acceptance(
                        summary.accepted + summary.held + summary.duplicates > 0,
                        rejected,
                    ),
                });
                if rejected {
                    self.peers.penalize.do_send(Penalize {
                        peer: *source,
                        reason: summary.problems.join("; "),
                    });
                }
            }
            Origin::Legacy { conn } if summary.rejected > 0 => {
                self.legacy.offence.do_send(Offence {
                    conn: *conn,
                    count: summary.rejected as usize,
                    reason: summary.problems.join("; "),
                });
            }
            Origin::Local | Origin::Legacy { .. } | Origin::Sync { .. } => {}
        }
        // Bridge: what is new here goes to the legacy peers (all but the sender); what came
        // from this node or a legacy peer also goes on the mesh.
        if !outcome.stored_bodies.is_empty() {
            let except = match origin {
                Origin::Legacy { conn } => Some(*conn),
                _ => None,
            };
            let bodies = outcome.stored_bodies.iter().map(|(_, b)| b.clone());
            self.legacy.forward.do_send(Forward {
                except,
                bodies: bodies.collect(),
            });
            if matches!(origin, Origin::Local | Origin::Legacy { .. }) {
                for (message_type, body) in outcome.stored_bodies {
                    self.peers.publish.do_send(Publish { message_type, body });
                }
            }
        }
        if let Origin::Legacy { conn } = origin {
            for cid in outcome.missing_artifacts {
                self.legacy.fetch.do_send(LegacyFetch {
                    cid,
                    prefer: Some(*conn),
                });
            }
        } else {
            let prefer = match origin {
                Origin::Gossip { source, .. } | Origin::Sync { source } => Some(*source),
                _ => None,
            };
            for cid in outcome.missing_artifacts {
                self.peers.fetch.do_send(FetchArtifact { cid, prefer });
            }
        }
        if !outcome.stored.experiments.is_empty() || !outcome.stored.control_events.is_empty() {
            self.frontier.do_send(outcome.stored.clone());
        }
        if !outcome.stored.tasks.is_empty() || !outcome.stored.profiles.is_empty() {
            self.tasks.do_send(outcome.stored);
        }
        summary
    }
}

impl Actor for GossipRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // bounds the queue of objects waiting for validation; PeerManager drops beyond it
        ctx.set_mailbox_capacity(1024);
        self.restarts.started(ctx);
    }
}

impl Supervised for GossipRouter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.restarting();
    }
}

impl Handler<Ingest> for GossipRouter {
    type Result = ResponseActFuture<Self, IngestSummary>;

    fn handle(&mut self, msg: Ingest, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let cursor = match (&msg.origin, msg.sync_range) {
            (Origin::Sync { source }, Some(range)) => Some((source.to_string(), range)),
            _ => None,
        };
        let bodies = msg.bodies;
        let work = tokio::task::spawn_blocking(move || {
            ingest(
                &store,
                &bodies,
                cursor.as_ref().map(|(p, range)| (p.as_str(), *range)),
                true, // new objects' bodies are forwarded (mesh, legacy peers)
            )
        });
        let origin = msg.origin;
        Box::pin(actix::fut::wrap_future::<_, Self>(work).map(
            move |result, act, ctx| match result {
                Ok(Ok(outcome)) => {
                    debug!(
                        accepted = outcome.summary.accepted,
                        rejected = outcome.summary.rejected,
                        "ingested"
                    );
                    act.dispatch(&origin, outcome)
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "store refused a batch");
                    if matches!(e, StoreError::Db(_)) {
                        // the storage itself failed: stop; the supervisor restarts the router
                        // after a backoff, and stops the node if it keeps failing
                        ctx.stop();
                    }
                    IngestSummary {
                        problems: vec![format!("store: {e}")],
                        ..Default::default()
                    }
                }
                Err(e) => {
                    warn!(error = %e, "ingest task failed");
                    IngestSummary {
                        problems: vec![format!("ingest: {e}")],
                        ..Default::default()
                    }
                }
            },
        ))
    }
}
