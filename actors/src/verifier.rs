//! Verifier: re-runs other nodes' claims (issue #7, reference §f.3). It follows the store's
//! arrival log: a record from another node of this node's hardware class is re-run with some
//! probability (5 % base, ×3 for a publisher whose score is negative, else ×2 below 5, ×2 for a
//! record on its task's frontier, capped at 1; `verify_probability` sets the base), a challenge by another
//! node of a record of this class is always answered. A rerun trains the record's config
//! artifact (fetched by cid) for exactly its `num_steps` through the ExperimentRunner, so it
//! never overlaps research. Within the class tolerance → a signed `verification`; outside → a
//! signed `challenge` (when another node of the class can answer it); for a challenge → a signed
//! `challenge_response`. The ChallengeArbiter turns this node's challenges into disputes.
//!
//! Whether a record is spot-checked is a hash of this node's id and the record's id, so a
//! restarted node makes the same choices; work already signed (found in the store) is skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use spore_spec::json::{object, Value};
use spore_spec::wire::Message;
use spore_spec::{hardware, ControlEvent, ControlKind, ExperimentRecord, Identity, Signed, Status};
use tracing::{info, warn};

use crate::command_task::{self, Evaluator, SandboxOptions};
use crate::experiment_runner::{ExperimentRunner, RunExperiment, RunRequest, RunSandboxed};
use crate::reads::Reads;
use crate::registry::Registry;
use crate::store::{claim_of, LogKind};
use crate::store_writer::{wake_ups, LocalWrite, Look, NodeEvent, StoreWriter, Wake};
use crate::task_data::{builtin_baseline, task_data};
use crate::verdict;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub seed: [u8; 32],
    /// This node's `gpu_model` as it writes it into records.
    pub gpu_model: String,
    /// Base spot-check probability (the reference's 0.05).
    pub probability: f64,
    pub datasets_dir: std::path::PathBuf,
    /// How command tasks' code (and the reference's train.py) runs.
    pub sandbox: command_task::SandboxOptions,
    /// Where reruns come from: `None` runs them for real (training children, the sandbox); a
    /// source gives the figure of a rerun at once (in-process tests of the dispute cycle).
    pub rerun: Option<RerunSource>,
}

/// A rerun's figure as a function of the record, instead of running it.
#[derive(Clone)]
pub struct RerunSource(pub std::sync::Arc<dyn Fn(&ExperimentRecord) -> f64 + Send + Sync>);

impl std::fmt::Debug for RerunSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RerunSource")
    }
}

/// Work the verifier queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    Verify(String),
    Respond { record: String, challenger: String },
}

/// The verifier's decisions as a function of the store: which records to re-run and which
/// challenges to answer, from the arrival log after a cursor. No actor, no IO but the snapshot
/// it is given (unit-tested below; the actor runs it on a blocking thread).
#[derive(Clone, Debug)]
pub struct Planner {
    /// This node's id.
    pub me: String,
    /// The key of this node's spot-check draws ([`Planner::draw_key`]): only this node knows
    /// which records it will pick, so a publisher cannot grind a record id no verifier picks.
    pub draw_key: [u8; 32],
    /// This node's verification class.
    pub class: String,
    /// Base spot-check probability.
    pub probability: f64,
}

/// What one look at the log decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Where the next look starts.
    pub cursor: u64,
    pub jobs: Vec<Job>,
    /// Challenges whose record has not arrived yet: (record, challenger).
    pub waiting: Vec<(String, String)>,
    /// Whether entries were read (then there may be more).
    pub read_some: bool,
}

/// Log entries read per look (the actor looks again while it reads some).
const PLAN_PAGE: usize = 1_000;

impl Planner {
    /// The draw key of the node with identity seed `seed` (derived from it, so stable across
    /// restarts, and secret as the seed is).
    pub fn draw_key(seed: &[u8; 32]) -> [u8; 32] {
        spore_spec::crypto::hmac_sha256(seed, b"spored spot-check draw v1")
    }

    /// The spot-check decision for `record` (deterministic per node and record): the base
    /// probability ×3 for a publisher in bad standing (score < 0), else ×2 for a new or little
    /// known one (score < 5), as the reference; then ×2 for a frontier record.
    fn spot_check(&self, record: &ExperimentRecord, publisher_score: f64, frontier: bool) -> bool {
        let mut p = self.probability;
        if publisher_score < 0.0 {
            p *= 3.0;
        } else if publisher_score < 5.0 {
            p *= 2.0;
        }
        if frontier {
            p *= 2.0;
        }
        let h = spore_spec::crypto::hmac_sha256(&self.draw_key, record.id.as_bytes());
        let draw = u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
        draw < p.min(1.0)
    }

