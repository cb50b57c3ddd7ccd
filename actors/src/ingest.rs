//! Checking and storing inbound objects, without any actor machinery: decode, id, signature and
//! rules on every core, then lineage and storage in one transaction. The GossipRouter runs this
//! on a blocking thread; tests call it directly.

use spore_spec::object::SignedObject;
use spore_spec::wire::Message;

use crate::lineage::LineageReject;
use crate::messages::{IngestSummary, Stored};
pub use crate::refusal::{points, IngestError, Severity};
use crate::store::{ControlOutcome, ExperimentOutcome, ProfileOutcome, StoreError, TaskOutcome};
use crate::{Store, Writer};

/// The outcome of one batch.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    pub summary: IngestSummary,
    /// Newly stored objects, for the actors that follow them.
    pub stored: Stored,
    /// Frame bodies of newly stored objects, kept only when asked (to publish local objects).
    pub stored_bodies: Vec<(String, String)>,
    /// Code artifacts that newly stored records name and this node lacks.
    pub missing_artifacts: Vec<String>,
}

/// A checked frame body: a verified signed object, or artifact bytes (checked against their
/// cid when stored).
pub enum Checked {
    Object(Box<SignedObject>),
    Artifact { cid: String, bytes: Vec<u8> },
}

/// Decodes and verifies one frame body.
pub fn check_body(body: &[u8]) -> Result<Checked, IngestError> {
    match Message::decode_body(body).map_err(|e| IngestError::Wire(e.to_string()))? {
        Some(message) => check_message(message),
        None => Err(IngestError::Wire("unknown message type".into())),
    }
}

/// A frame body from a peer (gossip, a sync page, a reference peer's batch): as
/// [`check_body`], but artifact bytes (`code_response`) are refused. A node takes artifacts only
/// as answers to its own requests, for the cid it asked ([`crate::artifact_fetcher`]); one
/// pushed at it unasked would let any peer make every node store its bytes.
pub fn check_peer_body(body: &[u8]) -> Result<Checked, IngestError> {
    match check_body(body)? {
        Checked::Artifact { .. } => Err(IngestError::Wire(
            "an artifact nobody asked for (`code_response` is taken only as an answer)".into(),
        )),
        checked => Ok(checked),
    }
}

/// Whether `body` is byte for byte the frame body this node would send for the object it
/// carries (a copy in other bytes, whitespace or key order, is a variant). Artifacts count as
/// canonical: they are never gossiped.
pub fn is_canonical(body: &str, checked: &Checked) -> bool {
    let Checked::Object(object) = checked else {
        return true;
    };
    let message = match object.as_ref().clone() {
        SignedObject::Experiment(o) => Message::Experiment(o),
        SignedObject::Task(o) => Message::Task(o),
        SignedObject::Control(o) => Message::Control(o),
        SignedObject::Profile(o) => Message::Profile(o),
    };
    body == message.encode_body()
}

/// Verifies the object a decoded message carries (artifacts are checked when stored).
pub fn check_message(message: Message) -> Result<Checked, IngestError> {
    let object = match message {
        Message::CodeResponse { code_cid, code } => {
            return Ok(Checked::Artifact {
                cid: code_cid,
                bytes: code,
            })
        }
        Message::Experiment(o) => SignedObject::Experiment(o),
        Message::Task(o) => SignedObject::Task(o),
        Message::Control(o) => SignedObject::Control(o),
        Message::Profile(o) => SignedObject::Profile(o),
        other => {
            return Err(IngestError::Wire(format!(
                "`{}` carries no signed object",
                other.message_type()
            )))
        }
    };
    check_object(object)
}

/// Verifies id, signature and rules of a signed object.
pub fn check_object(object: SignedObject) -> Result<Checked, IngestError> {
    object
        .verify()
        .map_err(|e| IngestError::Object(format!("{}: {e}", object.kind())))?;
    Ok(Checked::Object(Box::new(object)))
}

