//! GossipRouter: validate, then forward. Every inbound object (gossip, sync page, local publish)
//! is decoded and checked on a blocking thread ([`crate::ingest::check_bodies`]) and stored by the
//! node's one writer ([`crate::store_writer`]); then gossipsub is told
//! to forward or drop it, offenders are penalised, new objects are announced to the actors that
//! follow them, and missing artifacts are fetched.

use actix::prelude::*;
use tracing::{debug, info, warn};

use crate::artifact_fetcher::FetchArtifact;
use crate::ingest::{check_bodies, check_peer_bodies, is_canonical, IngestOutcome};
use crate::messages::*;
use crate::peer_score::PeerRef;
use crate::store_writer::{IngestWork, StoreWriter};
use crate::supervision::Restarts;

/// Batches being checked or stored at once, per kind: gossip has permits of its own, so a sync
/// or legacy peers cannot crowd it out. Beyond its bound, gossip is answered `Ignore` at once (a
/// peer forwards it to others, and sync brings it later); every other origin waits: legacy
/// readers stop reading their socket, sync pages wait, so no queue grows without bound.
pub const INGESTS_IN_FLIGHT: usize = 16;
pub const GOSSIP_IN_FLIGHT: usize = 64;

/// Objects remembered as recently stored at most (beyond it, the expired ones are dropped).
const MAX_RECENT: usize = 100_000;

pub struct GossipRouter {
    writer: StoreWriter,
    /// Ingest outcomes for `/metrics`.
    metrics: crate::metrics::Metrics,
    /// When each object stored lately was stored: a gossiped copy of an object is passed on
    /// only within `replay_window` of that (see `dispatch`).
    recent: std::collections::HashMap<String, std::time::Instant>,
    replay_window: std::time::Duration,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    gossip_in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    peers: MeshLinks,
    legacy: LegacyLinks,
    fetcher: Recipient<FetchArtifact>,
    restarts: Restarts,
}

/// What the router sends the PeerManager (recipients, so the router needs no PeerManager type).
#[derive(Clone)]
pub struct MeshLinks {
    pub validated: Recipient<Validated>,
    pub penalize: Recipient<Penalize>,
    pub publish: Recipient<Publish>,
}

impl MeshLinks {
    pub fn to<A>(addr: &Addr<A>) -> MeshLinks
    where
        A: Actor<Context = Context<A>> + Handler<Validated> + Handler<Penalize> + Handler<Publish>,
    {
        MeshLinks {
            validated: addr.clone().recipient(),
            penalize: addr.clone().recipient(),
            publish: addr.clone().recipient(),
        }
    }
}

/// What the router sends the legacy bridge (recipients, so the router needs no bridge type).
#[derive(Clone)]
pub struct LegacyLinks {
    pub forward: Recipient<Forward>,
    pub offence: Recipient<Offence>,
}

impl LegacyLinks {
    pub fn to<A>(addr: &Addr<A>) -> LegacyLinks
    where
        A: Actor<Context = Context<A>> + Handler<Forward> + Handler<Offence>,
    {
        LegacyLinks {
            forward: addr.clone().recipient(),
            offence: addr.clone().recipient(),
        }
    }
}