    /// Reads the log after `cursor` and decides the work it calls for; `waiting` are the
    /// challenges still waiting for their record.
    pub fn plan(
        &self,
        read: &crate::Reader,
        cursor: u64,
        waiting: &[(String, String)],
    ) -> Result<Plan, crate::StoreError> {
        let entries = read.log_after(cursor, PLAN_PAGE, 8 * 1024 * 1024)?;
        let mut plan = Plan {
            cursor: entries.last().map_or(cursor, |e| e.seq),
            read_some: !entries.is_empty(),
            ..Plan::default()
        };
        let mut waiting = waiting.to_vec();
        for entry in entries {
            match (entry.kind, Message::decode_body(entry.body.as_bytes())) {
                (LogKind::Experiment, Ok(Some(Message::Experiment(record)))) => {
                    // the default task's pinned root is vouched for by the binary, not by its
                    // claim: re-running it (a full-length baseline) would tell nothing
                    if record.node_id == self.me
                        || record.status == Status::Crash
                        || hardware::verification_class(&record.gpu_model) != self.class
                        || crate::default_task::pinned_root(&record.task_id)
                            .is_some_and(|r| r == record.id)
                        || self.already_signed(read, &record.id, None)
                    {
                        continue;
                    }
                    let publisher_score = read
                        .node_stats("", &record.node_id)
                        .ok()
                        .flatten()
                        .map_or(0.0, |s| s.score);
                    let frontier = read
                        .index_entry(&record.id)
                        .ok()
                        .flatten()
                        .zip(read.task_goal(&record.task_id).ok())
                        .is_some_and(|(e, goal)| e.is_frontier(goal));
                    if self.spot_check(&record, publisher_score, frontier) {
                        plan.jobs.push(Job::Verify(record.id.clone()));
                    }
                }
                (LogKind::Control, Ok(Some(Message::Control(event))))
                    if event.kind() == Some(ControlKind::Challenge) && event.node_id != self.me =>
                {
                    let record = event.payload_str("experiment_id").to_string();
                    waiting.push((record, event.node_id.clone()));
                }
                _ => {}
            }
        }
        // challenges to answer, once their record is here
        for (id, challenger) in waiting {
            match read.experiment(&id) {
                Ok(Some(record)) => {
                    let answerable = record.node_id != self.me
                        && record.status != Status::Crash
                        && hardware::verification_class(&record.gpu_model) == self.class
                        && !self.already_signed(read, &id, Some(&challenger));
                    if answerable {
                        plan.jobs.push(Job::Respond {
                            record: id,
                            challenger,
                        });
                    }
                }
                _ if plan.waiting.len() < 10_000 => plan.waiting.push((id, challenger)),
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Whether this node already signed a verification or challenge of `id` (or, with a
    /// challenger, a response to that challenge).
    fn already_signed(&self, read: &crate::Reader, id: &str, challenger: Option<&str>) -> bool {
        read.events_about(id).ok().is_some_and(|events| {
            events.iter().any(|e| {
                e.node_id == self.me
                    && match (challenger, e.kind()) {
                        (None, Some(ControlKind::Verification | ControlKind::Challenge)) => true,
                        (Some(c), Some(ControlKind::ChallengeResponse)) => {
                            e.payload_str("challenger_id") == c
                        }
                        _ => false,
                    }
            })
        })
    }

    /// Other nodes of the record's class that could answer a challenge (publishers of records
    /// of the class in its task, and signers of verification work of the class).
    fn class_peers(&self, read: &crate::Reader, record: &ExperimentRecord) -> usize {
        let mut nodes: HashSet<String> = read
            .nodes_stats(&record.task_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, s)| {
                s.gpu_models
                    .iter()
                    .any(|g| hardware::verification_class(g) == self.class)
            })
            .map(|(n, _)| n)
            .collect();
        for e in read.control_events().unwrap_or_default() {
            let gpu = e.payload_str("verifier_gpu");
            if !gpu.is_empty() && hardware::verification_class(gpu) == self.class {
                nodes.insert(e.node_id.clone());
            }
        }
        nodes.remove(&self.me);
        nodes.remove(&record.node_id);
        nodes.len()
    }

    /// What signing a rerun's result needs to know besides the result.
    fn facts(&self, read: &crate::Reader, record: &ExperimentRecord) -> Facts {
        let claim = read.claim(record).unwrap_or_else(|_| claim_of(record));
        let on_frontier = {
            let entry = read.index_entry(&record.id).ok().flatten();
            let goal = read.task_goal(&record.task_id).ok();
            entry.zip(goal).is_some_and(|(e, g)| e.is_frontier(g))
        };
        Facts {
            claim,
            on_frontier,
            class_peers: self.class_peers(read, record),
        }
    }
}

/// The store's side of a rerun's conclusion.
struct Facts {
    claim: verdict::Claim,
    on_frontier: bool,
    /// Other nodes of the class that could answer a challenge.
    class_peers: usize,
}

pub struct Verifier {
    registry: Registry,
    runner: Addr<ExperimentRunner>,
    options: VerifyOptions,
    identity: Identity,
    planner: Planner,
    cursor: u64,
    queue: VecDeque<Job>,
    queued: HashSet<String>,
    /// Challenges whose record has not arrived yet: (record, challenger).
    waiting: Vec<(String, String)>,
    /// A look at the store is under way; `look_again`: another was asked for meanwhile.
    looking: bool,
    look_again: bool,
    busy: bool,
    /// Rerun results by record (a record is re-run once, whatever asks for it).
    reruns: HashMap<String, f64>,
    arbiter: Option<Recipient<Challenged>>,
}

impl Verifier {
    pub fn new(
        registry: Registry,
        runner: Addr<ExperimentRunner>,
        options: VerifyOptions,
        arbiter: Option<Recipient<Challenged>>,
    ) -> Verifier {
        let identity = Identity::from_seed(options.seed);
        let me = identity.node_id();
        let class = hardware::verification_class(&options.gpu_model);
        let planner = Planner {
            me,
            draw_key: Planner::draw_key(&options.seed),
            class,
            probability: options.probability,
        };
        Verifier {
            registry,
            runner,
            options,
            identity,
            planner,
            cursor: 0,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            waiting: Vec::new(),
            looking: false,
            look_again: false,
            busy: false,
            reruns: HashMap::new(),
            arbiter,
        }
    }

    /// Looks at what arrived since the last look (on a blocking thread) and queues the work it
    /// calls for.
    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.looking {
            self.look_again = true;
            return;
        }
        self.looking = true;
        let (planner, cursor, waiting) = (self.planner.clone(), self.cursor, self.waiting.clone());
        let plan = self
            .registry
            .reads
            .read(move |read| planner.plan(read, cursor, &waiting));
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(plan).map(|plan, act, ctx| {
                act.looking = false;
                match plan {
                    Ok(plan) => {
                        act.cursor = plan.cursor;
                        act.waiting = plan.waiting;
                        for job in plan.jobs {
                            let key = match &job {
                                Job::Verify(id) => format!("v:{id}"),
                                Job::Respond { record, challenger } => {
                                    format!("r:{record}:{challenger}")
                                }
                            };
                            if act.queued.insert(key) {
                                act.queue.push_back(job);
                            }
                            act.registry.metrics.set_verifier_queue(act.queue.len());
                        }
                        if plan.read_some {
                            act.look_again = true; // the log may hold more than one page
                        }
                    }
                    Err(e) => warn!(error = %e, "verifier: cannot read the arrival log"),
                }
                if std::mem::take(&mut act.look_again) {
                    ctx.notify(Look);
                }
                act.pump(ctx);
            }),
        );
    }

    /// Starts the next job when none runs.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        self.registry.metrics.set_verifier_queue(self.queue.len());
        let id = match &job {
            Job::Verify(id) | Job::Respond { record: id, .. } => id.clone(),
        };
        self.busy = true;
        let cached = self.reruns.get(&id).copied();
        let rerun = self.rerun(id.clone(), cached);
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(rerun).map(move |result, act, ctx| {
                act.busy = false;
                match result {
                    Ok((record, bpb, facts)) => {
                        act.reruns.insert(record.id.clone(), bpb);
                        act.conclude(job, &record, bpb, facts);
                    }
                    Err(e) => warn!(record = %id, error = %e, "verification: rerun not possible"),
                }
                act.pump(ctx);
            }),
        );
    }

    /// Re-runs record `id` (or takes the earlier rerun's figure).
    fn rerun(
        &self,
        id: String,
        cached: Option<f64>,
    ) -> impl std::future::Future<Output = Result<(ExperimentRecord, f64, Facts), String>> + 'static
    {
        let reads = self.registry.reads.clone();
        let planner = self.planner.clone();
        let writer = self.registry.writer.clone();
        let runner = self.runner.clone();
        let dir = self.options.datasets_dir.clone();
        let sandbox = self.options.sandbox.clone();
        let source = self.options.rerun.clone();
        async move {
            let (record, task) = reads
                .read(move |read| {
                    let Some(record) = read.experiment(&id)? else {
                        return Ok(None);
                    };
                    let task = read.task(&record.task_id)?.map(|row| row.manifest);
                    Ok(Some((record, task)))
                })
                .await
                .map_err(|e| e.to_string())?
                .ok_or("record not stored")?;
            let facts_reads = reads.clone();
            let facts = |record: ExperimentRecord, value: f64| async move {
                let (record, facts) = facts_reads
                    .read(move |read| {
                        let facts = planner.facts(read, &record);
                        Ok((record, facts))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((record, value, facts))
            };
            if let Some(bpb) = cached {
                return facts(record, bpb).await;
            }
            if let Some(RerunSource(source)) = source {
                let value = source(&record);
                return facts(record, value).await;
            }
            let task = task.ok_or("its task is unknown here")?;
            let artifacts = Artifacts {
                reads: reads.clone(),
                writer: &writer,
            };
            let (value, output) = match task.artifact_type.as_str() {
                command_task::ARTIFACT_TYPE => {
                    rerun_command(&artifacts, &runner, &sandbox, &task, &record).await?
                }
                command_task::REFERENCE_ARTIFACT => {
                    rerun_reference(&artifacts, &runner, &sandbox, &task, &record).await?
                }
                _ => rerun_native(&artifacts, &runner, &dir, &task, &record).await?,
            };
            let curve = spore_train::report::curve(&output);
            let _ = writer
                .local(LocalWrite {
                    artifacts: Vec::new(),
                    run_outputs: vec![(record.id.clone(), true, output)],
                    curves: vec![(record.id.clone(), true, curve)],
                })
                .await;
            facts(record, value).await
        }
    }

    /// Signs what the rerun says.
    fn conclude(&mut self, job: Job, record: &ExperimentRecord, bpb: f64, facts: Facts) {
        if self.registry.stopping.is_set() {
            return; // a rerun that ended because the node stops proves nothing
        }
        let Facts {
            claim,
            on_frontier,
            class_peers,
        } = facts;
        let tol = claim.tolerance();
        let within = (bpb - claim.claimed).abs() <= tol;
        let me = self.planner.me.clone();
        let s = |x: &str| Value::Str(x.to_string());
        let common = |extra: Vec<(&'static str, Value)>| {
            let mut members = vec![
                ("experiment_id", s(&record.id)),
                ("task_id", s(&record.task_id)),
            ];
            members.extend(extra);
            members
        };
        let (kind, payload) = match job {
            Job::Verify(_) if within => (
                "verification",
                common(vec![
                    ("event_id", s(&format!("verification:{}:{me}", record.id))),
                    ("verified_node_id", s(&record.node_id)),
                    ("verifier_id", s(&me)),
                    ("verifier_bpb", Value::Float(bpb)),
                    ("verifier_gpu", s(&self.options.gpu_model)),
                    ("is_frontier", Value::Bool(on_frontier)),
                ]),
            ),
            Job::Verify(_) => {
                if class_peers == 0 {
                    info!(record = %record.id, claimed = claim.claimed, rerun = bpb, "verification: outside the tolerance, but no other node of this class can answer a challenge");
                    return;
                }
                (
                    "challenge",
                    common(vec![
                        ("event_id", s(&format!("challenge:{}:{me}", record.id))),
                        ("challenger_id", s(&me)),
                        ("challenger_bpb", Value::Float(bpb)),
                        ("challenger_gpu", s(&self.options.gpu_model)),
                    ]),
                )
            }
            Job::Respond { challenger, .. } => (
                "challenge_response",
                common(vec![
                    (
                        "event_id",
                        s(&format!(
                            "challenge_response:{}:{challenger}:{me}",
                            record.id
                        )),
                    ),
                    ("challenger_id", s(&challenger)),
                    ("verifier_id", s(&me)),
                    ("verifier_bpb", Value::Float(bpb)),
                    ("verifier_gpu", s(&self.options.gpu_model)),
                ]),
            ),
        };
        info!(record = %record.id, claimed = claim.claimed, rerun = bpb, tolerance = tol, "verification: signing a {kind}");
        let event = sign_event_at(
            &self.identity,
            kind,
            payload,
            self.registry.store.clock().now(),
        );
        if kind == "challenge" {
            if let Some(arbiter) = &self.arbiter {
                arbiter.do_send(Challenged {
                    record: record.id.clone(),
                });
            }
        }
        let registry = self.registry.clone();
        actix::spawn(async move {
            let _ = registry
                .publish_local(vec![Message::Control(event).encode_body()])
                .await;
        });
    }
}

/// Where a rerun finds its artifacts: the store, and the writer's events for one that is still
/// being fetched.
struct Artifacts<'a> {
    reads: Reads,
    writer: &'a StoreWriter,
}