/// Bodies checked per unit of work on a checking thread.
const CHECK_CHUNK: usize = 128;

/// Checks every body (on every core for large batches), keeping each body with its result,
/// in order. This is the expensive part of ingesting (parse, id, signature) and runs before,
/// and outside, any write transaction.
pub fn check_bodies(bodies: Vec<String>) -> Vec<(String, Result<Checked, IngestError>)> {
    check_bodies_with(bodies, check_body)
}

/// [`check_bodies`] for bodies from peers ([`check_peer_body`]: no unasked artifacts).
pub fn check_peer_bodies(bodies: Vec<String>) -> Vec<(String, Result<Checked, IngestError>)> {
    check_bodies_with(bodies, check_peer_body)
}

fn check_bodies_with(
    bodies: Vec<String>,
    check: fn(&[u8]) -> Result<Checked, IngestError>,
) -> Vec<(String, Result<Checked, IngestError>)> {
    if bodies.len() <= CHECK_CHUNK {
        return bodies
            .into_iter()
            .map(|b| {
                let checked = check(b.as_bytes());
                (b, checked)
            })
            .collect();
    }
    let mut results: Vec<Option<Result<Checked, IngestError>>> = Vec::new();
    results.resize_with(bodies.len(), || None);
    let threads = checking_threads();
    std::thread::scope(|s| {
        let per_thread = bodies.len().div_ceil(threads).div_ceil(CHECK_CHUNK) * CHECK_CHUNK;
        for (part, out) in bodies
            .chunks(per_thread)
            .zip(results.chunks_mut(per_thread))
        {
            s.spawn(move || {
                crate::lower_thread_priority(CHECK_NICENESS);
                for (body, slot) in part.iter().zip(out) {
                    *slot = Some(check(body.as_bytes()));
                }
            });
        }
    });
    bodies
        .into_iter()
        .zip(results)
        .map(|(b, r)| {
            (
                b,
                r.unwrap_or_else(|| Err(IngestError::Wire("not checked".into()))),
            )
        })
        .collect()
}

/// How much lower than the network's thread checking threads run (see
/// [`crate::lower_thread_priority`]).
const CHECK_NICENESS: i32 = 10;

fn checking_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8)
}

/// Checks every body and stores the valid ones in one transaction; with `sync_cursor`
/// (peer, (after, last)), also records how far the peer's log has been read. Large batches are
/// checked on every core while this thread stores the chunks already checked, in order, so
/// checking and storing overlap. For a process that owns its store (the CLI, tests); a running
/// node stores through its `StoreWriter`.
#[allow(clippy::disallowed_methods)] // for processes that own their store
pub fn ingest(
    store: &Store,
    bodies: &[String],
    sync_cursor: Option<(&str, (u64, u64))>,
    keep_bodies: bool,
) -> Result<IngestOutcome, StoreError> {
    let mut out = IngestOutcome::default();
    if bodies.len() <= CHECK_CHUNK {
        let checked = bodies.iter().map(|b| (b, check_body(b.as_bytes())));
        store.write(|w| write_checked(w, checked, sync_cursor, keep_bodies, &mut out))?;
        out.finish();
        return Ok(out);
    }
    let threads = checking_threads();
    let chunks = bodies.len().div_ceil(CHECK_CHUNK);
    let next_chunk = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Result<Checked, IngestError>>)>(
            threads * 2,
        );
        for _ in 0..threads {
            let (tx, next_chunk) = (tx.clone(), &next_chunk);
            s.spawn(move || loop {
                let i = next_chunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= chunks {
                    break;
                }
                let part = &bodies[i * CHECK_CHUNK..((i + 1) * CHECK_CHUNK).min(bodies.len())];
                let checked = part.iter().map(|b| check_body(b.as_bytes())).collect();
                if tx.send((i, checked)).is_err() {
                    break; // the writer stopped (a store error): nothing more to check
                }
            });
        }
        drop(tx);
        // chunks arrive in any order; hand them to the writer in order
        let mut early = std::collections::BTreeMap::new();
        let mut want = 0;
        let in_order = std::iter::from_fn(move || {
            while !early.contains_key(&want) {
                let (i, checked) = rx.recv().ok()?;
                early.insert(i, checked);
            }
            want += 1;
            early.remove(&(want - 1))
        })
        .flatten();
        store.write(|w| {
            write_checked(
                w,
                bodies.iter().zip(in_order),
                sync_cursor,
                keep_bodies,
                &mut out,
            )
        })
    })?;
    out.finish();
    Ok(out)
}