impl GossipRouter {
    pub fn new(
        writer: StoreWriter,
        peers: MeshLinks,
        legacy: LegacyLinks,
        fetcher: Recipient<FetchArtifact>,
        restarts: Restarts,
        replay_window: std::time::Duration,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        GossipRouter {
            metrics,
            writer,
            recent: Default::default(),
            replay_window,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(INGESTS_IN_FLIGHT)),
            gossip_in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(GOSSIP_IN_FLIGHT)),
            peers,
            legacy,
            fetcher,
            restarts,
        }
    }

    /// Whether `key` was stored here within the replay window.
    fn stored_lately(&self, key: &str) -> bool {
        self.recent
            .get(key)
            .is_some_and(|at| at.elapsed() < self.replay_window)
    }

    fn remember_stored(&mut self, stored: &Stored) {
        let now = std::time::Instant::now();
        if self.recent.len() >= MAX_RECENT {
            let window = self.replay_window;
            self.recent.retain(|_, at| at.elapsed() < window);
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
        }
        let keys = stored
            .experiments
            .iter()
            .chain(&stored.tasks)
            .chain(&stored.control_events)
            .chain(&stored.profiles);
        for key in keys {
            self.recent.insert(key.clone(), now);
        }
    }

    /// Acts on what storing decided; `keys` are the objects the batch carried.
    fn dispatch(
        &mut self,
        origin: &Origin,
        outcome: IngestOutcome,
        keys: &[String],
    ) -> IngestSummary {
        self.remember_stored(&outcome.stored);
        let mut summary = outcome.summary;
        // a canonical copy of an object stored long ago (a replay, after gossipsub's own
        // duplicate cache forgot it) is not passed on: every node would pass it on again
        if matches!(origin, Origin::Gossip { .. })
            && summary.accepted == 0
            && !keys.iter().any(|k| self.stored_lately(k))
        {
            summary.variants = summary.duplicates;
        }
        // refused for want of room (a full held pool): the sender did nothing wrong
        let no_fault = !summary.problems.is_empty()
            && summary
                .problems
                .iter()
                .all(|p| p.severity() == crate::refusal::Severity::None);
        let rejected = summary.rejected > 0 && !no_fault;
        match origin {
            Origin::Gossip { source, message_id } => {
                self.peers.validated.do_send(Validated {
                    source: *source,
                    message_id: message_id.clone(),
                    // passed on: what was stored, and the canonical copy of what is held here.
                    // Not: a copy in other bytes (anyone could make endless variants of one
                    // valid record for every node to forward), nor an orphan held for its
                    // parent (anyone could sign endless orphans; sync brings honest ones)
                    acceptance: acceptance(
                        summary.accepted + (summary.duplicates - summary.variants) > 0,
                        rejected,
                    ),
                });
                if rejected {
                    self.peers.penalize.do_send(Penalize {
                        peer: *source,
                        reason: reasons(&summary.problems),
                        points: crate::refusal::points(&summary.problems),
                    });
                }
            }
            Origin::Legacy { conn, .. } if rejected => {
                self.legacy.offence.do_send(Offence {
                    conn: *conn,
                    points: crate::refusal::points(&summary.problems),
                    reason: reasons(&summary.problems),
                });
            }
            Origin::Local | Origin::Legacy { .. } | Origin::Sync { .. } => {}
        }
        // Bridge: what is new here goes to the legacy peers (all but the sender); what came
        // from this node or a legacy peer also goes on the mesh.
        if !outcome.stored_bodies.is_empty() {
            let except = match origin {
                Origin::Legacy { conn, .. } => Some(*conn),
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
        // the artifacts of new records: from the peer that sent them first, then any other
        let prefer = match origin {
            Origin::Gossip { source, .. } | Origin::Sync { source } => Some(PeerRef::Mesh(*source)),
            Origin::Legacy { addr, .. } => addr.map(PeerRef::Legacy),
            Origin::Local => None,
        };
        for cid in outcome.missing_artifacts {
            self.fetcher.do_send(FetchArtifact {
                cid,
                prefer: prefer.clone(),
            });
        }
        match outcome.stored.experiments.len() {
            0 => {}
            1 => debug!(id = %outcome.stored.experiments[0], "record stored"),
            n => info!(new = n, "records stored"),
        }
        summary
    }
}

/// The key an object is remembered under once stored (as `Stored` lists it).
fn object_key(checked: &crate::ingest::Checked) -> Option<String> {
    use crate::ingest::Checked;
    use spore_spec::object::SignedObject;
    let Checked::Object(object) = checked else {
        return None;
    };
    Some(match object.as_ref() {
        SignedObject::Experiment(o) => o.id.clone(),
        SignedObject::Task(o) => o.task_id.clone(),
        SignedObject::Control(o) => o.id.clone(),
        SignedObject::Profile(o) => o.node_id.clone(),
    })
}

fn reasons(problems: &[crate::refusal::IngestError]) -> String {
    let reasons: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    reasons.join("; ")
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
        let writer = self.writer.clone();
        let sync_cursor = match (&msg.origin, msg.sync_range) {
            (Origin::Sync { source }, Some(range)) => Some((source.to_string(), range)),
            _ => None,
        };
        let bodies = msg.bodies;
        let permit = match &msg.origin {
            Origin::Gossip { source, message_id } => {
                match self.gossip_in_flight.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        self.peers.validated.do_send(Validated {
                            source: *source,
                            message_id: message_id.clone(),
                            acceptance: libp2p::gossipsub::MessageAcceptance::Ignore,
                        });
                        // not the sender's fault: nothing refused, nothing counted
                        return Box::pin(actix::fut::ready(IngestSummary::default()));
                    }
                }
            }
            _ => None,
        };
        // this node's own objects are on disk before the reply; peers' may wait a moment
        let local = matches!(msg.origin, Origin::Local);
        let durable = local;
        let gossip = matches!(msg.origin, Origin::Gossip { .. });
        let in_flight = self.in_flight.clone();
        // untrusted bytes are parsed and verified on blocking threads, outside the transaction;
        // then the one writer stores what passed
        let work = async move {
            let _permit = match permit {
                Some(permit) => permit,
                None => in_flight
                    .acquire_owned()
                    .await
                    .map_err(|_| (true, "the router is closed".to_string()))?,
            };
            // artifacts come from peers only as answers to this node's requests (the fetcher)
            let check = if local {
                check_bodies
            } else {
                check_peer_bodies
            };
            let (checked, canonical, keys) = tokio::task::spawn_blocking(move || {
                let checked = check(bodies);
                // only gossip forwards duplicates, so only gossip asks whether it got a
                // variant (here, not in the one writer's transaction), and what it carried
                let canonical = !gossip
                    || checked
                        .iter()
                        .all(|(b, c)| c.as_ref().map_or(true, |c| is_canonical(b, c)));
                let keys: Vec<String> = match gossip {
                    true => checked
                        .iter()
                        .filter_map(|(_, c)| c.as_ref().ok().and_then(object_key))
                        .collect(),
                    false => Vec::new(),
                };
                (checked, canonical, keys)
            })
            .await
            .map_err(|e| (false, format!("ingest: {e}")))?;
            let mut outcome = writer
                .ingest(IngestWork {
                    checked,
                    sync_cursor,
                    keep_bodies: true, // new objects' bodies are forwarded (mesh, legacy peers)
                    durable,
                })
                .await
                .map_err(|e| (e.is_storage_failure(), e.to_string()))?;
            if !canonical {
                outcome.summary.variants = outcome.summary.duplicates;
            }
            Ok((outcome, keys))
        };
        let origin = msg.origin;
        let sync_page = msg.sync_range.is_some() || matches!(origin, Origin::Sync { .. });
        let label = match &origin {
            Origin::Gossip { .. } => "gossip",
            Origin::Sync { .. } => "sync",
            Origin::Local => "local",
            Origin::Legacy { .. } => "legacy",
        };
        Box::pin(actix::fut::wrap_future::<_, Self>(work).map(
            move |result: Result<(IngestOutcome, Vec<String>), (bool, String)>, act, ctx| {
                match result {
                    Ok((outcome, keys)) => {
                        act.metrics.count_ingest(label, &outcome.summary);
                        if sync_page {
                            act.metrics.sync_page_stored();
                        }
                        debug!(
                            accepted = outcome.summary.accepted,
                            rejected = outcome.summary.rejected,
                            "ingested"
                        );
                        act.dispatch(&origin, outcome, &keys)
                    }
                    Err((storage_failed, e)) => {
                        warn!(error = %e, "a batch was not stored");
                        if storage_failed {
                            // the storage itself failed: stop; the supervisor restarts the router
                            // after a backoff, and stops the node if it keeps failing
                            ctx.stop();
                        }
                        IngestSummary::default()
                    }
                }
            },
        ))
    }
}