/// How long a rerun waits for an artifact that was requested when its record or task arrived.
const ARTIFACT_WAIT: Duration = Duration::from_secs(60);

impl Artifacts<'_> {
    /// Artifact `cid`, waiting up to [`ARTIFACT_WAIT`] for it to be stored.
    async fn wait(&self, cid: &str, what: &str) -> Result<Vec<u8>, String> {
        // subscribe before looking, so an artifact stored in between is not missed
        let mut events = self.writer.subscribe();
        let deadline = tokio::time::Instant::now() + ARTIFACT_WAIT;
        loop {
            if let Some(bytes) = self.stored(cid).await {
                return Ok(bytes);
            }
            // wait for this artifact's event (or a lag, after which the store is asked again)
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => return Err(format!("its {what} did not arrive within 60 s")),
                    Ok(Ok(batch)) => {
                        let here = batch
                            .iter()
                            .any(|e| matches!(e, NodeEvent::ArtifactStored { cid: c } if c == cid));
                        if here {
                            break;
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                        return Err("the node is stopping".into())
                    }
                }
            }
        }
    }

    async fn stored(&self, cid: &str) -> Option<Vec<u8>> {
        let cid = cid.to_string();
        self.reads
            .read(move |read| read.artifact(&cid))
            .await
            .ok()
            .flatten()
    }
}