impl IngestOutcome {
    /// Tidies what the writes collected (called once the transaction committed).
    pub fn finish(&mut self) {
        self.missing_artifacts.sort();
        self.missing_artifacts.dedup();
    }
}

/// Counts what storing records did (each record with its outcome) into `out`; `released`: they
/// were roots that waited for a manifest, not what the sender sent.
fn count_experiments(
    w: &mut Writer<'_>,
    inserted: Vec<(spore_spec::ExperimentRecord, ExperimentOutcome)>,
    released: bool,
    keep_bodies: bool,
    out: &mut IngestOutcome,
) -> Result<(), StoreError> {
    for (record, outcome) in inserted {
        match outcome {
            ExperimentOutcome::Accepted { .. } => {
                out.summary.accepted += 1;
                if spore_spec::crypto::is_lower_hex(&record.code_cid, 64)
                    && !w.has_artifact(&record.code_cid)?
                {
                    out.missing_artifacts.push(record.code_cid.clone());
                }
                if keep_bodies {
                    out.stored_bodies.push((
                        "experiment".into(),
                        Message::Experiment(record.clone()).encode_body(),
                    ));
                }
                out.stored.experiments.push(record.id);
                out.stored.experiment_tasks.push(record.task_id);
            }
            ExperimentOutcome::Held { .. } => out.summary.held += 1,
            ExperimentOutcome::Duplicate => out.summary.duplicates += 1,
            ExperimentOutcome::Rejected(reason) => {
                out.summary.rejected += 1;
                let text = format!("experiment {}: {reason}", record.id);
                // a root a manifest does not allow is relayed by honest reference nodes, and one
                // released by a manifest was not sent with it: neither is the sender's fault
                let superseded = released
                    || matches!(
                        reason,
                        LineageReject::NotTheCreatorsRoot { .. }
                            | LineageReject::NotThePinnedRoot { .. }
                    );
                out.summary.problems.push(if superseded {
                    IngestError::Superseded(text)
                } else {
                    IngestError::Lineage(text)
                });
            }
        }
    }
    Ok(())
}