/// A native record: its config trained for exactly its `num_steps`.
async fn rerun_native(
    artifacts: &Artifacts<'_>,
    runner: &Addr<ExperimentRunner>,
    dir: &std::path::Path,
    task: &spore_spec::TaskManifest,
    record: &ExperimentRecord,
) -> Result<(f64, String), String> {
    // the artifact: the built-in baseline, or stored (fetched when the record arrived)
    let config = match builtin_baseline(dir, task)
        .ok()
        .filter(|b| spore_spec::crypto::sha256_hex(b) == record.code_cid)
    {
        Some(config) => config,
        None => artifacts.wait(&record.code_cid, "config artifact").await?,
    };
    // a task on the GPU corpus: made here first if this node does not have it yet
    crate::gpu_corpus::ensure_for(&task.dataset_cid, dir, || false).await?;
    let data = task_data(dir, task)?;
    // steps bound the run; twice the task's budget leaves a slower machine room
    let budget = rerun_budget(task, 2);
    info!(record = %record.id, steps = record.num_steps, "verification: re-running a claim");
    let result = runner
        .send(RunExperiment(RunRequest {
            config_bytes: config,
            budget,
            steps: Some(record.num_steps.max(1) as u64),
            label: format!("verify {}", &record.id[..8]),
            corpus: data.corpus,
            prepare: data.prepare,
        }))
        .await
        .map_err(|e| format!("the experiment runner is gone: {e}"))?;
    if !result.success {
        return Err(format!("the rerun failed: {}", result.failure_text()));
    }
    Ok((result.parsed.val_bpb, result.output))
}

/// A command task's record: its file under the task's pinned evaluator, in the sandbox.
async fn rerun_command(
    artifacts: &Artifacts<'_>,
    runner: &Addr<ExperimentRunner>,
    sandbox: &SandboxOptions,
    task: &spore_spec::TaskManifest,
    record: &ExperimentRecord,
) -> Result<(f64, String), String> {
    let document = artifacts
        .wait(&task.prepare_cid, "task's evaluator")
        .await?;
    let evaluator = Evaluator::parse(&document).map_err(|e| format!("its evaluator: {e}"))?;
    let code = artifacts.wait(&record.code_cid, "code artifact").await?;
    let interpreter = sandbox.interpreter(&evaluator.interpreter)?;
    let budget = rerun_budget(task, 1);
    let job = evaluator.job(&code, &interpreter, sandbox.limits(budget));
    info!(record = %record.id, "verification: re-running a command task's claim in the sandbox");
    let outcome = rerun_sandboxed(runner, job, record).await?;
    let result = crate::research::command_result(&outcome, &task.metric);
    if !result.success {
        return Err(format!("the rerun failed: {}", result.failure_text()));
    }
    Ok((result.parsed.val_bpb, result.output))
}

/// Runs a rerun's job in the sandbox; without a working sandbox the record is skipped.
async fn rerun_sandboxed(
    runner: &Addr<ExperimentRunner>,
    job: crate::sandbox::Job,
    record: &ExperimentRecord,
) -> Result<crate::sandbox::Outcome, String> {
    runner
        .send(RunSandboxed {
            job,
            label: format!("verify {}", &record.id[..8]),
        })
        .await
        .map_err(|e| format!("the experiment runner is gone: {e}"))?
        .map_err(|why| format!("skipped: {why}"))
}

/// A reference node's `train.py`, under PyTorch in the sandbox, when this node has both.
async fn rerun_reference(
    artifacts: &Artifacts<'_>,
    runner: &Addr<ExperimentRunner>,
    sandbox: &SandboxOptions,
    task: &spore_spec::TaskManifest,
    record: &ExperimentRecord,
) -> Result<(f64, String), String> {
    let workspace = sandbox
        .reference_workspace()
        .map_err(|why| format!("skipped: {why}"))?;
    let prepare_cid = spore_spec::crypto::sha256_hex(&workspace.prepare_py);
    if !record.prepare_cid.is_empty() && record.prepare_cid != prepare_cid {
        return Err(format!(
            "skipped: the record ran prepare.py {}, the configured workspace has {prepare_cid}",
            record.prepare_cid
        ));
    }
    let code = artifacts.wait(&record.code_cid, "train.py").await?;
    let budget = rerun_budget(task, 1);
    let job = workspace.job(&code, budget, sandbox.limits(budget));
    info!(record = %record.id, torch = %workspace.torch_version, "verification: re-running a reference train.py in the sandbox");
    let outcome = rerun_sandboxed(runner, job, record).await?;
    let parsed = spore_train::report::parse_output(&outcome.stdout);
    match outcome.failure {
        None if parsed.success(true) => Ok((parsed.val_bpb, outcome.stdout)),
        None => Err("the rerun printed no val_bpb".into()),
        Some(why) => Err(format!(
            "the rerun failed: {why}{}",
            outcome.detail.map(|d| format!(": {d}")).unwrap_or_default()
        )),
    }
}