/// Stores checked bodies (each with its check's result, in order) inside a write transaction.
pub fn write_checked<B: AsRef<str>>(
    w: &mut Writer<'_>,
    checked: impl Iterator<Item = (B, Result<Checked, IngestError>)>,
    sync_cursor: Option<(&str, (u64, u64))>,
    keep_bodies: bool,
    out: &mut IngestOutcome,
) -> Result<(), StoreError> {
    let body_of = |b: &B| b.as_ref().to_string();
    for (body, object) in checked {
        let object = match object {
            Ok(Checked::Object(o)) => *o,
            Ok(Checked::Artifact { cid, bytes }) => {
                match w.put_artifact(&cid, &bytes) {
                    Ok(true) => out.summary.accepted += 1,
                    Ok(false) => out.summary.duplicates += 1,
                    Err(
                        e @ (StoreError::ArtifactMismatch { .. } | StoreError::ArtifactTooLarge(_)),
                    ) => {
                        out.summary.rejected += 1;
                        out.summary
                            .problems
                            .push(IngestError::Artifact(e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            Err(reason) => {
                out.summary.rejected += 1;
                out.summary.problems.push(reason);
                continue;
            }
        };
        match object {
            SignedObject::Experiment(record) => {
                let id = record.id.clone();
                let inserted = match w.insert_experiment(record) {
                    Ok(inserted) => inserted,
                    // refused before anything was written: this record only, not the batch
                    Err(e @ (StoreError::HeldPoolFull(_) | StoreError::HeldQuotaFull { .. })) => {
                        out.summary.rejected += 1;
                        out.summary
                            .problems
                            .push(IngestError::Full(format!("experiment {id}: {e}")));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                count_experiments(w, inserted, false, keep_bodies, out)?;
            }
            SignedObject::Task(manifest) => match w.insert_manifest(&manifest)? {
                TaskOutcome::Accepted => {
                    out.summary.accepted += 1;
                    // a command task's base file and pinned evaluator: every node needs
                    // the evaluator to judge reruns, so they come with the manifest
                    if manifest.artifact_type == crate::command_task::ARTIFACT_TYPE {
                        for cid in [&manifest.base_code_cid, &manifest.prepare_cid] {
                            if spore_spec::crypto::is_lower_hex(cid, 64) && !w.has_artifact(cid)? {
                                out.missing_artifacts.push(cid.clone());
                            }
                        }
                    }
                    if keep_bodies {
                        out.stored_bodies.push(("task".into(), body_of(&body)));
                    }
                    // roots that waited for the manifest to tell whether they count
                    let released = w.release_held_roots(&manifest.task_id)?;
                    out.stored.tasks.push(manifest.task_id);
                    count_experiments(w, released, true, keep_bodies, out)?;
                }
                TaskOutcome::Duplicate => out.summary.duplicates += 1,
            },
            SignedObject::Control(event) => match w.insert_control_event(&event)? {
                ControlOutcome::Accepted => {
                    out.summary.accepted += 1;
                    if keep_bodies {
                        out.stored_bodies
                            .push((event.event_type.clone(), body_of(&body)));
                    }
                    out.stored.control_events.push(event.id.clone());
                    out.stored.control_subjects.push((
                        event.event_type.clone(),
                        event.payload_str("experiment_id").to_string(),
                    ));
                }
                ControlOutcome::Duplicate => out.summary.duplicates += 1,
                // another event under an event id already taken: never stored, so never
                // passed on (a key could sign endless ones)
                // or a signer's later vote about a record it voted on
                ControlOutcome::DuplicateEventId { .. } | ControlOutcome::DuplicateVote { .. } => {
                    out.summary.duplicates += 1;
                    out.summary.variants += 1;
                }
                ControlOutcome::Refused(why) => {
                    out.summary.rejected += 1;
                    out.summary.problems.push(IngestError::Lineage(format!(
                        "{} {}: {why}",
                        event.event_type, event.id
                    )));
                }
                // no room: this event only, no fault of whoever relayed it
                ControlOutcome::Crowded { record } => {
                    out.summary.rejected += 1;
                    out.summary.problems.push(IngestError::Full(format!(
                        "{} {}: record {record} already has {} challenges, responses and disputes",
                        event.event_type,
                        event.id,
                        crate::store::MAX_CONTESTED_VOTES
                    )));
                }
            },
            SignedObject::Profile(profile) => match w.insert_profile(&profile)? {
                ProfileOutcome::Accepted => {
                    out.summary.accepted += 1;
                    if keep_bodies {
                        out.stored_bodies.push(("profile".into(), body_of(&body)));
                    }
                    out.stored.profiles.push(profile.node_id);
                }
                ProfileOutcome::Duplicate => out.summary.duplicates += 1,
                // older than the profile held: never stored, never passed on
                ProfileOutcome::Stale => {
                    out.summary.duplicates += 1;
                    out.summary.variants += 1;
                }
            },
        }
    }
    if let Some((peer, (after, last))) = sync_cursor {
        out.summary.cursor_advanced = w.advance_sync_cursor(peer, after, last)?;
    }
    Ok(())
}