/// A rerun's time: the task's budget (never the record's: a publisher must not set what its
/// verifiers spend), [`DEFAULT_RERUN_SECS`] when the task names none, at most
/// [`MAX_RERUN_SECS`], times `factor`; no arithmetic here can overflow.
pub fn rerun_budget(task: &spore_spec::TaskManifest, factor: u32) -> Duration {
    let secs = match u64::try_from(task.time_budget) {
        Ok(0) | Err(_) => DEFAULT_RERUN_SECS,
        Ok(secs) => secs.min(MAX_RERUN_SECS),
    };
    Duration::from_secs(secs.saturating_mul(u64::from(factor)))
}

/// A task's budget when it names none (the reference's default experiment length).
pub const DEFAULT_RERUN_SECS: u64 = 300;
/// The longest budget a rerun is given, whatever a task says: the most `spored task` lets a
/// task set (a day).
pub const MAX_RERUN_SECS: u64 = 86_400;

/// Signs a control event of `kind` with `payload` now.
pub fn sign_event(
    identity: &Identity,
    kind: &str,
    payload: Vec<(&'static str, Value)>,
) -> ControlEvent {
    sign_event_at(identity, kind, payload, crate::unix_now())
}

/// Signs a control event of `kind` with `payload` at `timestamp` (the node's clock).
pub fn sign_event_at(
    identity: &Identity,
    kind: &str,
    payload: Vec<(&'static str, Value)>,
    timestamp: i64,
) -> ControlEvent {
    let mut event = ControlEvent {
        event_type: kind.into(),
        payload: object(payload),
        node_id: identity.node_id(),
        timestamp,
        signature: String::new(),
        id: String::new(),
        version: 1,
    };
    event.sign_with(identity);
    event
}

impl Actor for Verifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(class = %self.planner.class, probability = self.options.probability, "verifier started");
        // woken by the store's events, not by a timer: a record or a challenge arrived
        ctx.add_stream(wake_ups(&self.registry.writer, |e| {
            matches!(e, NodeEvent::RecordAccepted { .. })
                || matches!(e, NodeEvent::ControlAccepted { event_type, .. } if event_type == "challenge")
        }));
        ctx.notify(Look); // what arrived before this start
    }
}

impl Handler<Look> for Verifier {
    type Result = ();

    fn handle(&mut self, _: Look, ctx: &mut Context<Self>) {
        self.look(ctx);
    }
}

impl StreamHandler<Wake> for Verifier {
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.look(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {} // the node is stopping
}

/// ChallengeArbiter: this node challenged record `record`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Challenged {
    pub record: String,
}

/// ChallengeArbiter: follows this node's challenges and signs the dispute once a challenge is
/// decided (three responses, or the timeout with at least one); a challenge nobody answered
/// before the timeout is dropped. Its state is the store's: after a restart it finds its open
/// challenges there. It also has the store decide challenges that ran out of time.
pub struct ChallengeArbiter {
    registry: Registry,
    identity: Identity,
    me: String,
    mine: HashSet<String>,
    /// The timer for the next challenge that runs out of time.
    deadline: Option<(i64, SpawnHandle)>,
    /// A read of the next deadline is under way; `reschedule`: another was asked for meanwhile
    /// (reads finish in any order; only the newest may set the timer).
    scheduling: bool,
    reschedule: bool,
}

impl ChallengeArbiter {
    pub fn new(registry: Registry, seed: [u8; 32]) -> ChallengeArbiter {
        let identity = Identity::from_seed(seed);
        let me = identity.node_id();
        ChallengeArbiter {
            registry,
            identity,
            me,
            mine: HashSet::new(),
            deadline: None,
            scheduling: false,
            reschedule: false,
        }
    }

    /// Sets the timer for the oldest open challenge's deadline (the store's verdicts change
    /// then even if no event arrives: a challenge with responses is decided, one without is
    /// dropped).
    fn schedule_deadline(&mut self, ctx: &mut Context<Self>) {
        if self.scheduling {
            self.reschedule = true;
            return;
        }
        self.scheduling = true;
        let next = self
            .registry
            .reads
            .read(|read| read.next_challenge_deadline());
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(next).map(|next, act, ctx| {
                act.scheduling = false;
                if std::mem::take(&mut act.reschedule) {
                    // the store changed while this read ran: its answer may be stale
                    return act.schedule_deadline(ctx);
                }
                match next {
                    Ok(next) => act.set_deadline(next, ctx),
                    Err(e) => warn!(error = %e, "challenge arbiter: cannot read the store"),
                }
            }),
        );
    }

    fn set_deadline(&mut self, next: Option<i64>, ctx: &mut Context<Self>) {
        if self.deadline.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, handle)) = self.deadline.take() {
            ctx.cancel_future(handle);
        }
        let Some(at) = next else { return };
        // the store's clock decides (a test moves it by hand); then the writer decides
        let (clock, writer) = (
            self.registry.store.clock().clone(),
            self.registry.writer.clone(),
        );
        let due = async move {
            clock.until(at).await;
            writer.decide_timed_out().await
        };
        let handle = ctx.spawn(
            actix::fut::wrap_future::<_, Self>(due).map(|result, act, ctx| {
                act.deadline = None;
                if let Err(e) = result {
                    warn!(error = %e, "deciding timed-out challenges failed");
                }
                act.tick(ctx);
                act.schedule_deadline(ctx);
            }),
        );
        self.deadline = Some((at, handle));
    }

    /// Looks at this node's open challenges (on a blocking thread) and signs the disputes of
    /// those that are decided.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.mine.is_empty() {
            return;
        }
        let (me, mine) = (self.me.clone(), self.mine.clone());
        let now = self.registry.store.clock().now();
        let decided = self
            .registry
            .reads
            .read(move |read| Ok(arbitrate(read, &me, &mine, now)));
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(decided).map(|decided, act, _| {
                let decisions = match decided {
                    Ok(d) => d,
                    Err(e) => return warn!(error = %e, "challenge arbiter: cannot read the store"),
                };
                for decision in decisions {
                    let id = match decision {
                        Arbitration::Closed(id) => id,
                        Arbitration::Dispute { record, payload } => {
                            let now = act.registry.store.clock().now();
                            let event = sign_event_at(&act.identity, "dispute", payload, now);
                            let registry = act.registry.clone();
                            actix::spawn(async move {
                                let _ = registry
                                    .publish_local(vec![Message::Control(event).encode_body()])
                                    .await;
                            });
                            record
                        }
                    };
                    act.mine.remove(&id);
                }
            }),
        );
    }
}

/// What became of one of this node's challenges.
#[derive(Debug, PartialEq)]
pub enum Arbitration {
    /// Nothing more to do (disputed already, or nobody answered before the timeout).
    Closed(String),
    /// Decided: sign a dispute with this payload.
    Dispute {
        record: String,
        payload: Vec<(&'static str, Value)>,
    },
}

/// The arbiter's decisions for this node's challenges (`mine`) as a function of the store and
/// `now`: which are over, and the dispute to sign for each decided one.
pub fn arbitrate(
    read: &crate::Reader,
    me: &str,
    mine: &HashSet<String>,
    now: i64,
) -> Vec<Arbitration> {
    let mut out = Vec::new();
    for id in mine {
        let Ok(Some(v)) = read.verdict(id) else {
            continue;
        };
        let events = read.events_about(id).unwrap_or_default();
        if events
            .iter()
            .any(|e| e.node_id == me && e.kind() == Some(ControlKind::Dispute))
        {
            out.push(Arbitration::Closed(id.clone()));
            continue;
        }
        let Some(challenge) = v.challenges.iter().find(|c| c.challenger == me) else {
            continue;
        };
        let Some((outcome, truth)) = challenge.decided else {
            if challenge.responses.is_empty()
                && now >= challenge.timestamp + verdict::challenge_timeout()
            {
                info!(record = %id, "challenge: nobody answered before the timeout; dropped");
                out.push(Arbitration::Closed(id.clone()));
            }
            continue;
        };
        let Ok(Some(record)) = read.experiment(id) else {
            continue;
        };
        let claim = read.claim(&record).unwrap_or_else(|_| claim_of(&record));
        let (mut support, mut oppose) = (Vec::new(), Vec::new());
        for (node, bpb) in &challenge.responses {
            if (bpb - claim.claimed).abs() <= claim.tolerance() {
                support.push(node.clone());
            } else {
                oppose.push(node.clone());
            }
        }
        let (winners, losers) = match outcome {
            verdict::Outcome::Upheld => (support, oppose),
            verdict::Outcome::Rejected => (oppose, support),
        };
        let s = |x: &str| Value::Str(x.to_string());
        let list = |l: &[String]| Value::Array(l.iter().map(|n| s(n)).collect());
        info!(record = %id, outcome = outcome.as_str(), ground_truth = truth, "challenge decided: signing the dispute");
        out.push(Arbitration::Dispute {
            record: id.clone(),
            payload: vec![
                ("event_id", s(&format!("dispute:{id}:{me}"))),
                ("experiment_id", s(id)),
                ("task_id", s(&record.task_id)),
                ("original_node_id", s(&record.node_id)),
                ("challenger_id", s(me)),
                ("challenger_bpb", Value::Float(challenge.challenger_bpb)),
                ("outcome", s(outcome.as_str())),
                ("ground_truth_bpb", Value::Float(truth)),
                (
                    "verifier_count",
                    Value::Int(challenge.responses.len() as i64),
                ),
                ("winner_verifier_ids", list(&winners)),
                ("loser_verifier_ids", list(&losers)),
            ],
        });
    }
    out
}

/// This node's challenges that have no dispute of its own yet (what the arbiter follows after a
/// restart).
fn open_challenges_of(
    read: &crate::Reader,
    me: &str,
) -> Result<HashSet<String>, crate::StoreError> {
    let events = read.control_events()?;
    let disputed: HashSet<&str> = events
        .iter()
        .filter(|e| e.node_id == me && e.kind() == Some(ControlKind::Dispute))
        .map(|e| e.payload_str("experiment_id"))
        .collect();
    Ok(events
        .iter()
        .filter(|e| e.node_id == me && e.kind() == Some(ControlKind::Challenge))
        .map(|e| e.payload_str("experiment_id"))
        .filter(|id| !disputed.contains(id))
        .map(str::to_string)
        .collect())
}

impl Actor for ChallengeArbiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // resume: this node's challenges without its dispute, then follow the events
        let me = self.me.clone();
        let resumed = self
            .registry
            .reads
            .read(move |read| open_challenges_of(read, &me));
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(resumed).map(|resumed, act, ctx| {
                match resumed {
                    Ok(open) if !open.is_empty() => {
                        info!(
                            open = open.len(),
                            "challenge arbiter: resuming this node's challenges"
                        );
                        act.mine.extend(open);
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "challenge arbiter: cannot read the store"),
                }
                ctx.notify(Look);
            }),
        );
        ctx.add_stream(wake_ups(&self.registry.writer, |e| {
            matches!(
                e,
                NodeEvent::ControlAccepted { .. } | NodeEvent::VerdictChanged { .. }
            )
        }));
    }
}

impl StreamHandler<Wake> for ChallengeArbiter {
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.tick(ctx);
        self.schedule_deadline(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {} // the node is stopping
}

impl Handler<Look> for ChallengeArbiter {
    type Result = ();

    fn handle(&mut self, _: Look, ctx: &mut Context<Self>) {
        self.tick(ctx);
        self.schedule_deadline(ctx);
    }
}

impl Handler<Challenged> for ChallengeArbiter {
    type Result = ();

    fn handle(&mut self, msg: Challenged, _: &mut Context<Self>) {
        self.mine.insert(msg.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_gets_the_tasks_budget_bounded_never_the_records() {
        let task = |secs| spore_spec::TaskManifest {
            time_budget: secs,
            ..Default::default()
        };
        assert_eq!(rerun_budget(&task(300), 2), Duration::from_secs(600));
        assert_eq!(
            rerun_budget(&task(i64::MAX), 1),
            Duration::from_secs(MAX_RERUN_SECS)
        );
        assert_eq!(
            rerun_budget(&task(i64::MAX), u32::MAX).as_secs(),
            MAX_RERUN_SECS * u32::MAX as u64
        );
        assert_eq!(
            rerun_budget(&task(-5), 1),
            Duration::from_secs(DEFAULT_RERUN_SECS)
        );
        assert_eq!(
            rerun_budget(&task(0), 1),
            Duration::from_secs(DEFAULT_RERUN_SECS)
        );
    }

    #[test]
    fn spot_check_draws_are_keyed_by_the_nodes_secret() {
        let planner = |seed: u8| Planner {
            me: "the same public node id".into(),
            draw_key: Planner::draw_key(&[seed; 32]),
            class: "CPU".into(),
            probability: 0.5,
        };
        let (a, b) = (planner(1), planner(2));
        let record = |i: usize| ExperimentRecord {
            id: spore_spec::crypto::sha256_hex(format!("record {i}").as_bytes()),
            ..Default::default()
        };
        let picks = |p: &Planner| -> Vec<bool> {
            (0..200)
                .map(|i| p.spot_check(&record(i), 10.0, false))
                .collect()
        };
        let (pa, pb) = (picks(&a), picks(&b));
        assert_eq!(pa, picks(&planner(1)), "deterministic for one node");
        assert_ne!(pa, pb, "what the public node id alone cannot tell");
        let share = pa.iter().filter(|p| **p).count();
        assert!((60..140).contains(&share), "about half picked: {share}");
    }
}
