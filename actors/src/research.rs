//! The research loop: choose a parent, get a proposal, run it, keep or discard, sign, publish.
//!
//! Parent policy (docs/research.md): on the task's frontier, exploit (the best record) or explore
//! (a frontier record drawn with weight 1 / (1 + its children)). The exploit share follows the
//! reference: 0.5 under 10 records in the task, 0.6 under 50, then 0.7 while at least 2 of the 20
//! newest records are keeps within 1 % of the best, else 0.3 (stuck: explore more).
//!
//! Proposals come from the built-in search ([`spore_train::proposer`]); a root (the task's
//! baseline) is run first when the task has no records.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Goal, Identity, Number, Signed, Status, TaskManifest};
use spore_train::config::ARTIFACT_TYPE;
use spore_train::proposer::{self, Proposal};
use spore_train::report;
use spore_train::rng::SplitMix64;
use spore_train::RunConfig;
use tracing::{debug, info, warn};

use crate::artifact_fetcher::FetchArtifact;
use crate::command_task;
use crate::default_task;
use crate::experiment_runner::{ExperimentRunner, RunExperiment, RunRequest, RunResult};
use crate::llm::{self, LlmSettings, PromptContext};
use crate::registry::Registry;
use crate::setting::Setting;
use crate::store_writer::{ArtifactWrite, LocalWrite, NodeEvent};
use crate::task_data::{builtin_baseline, task_data, TaskData};
use crate::task_registry::GetActiveTask;

mod command;

pub use command::command_result;

/// The `agent_model` of records made by the built-in proposer.
pub const AGENT_BUILTIN: &str = "spored-search/1";
/// The record's `torch_version` field names the framework that trained it.
pub const FRAMEWORK: &str = "burn-0.21.0";

#[derive(Clone, Debug)]
pub struct ResearchOptions {
    pub seed: [u8; 32],
    /// The task `task_id` in config pins (`spored task use` changes it while the node runs).
    pub pinned_task: Setting<Option<String>>,
    /// Overrides the task's time budget (tests, quick looks).
    pub time_budget: Option<Duration>,
    /// Stop researching after this many experiments (the node keeps serving).
    pub max_experiments: Option<u64>,
    /// The record's `gpu_model` and `cuda_version`.
    pub gpu_model: String,
    pub cuda_version: String,
    /// Configs estimated above this training memory are never proposed (bytes).
    pub memory_limit: u64,
    /// Wait this long for peers to sync before the first experiment.
    pub initial_sync_wait: Duration,
    /// Ask this LLM for proposals (the built-in search stands in when it fails).
    pub llm: Setting<Option<LlmSettings>>,
    /// Where `spored prepare` stores corpora (`<dataset_cid>.txt`).
    pub datasets_dir: std::path::PathBuf,
    /// Experiments run at once: one per runner slot (a node with several GPUs runs one on each).
    pub parallel: usize,
    /// The GPU kernel cache to prepare before the first experiment (`crate::warmup`); None: no
    /// GPU, nothing to prepare.
    pub kernel_cache: Option<crate::warmup::Cache>,
    /// How command tasks' code runs.
    pub sandbox: command_task::SandboxOptions,
}

/// Exploit share for the parent choice (see the module docs).
pub fn exploit_share(task_records: u64, recent_keeps_near_best: usize) -> f64 {
    if task_records < 10 {
        0.5
    } else if task_records < 50 {
        0.6
    } else if recent_keeps_near_best >= 2 {
        0.7
    } else {
        0.3
    }
}

/// What an experiment ran and how its record describes it.
#[derive(Clone, Debug, Default)]
pub struct Made {
    /// The artifact (its SHA-256 is the record's `code_cid`).
    pub bytes: Vec<u8>,
    pub description: String,
    pub hypothesis: String,
    /// Unified diff against the parent's artifact.
    pub diff: String,
    pub agent_model: String,
    /// The record's `torch_version`: what ran it.
    pub framework: String,
    /// The record's `cuda_version` (`None`: this node's).
    pub cuda_version: Option<String>,
    /// The metric's name, for the console line.
    pub metric: String,
    /// Keep the run's output for the explorer.
    pub keep_output: bool,
}

impl Made {
    fn native(proposal: &Proposal, task: &TaskManifest) -> Made {
        Made {
            bytes: proposal.bytes.clone(),
            description: proposal.description.clone(),
            hypothesis: proposal.hypothesis.clone(),
            framework: FRAMEWORK.into(),
            metric: task.metric.clone(),
            ..Made::default()
        }
    }
}

/// Experiments done and under way over all of a loop's workers, for `max_experiments`: a
/// worker starts one only while done + under way is below the maximum, waits while it is not
/// but some under way may still come to nothing, and stops once enough are done.
#[derive(Debug, Default)]
struct Count {
    /// (done, under way)
    counts: std::sync::Mutex<(u64, u64)>,
    changed: tokio::sync::Notify,
}

impl Count {
    /// Whether this worker may start one more (waiting when that is not known yet).
    async fn start(&self, max: Option<u64>) -> bool {
        loop {
            let waited = {
                let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                let (done, running) = *counts;
                match max {
                    Some(max) if done >= max => return false,
                    Some(max) if done + running >= max => self.changed.notified(),
                    _ => {
                        counts.1 += 1;
                        return true;
                    }
                }
            };
            // registered before the lock was let go: an `end` after that wakes it
            waited.await;
        }
    }

    /// One under way ended; `done`: it made a record.
    fn end(&self, done: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.1 = counts.1.saturating_sub(1);
        counts.0 += u64::from(done);
        drop(counts);
        self.changed.notify_waiters();
    }

    fn done(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// A config one worker runs now (in [`ResearchLoop::in_flight`] until dropped).
struct InFlight {
    set: Arc<std::sync::Mutex<HashSet<String>>>,
    cid: String,
}

impl InFlight {
    /// Claims `cid` for this worker; None: another worker runs it now.
    fn claim(set: &Arc<std::sync::Mutex<HashSet<String>>>, cid: &str) -> Option<InFlight> {
        let fresh = set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cid.to_string());
        fresh.then(|| InFlight {
            set: set.clone(),
            cid: cid.to_string(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.cid);
    }
}

/// The parent chosen for the next experiment and what the proposer is told about it.
struct Choice {
    parent: Candidate,
    record: ExperimentRecord,
    /// The best metric on the task's frontier.
    best: f64,
    task_records: u64,
    /// Artifacts already run in the task (never proposed again).
    tried: HashSet<String>,
    /// (status, metric, description) of the parent's children.
    tried_from_parent: Vec<(String, f64, String)>,
}

/// One frontier candidate for the parent choice.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub metric: f64,
    pub children: usize,
}

/// Pick a parent from `frontier` (best first).
pub fn choose_parent<'a>(
    frontier: &'a [Candidate],
    exploit: f64,
    rng: &mut SplitMix64,
) -> Option<&'a Candidate> {
    let first = frontier.first()?;
    if rng.next_f64() < exploit {
        return Some(first);
    }
    let weights: Vec<f64> = frontier
        .iter()
        .map(|c| 1.0 / (1.0 + c.children as f64))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    for (c, w) in frontier.iter().zip(&weights) {
        if x < *w {
            return Some(c);
        }
        x -= w;
    }
    frontier.last()
}

/// What the loop needs from a running node.
#[derive(Clone)]
pub struct ResearchLoop {
    registry: Registry,
    runner: Addr<ExperimentRunner>,
    options: ResearchOptions,
    /// Store events since the loop found an artifact missing and asked peers for it (taken
    /// when it waits; otherwise no subscription is held, so no event batch is kept for it).
    missing_artifact: Arc<std::sync::Mutex<Option<EventReceiver>>>,
    /// Whether the user was told that a shorter budget than the task's competes with records
    /// trained for the task's.
    budget_noted: Arc<std::sync::atomic::AtomicBool>,
    /// Which of the loop's workers this is (one per slot, see `ResearchOptions::parallel`).
    /// Only worker 0 runs a task's baseline: a task has one root.
    worker: usize,
    /// Configs being run by the workers now: never proposed twice at once.
    in_flight: Arc<std::sync::Mutex<HashSet<String>>>,
    /// Experiments done and under way, over all workers (for `max_experiments`).
    count: Arc<Count>,
}

impl ResearchLoop {
    pub fn new(
        registry: Registry,
        runner: Addr<ExperimentRunner>,
        options: ResearchOptions,
    ) -> ResearchLoop {
        ResearchLoop {
            registry,
            runner,
            options,
            missing_artifact: Arc::default(),
            budget_noted: Default::default(),
            worker: 0,
            in_flight: Arc::default(),
            count: Arc::default(),
        }
    }

    /// Worker `worker` of this loop: its own wait for artifacts, everything else shared.
    fn worker(&self, worker: usize) -> ResearchLoop {
        ResearchLoop {
            worker,
            missing_artifact: Arc::default(),
            ..self.clone()
        }
    }

    /// Runs until stopped (or `max_experiments`). Errors in one iteration are logged and the
    /// loop goes on after a pause.
    pub async fn run(self) {
        let identity = Identity::from_seed(self.options.seed);
        let mut rng = SplitMix64::new(
            u64::from_le_bytes(self.options.seed[..8].try_into().unwrap_or([0; 8]))
                ^ crate::unix_now() as u64,
        );
        let stopping = self.registry.stopping.clone();
        // The node stopping ends the loop wherever it is: the experiment's future is dropped
        // (its child is killed) before a result could be read, so nothing about an experiment
        // cut short is ever signed or published, and no new proposal starts.
        tokio::select! {
            biased;
            _ = stopping.wait() => info!("research: stopped"),
            _ = self.experiments(&identity, &mut rng) => {}
        }
    }

    async fn experiments(&self, identity: &Identity, rng: &mut SplitMix64) {
        if !self.options.initial_sync_wait.is_zero() {
            info!(
                "research: waiting {:?} for peers to sync first",
                self.options.initial_sync_wait
            );
            actix_rt::time::sleep(self.options.initial_sync_wait).await;
        }
        self.warm_up(&identity.node_id()).await;
        let workers = self.options.parallel.max(1);
        if workers > 1 {
            info!("research: {workers} experiments at a time, one per GPU");
        }
        // each worker draws its own parents and proposals
        let seeds: Vec<u64> = (0..workers).map(|_| rng.next_u64()).collect();
        futures::future::join_all(seeds.into_iter().enumerate().map(|(i, seed)| {
            let worker = self.worker(i);
            async move {
                worker
                    .experiments_of_worker(identity, &mut SplitMix64::new(seed))
                    .await
            }
        }))
        .await;
        info!(
            "research: {} experiments done (max reached); still serving the mesh",
            self.count.done()
        );
    }

    /// Prepares the GPU kernels of the task's baseline before the first experiment, once per
    /// kernel cache (`crate::warmup`). A failure is said and left: the first experiment then
    /// prepares its own.
    async fn warm_up(&self, me: &str) {
        let Some(cache) = self.options.kernel_cache.clone() else {
            return;
        };
        let (pinned, me, dir) = (
            self.options.pinned_task.get(),
            me.to_string(),
            self.options.datasets_dir.clone(),
        );
        let target = self
            .registry
            .reads
            .read(move |read| {
                Ok(task_now(read, pinned.as_deref(), &me)
                    .and_then(|task| crate::warmup::target(read, task, &dir)))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let target = match target {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => return debug!("research: no GPU kernels prepared first ({e})"),
        };
        let key = target.key(&cache.on);
        let (task, dir) = (short(&target.task.task_id).to_string(), &cache.dir);
        if crate::warmup::prepared(dir, &key) {
            return info!(task = %task, cache = %dir.display(), "GPU kernels for the task's baseline are prepared already");
        }
        // the task's corpus, when it is the GPU corpus and not here yet (the baseline runs on it)
        if let Err(e) = self.fetch_corpus(&target.task).await {
            return warn!("research: no GPU kernels prepared first ({e})");
        }
        let request = match target.request(&self.options.datasets_dir) {
            Ok(r) => r,
            Err(e) => return debug!("research: no GPU kernels prepared first ({e})"),
        };
        info!(task = %task, cache = %dir.display(), "preparing GPU kernels for the task's baseline before the first experiment");
        let result = match self.runner.send(RunExperiment(request)).await {
            Ok(r) => r,
            Err(e) => return warn!("research: preparing GPU kernels: the runner is gone ({e})"),
        };
        if !result.success {
            return warn!(
                "research: preparing GPU kernels failed ({}); each experiment prepares its own",
                result.failure_text()
            );
        }
        let what = format!("task {} baseline, {:?}", target.task.task_id, cache.on);
        if let Err(e) = crate::warmup::mark(dir, &key, &what) {
            warn!(cache = %dir.display(), "research: cannot note the prepared kernels ({e})");
        }
        info!(
            task = %task,
            seconds = result.wall.as_secs(),
            "GPU kernels prepared"
        );
    }

    /// One worker's experiments, one after another, until `max_experiments` are done.
    async fn experiments_of_worker(&self, identity: &Identity, rng: &mut SplitMix64) {
        let mut discard_streak = 0usize;
        let mut last_error: Option<String> = None;
        loop {
            if !self.count.start(self.options.max_experiments).await {
                return;
            }
            let outcome = self.iteration(identity, rng, discard_streak).await;
            // counted (or given back) before any wait: no other worker waits on this one's sleep
            self.count.end(matches!(outcome, Ok(Some(_))));
            match outcome {
                Ok(Some(status)) => {
                    last_error = None;
                    discard_streak = if status == Status::Keep {
                        0
                    } else {
                        discard_streak + 1
                    };
                }
                Ok(None) => {
                    let missing = self
                        .missing_artifact
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    match missing {
                        // waiting for an artifact from peers: go on when one is stored
                        Some(mut events) => artifact_stored(&mut events, ARTIFACT_PATIENCE).await,
                        // waiting for something no event announces (an LLM to be configured,
                        // another worker's baseline)
                        None => actix_rt::time::sleep(Duration::from_secs(5)).await,
                    }
                }
                Err(e) => {
                    // said once: the same reason again (nothing changed yet) is not repeated
                    if last_error.as_deref() != Some(e.as_str()) {
                        warn!("research: {e}; trying again every 10 s (said once)");
                    } else {
                        debug!("research: {e}");
                    }
                    last_error = Some(e);
                    actix_rt::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    }

    /// The task to research: the pinned one, else the most active one this node can run, else
    /// the built-in default task (stored and announced on first use).
    async fn task(&self, me: &str) -> Result<TaskManifest, String> {
        let pinned = self.options.pinned_task.get();
        let me = me.to_string();
        // the most active task is the TaskRegistry's to know
        let active = match pinned {
            Some(_) => None,
            None => self
                .registry
                .tasks
                .send(GetActiveTask)
                .await
                .map_err(|e| format!("the task registry is gone: {e}"))??,
        };
        let chosen = self
            .registry
            .reads
            .read(move |read| {
                Ok(task_to_research(
                    read,
                    pinned.as_deref(),
                    active.as_deref(),
                    &me,
                ))
            })
            .await
            .map_err(|e| e.to_string())??;
        let manifest = match chosen {
            TaskChoice::Known(manifest) => return Ok(*manifest),
            TaskChoice::Default { stored: true } => return Ok(default_task::manifest()),
            TaskChoice::Default { stored: false } => default_task::manifest(),
        };
        let body = Message::Task(manifest.clone()).encode_body();
        let summary = self
            .registry
            .publish_local(vec![body])
            .await
            .map_err(|e| e.to_string())?;
        if summary.rejected > 0 {
            return Err(format!(
                "the default task was refused: {:?}",
                summary.problems
            ));
        }
        info!(task_id = %manifest.task_id, "research: using the built-in default task");
        Ok(manifest)
    }

    /// One experiment. `Ok(None)`: nothing to do yet (e.g. waiting for an artifact).
    async fn iteration(
        &self,
        identity: &Identity,
        rng: &mut SplitMix64,
        discard_streak: usize,
    ) -> Result<Option<Status>, String> {
        let task = self.task(&identity.node_id()).await?;
        let budget = self
            .options
            .time_budget
            .unwrap_or(Duration::from_secs(task.time_budget.max(1) as u64));
        if budget.as_secs() < task.time_budget.max(1) as u64
            && !self
                .budget_noted
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            crate::say!(
                "note: experiments train for {} s here, the task's records for {} s: they are kept only if they beat those",
                budget.as_secs(),
                task.time_budget
            );
        }
        if task.artifact_type == command_task::ARTIFACT_TYPE {
            return self.command_iteration(identity, rng, &task, budget).await;
        }
        let choice = match self.choose(&task, rng).await? {
            Some(choice) => choice,
            // no root yet. The default task's is pinned: store it and start from it
            None if default_task::pinned_root(&task.task_id).is_some() => {
                self.store_pinned_root().await?;
                self.choose(&task, rng)
                    .await?
                    .ok_or("the default task's pinned root is not on its frontier")?
            }
            // one root: another worker's baseline is awaited
            None if self.worker > 0 => return Ok(None),
            // only the creator's root counts (`lineage::TaskRoot`): a baseline run here would
            // be refused
            None if task.created_by != identity.node_id() => {
                return Err(format!(
                    "task {} has no root yet; waiting for its creator {} to publish one",
                    short(&task.task_id),
                    short(&task.created_by)
                ))
            }
            None => return self.run_baseline(identity, &task, budget).await.map(Some),
        };
        let goal = task.goal();
        let parent = &choice.parent;
        let Some(parent_bytes) = self.artifact(&choice.record.code_cid).await? else {
            info!(cid = %choice.record.code_cid, "research: fetching the parent's config first");
            return Ok(None);
        };
        let parent_config = match RunConfig::from_bytes(&parent_bytes) {
            Ok(c) => c,
            Err(e) => {
                return Err(format!(
                    "the parent {}'s config cannot be used: {e}",
                    &parent.id[..8]
                ))
            }
        };
        let mut agent = AGENT_BUILTIN.to_string();
        let mut proposal = None;
        if let Some(settings) = self.options.llm.get() {
            let ctx = PromptContext {
                parent_val_bpb: parent.metric,
                best_val_bpb: choice.best,
                task_records: choice.task_records,
                tried_from_parent: choice.tried_from_parent,
            };
            let parent_text = String::from_utf8_lossy(&parent_bytes).into_owned();
            let limit = self.options.memory_limit;
            let tried = choice.tried.clone();
            let model = settings.model.clone();
            let asked = actix_rt::task::spawn_blocking(move || {
                llm::propose(&settings, &parent_text, &ctx, limit, &|cid| {
                    tried.contains(cid)
                })
            })
            .await;
            match asked {
                Ok(Ok(p)) => {
                    agent = model;
                    proposal = Some(p);
                }
                Ok(Err(why)) => {
                    warn!("research: LLM proposal skipped ({why}); using the built-in search")
                }
                Err(e) => warn!("research: LLM call failed ({e}); using the built-in search"),
            }
        }
        let proposal = match proposal {
            Some(p) => p,
            None => proposer::propose(
                &parent_config,
                rng,
                discard_streak,
                self.options.memory_limit,
                &|cid| choice.tried.contains(cid),
            )
            .ok_or("the search found no untried config near this parent")?,
        };
        // another worker may have proposed the same config a moment ago
        let Some(_running) = InFlight::claim(&self.in_flight, &proposal.cid) else {
            return Ok(None);
        };
        let result = self
            .run_experiment(&task, &proposal, budget, &format!("{}", proposal.config))
            .await?;
        let status = decide(&result, Some(parent.metric), goal);
        let made = Made {
            diff: spore_train::diff::unified(
                &String::from_utf8_lossy(&parent_bytes),
                &String::from_utf8_lossy(&proposal.bytes),
                "config.toml",
            ),
            agent_model: agent,
            ..Made::native(&proposal, &task)
        };
        let record = self.record(
            identity,
            &task,
            Some(&choice.record),
            &made,
            &result,
            status,
            budget,
        );
        self.publish(record, &made, &result, Some(parent.metric))
            .await
            .map(Some)
    }

    /// A stored artifact; when missing, asks peers for it and returns `None`.
    async fn artifact(&self, cid: &str) -> Result<Option<Vec<u8>>, String> {
        // subscribed before looking: an artifact stored right after the look still wakes us
        let events = self.registry.writer.subscribe();
        let key = cid.to_string();
        let found = self
            .registry
            .reads
            .read(move |read| read.artifact(&key))
            .await
            .map_err(|e| e.to_string())?;
        if found.is_none() {
            self.registry.fetcher.do_send(FetchArtifact {
                cid: cid.to_string(),
                prefer: None,
            });
            *self
                .missing_artifact
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(events);
        }
        Ok(found)
    }

    /// The parent of the next experiment (see the module docs); `None`: the task has no root
    /// yet, so the baseline runs first.
    async fn choose(
        &self,
        task: &TaskManifest,
        rng: &mut SplitMix64,
    ) -> Result<Option<Choice>, String> {
        let (task, mut draws) = (task.clone(), rng.clone());
        let running: Vec<String> = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let (choice, draws) = self
            .registry
            .reads
            .read(move |read| {
                let choice = choose_in(read, &task, &mut draws);
                Ok((choice, draws))
            })
            .await
            .map_err(|e| e.to_string())?;
        *rng = draws;
        // what the other workers run now counts as tried
        Ok(choice?.map(|mut c| {
            c.tried.extend(running);
            c
        }))
    }

    /// Stores the default task's pinned root and its artifact (the built-in baseline).
    async fn store_pinned_root(&self) -> Result<(), String> {
        let root = default_task::root();
        let bytes = default_task::baseline().to_bytes();
        if spore_spec::crypto::sha256_hex(&bytes) != root.code_cid {
            return Err("the built-in baseline is not the pinned root's code".into());
        }
        let written = self
            .registry
            .writer
            .local(LocalWrite {
                artifacts: vec![(root.code_cid.clone(), bytes)],
                ..LocalWrite::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(ArtifactWrite::Refused(why)) = written.first() {
            return Err(format!("the baseline artifact was refused: {why}"));
        }
        let summary = self
            .registry
            .publish_local(vec![Message::Experiment(root.clone()).encode_body()])
            .await
            .map_err(|e| e.to_string())?;
        if summary.rejected > 0 {
            return Err(format!(
                "the default task's pinned root was refused: {:?}",
                summary.problems
            ));
        }
        info!(
            root = %short(&root.id),
            val_bpb = root.val_bpb.value(),
            "research: the default task starts from its pinned root (the baseline, run once for {} s)",
            root.time_budget
        );
        Ok(())
    }

    async fn run_baseline(
        &self,
        identity: &Identity,
        task: &TaskManifest,
        budget: Duration,
    ) -> Result<Status, String> {
        let stored = self
            .registry
            .reads
            .read({
                let cid = task.base_code_cid.clone();
                move |read| read.artifact(&cid)
            })
            .await
            .map_err(|e| e.to_string())?;
        let bytes = match stored {
            Some(bytes) => bytes,
            None => {
                let builtin = self.builtin_baseline(task)?;
                if spore_spec::crypto::sha256_hex(&builtin) != task.base_code_cid {
                    self.registry.fetcher.do_send(FetchArtifact {
                        cid: task.base_code_cid.clone(),
                        prefer: None,
                    });
                    return Err("fetching the task's base config from peers".into());
                }
                builtin
            }
        };
        let config = RunConfig::from_bytes(&bytes)
            .map_err(|e| format!("the task's base config cannot be used: {e}"))?;
        let proposal = Proposal::of(
            config,
            "baseline: the task's base config".into(),
            String::new(),
        );
        if proposal.bytes != bytes {
            return Err("the task's base config is not in canonical form".into());
        }
        info!(task_id = %task.task_id, "research: running the baseline (task root)");
        let result = self
            .run_experiment(task, &proposal, budget, "baseline")
            .await?;
        let status = decide(&result, None, task.goal());
        let made = Made {
            agent_model: "baseline".into(),
            ..Made::native(&proposal, task)
        };
        let record = self.record(identity, task, None, &made, &result, status, budget);
        self.publish(record, &made, &result, None).await
    }

    fn task_data(&self, task: &TaskManifest) -> Result<TaskData, String> {
        task_data(&self.options.datasets_dir, task)
    }

    fn builtin_baseline(&self, task: &TaskManifest) -> Result<Vec<u8>, String> {
        builtin_baseline(&self.options.datasets_dir, task)
    }

    /// Makes the GPU corpus (`crate::gpu_corpus`) when `task` trains on it and this node does
    /// not have it yet: downloaded once from the registries; the node stopping ends it.
    async fn fetch_corpus(&self, task: &TaskManifest) -> Result<(), String> {
        let stopping = self.registry.stopping.clone();
        crate::gpu_corpus::ensure_for(&task.dataset_cid, &self.options.datasets_dir, move || {
            stopping.is_set()
        })
        .await
    }

    async fn run_experiment(
        &self,
        task: &TaskManifest,
        proposal: &Proposal,
        budget: Duration,
        label: &str,
    ) -> Result<RunResult, String> {
        self.fetch_corpus(task).await?;
        let data = self.task_data(task)?;
        info!(config = %proposal.config, "research: {}", proposal.description);
        let request = RunRequest {
            config_bytes: proposal.bytes.clone(),
            budget,
            steps: None,
            label: label.to_string(),
            corpus: data.corpus,
            prepare: data.prepare,
        };
        let result = match self.runner.send(RunExperiment(request)).await {
            Ok(result) => result,
            Err(e) => RunResult {
                error: format!("the experiment runner is gone: {e}"),
                ..RunResult::default()
            },
        };
        if result.interrupted {
            // not an outcome of the experiment: no record, no crash
            self.registry.metrics.count_experiment("interrupted");
            return Err(format!(
                "the experiment was stopped from outside ({}); nothing is published about it",
                result.error
            ));
        }
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        identity: &Identity,
        task: &TaskManifest,
        parent: Option<&ExperimentRecord>,
        made: &Made,
        result: &RunResult,
        status: Status,
        budget: Duration,
    ) -> ExperimentRecord {
        let p = &result.parsed;
        let val_bpb = if result.success { p.val_bpb } else { 0.0 };
        // only this node's own words about a failure: what the program printed stays local
        let mut description = made.description.to_string();
        if !result.error.is_empty() {
            description = format!("{description} [failed: {}]", result.error);
        }
        let mut record = ExperimentRecord {
            parent: parent.map(|p| p.id.clone()),
            depth: parent.map_or(0, |p| p.depth + 1),
            code_cid: spore_spec::crypto::sha256_hex(&made.bytes),
            diff: made.diff.clone(),
            dataset_cid: task.dataset_cid.clone(),
            prepare_cid: task.prepare_cid.clone(),
            time_budget: budget.as_secs().max(1) as i64,
            val_bpb: Number::Float(round6(val_bpb)),
            peak_vram_mb: Number::Float(round1(result.peak_rss_mb)),
            num_steps: p.num_steps as i64,
            num_params: p.num_params as i64,
            status,
            description: truncate(&description, 500),
            hypothesis: truncate(&made.hypothesis, 500),
            agent_model: made.agent_model.clone(),
            gpu_model: self.options.gpu_model.clone(),
            cuda_version: made
                .cuda_version
                .clone()
                .unwrap_or_else(|| self.options.cuda_version.clone()),
            torch_version: made.framework.clone(),
            node_id: identity.node_id(),
            task_id: task.task_id.clone(),
            timestamp: crate::unix_now(),
            version: 2,
            ..ExperimentRecord::default()
        };
        record.sign_with(identity);
        record
    }

    /// Store the artifact, then publish the record (peers that see it can fetch the config).
    async fn publish(
        &self,
        record: ExperimentRecord,
        made: &Made,
        result: &RunResult,
        parent_metric: Option<f64>,
    ) -> Result<Status, String> {
        let run_outputs = match made.keep_output {
            true => vec![(record.id.clone(), false, result.output.clone())],
            false => Vec::new(),
        };
        let written = self
            .registry
            .writer
            .local(LocalWrite {
                artifacts: vec![(record.code_cid.clone(), made.bytes.clone())],
                run_outputs,
                // the training curve, for the explorer (local: never synced or signed)
                curves: vec![(
                    record.id.clone(),
                    false,
                    spore_train::report::curve(&result.output),
                )],
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(ArtifactWrite::Refused(why)) = written.first() {
            return Err(format!("our own artifact was refused: {why}"));
        }
        let summary = self
            .registry
            .publish_local(vec![Message::Experiment(record.clone()).encode_body()])
            .await
            .map_err(|e| e.to_string())?;
        if summary.rejected > 0 {
            return Err(format!(
                "our own record was refused: {:?}",
                summary.problems
            ));
        }
        self.registry
            .metrics
            .count_experiment(record.status.as_str());
        if let Some(speed) = spore_train::report::tokens_per_second(&result.output) {
            self.registry.metrics.set_tokens_per_sec(speed);
        }
        let versus = parent_metric.map_or(String::new(), |m| format!(" (parent {m:.6})"));
        let outcome = if result.success {
            format!("{}={:.6}{versus}", made.metric, result.parsed.val_bpb)
        } else {
            format!("failed: {}", result.failure_text())
        };
        let steps = match result.parsed.num_steps {
            0 => String::new(),
            n => format!(" steps={n}"),
        };
        crate::say!(
            "experiment {} {} {outcome}{steps} {:.0}s \"{}\"",
            &record.id[..12],
            record.status.as_str(),
            result.wall.as_secs_f64(),
            crate::console::clean(&record.description)
        );
        Ok(record.status)
    }
}

/// keep / discard / crash, as the reference decides (strictly better than the parent keeps).
pub fn decide(result: &RunResult, parent_metric: Option<f64>, goal: Goal) -> Status {
    let text = match goal {
        Goal::Minimize => report::decide(
            result.success,
            &result.error,
            result.parsed.val_bpb,
            parent_metric,
        ),
        Goal::Maximize => report::decide(
            result.success,
            &result.error,
            -result.parsed.val_bpb,
            parent_metric.map(|m| -m),
        ),
    };
    Status::parse(text).unwrap_or(Status::Discard)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// The longest the research loop waits for an artifact it asked peers for before it looks
/// again (it asks again then).
const ARTIFACT_PATIENCE: Duration = Duration::from_secs(60);

/// Returns once an artifact is stored (or events were missed, or `within` passed).
async fn artifact_stored(events: &mut EventReceiver, within: Duration) {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(batch)) => {
                if batch
                    .iter()
                    .any(|e| matches!(e, NodeEvent::ArtifactStored { .. }))
                {
                    return;
                }
            }
            Ok(Err(RecvError::Lagged(_))) | Err(_) => return,
            Ok(Err(RecvError::Closed)) => return tokio::time::sleep_until(deadline).await,
        }
    }
}

type EventReceiver = tokio::sync::broadcast::Receiver<crate::store_writer::EventBatch>;

/// Artifact types a node researches: its GPT configs, and command tasks' source files.
pub const RUNNABLE: [&str; 2] = [ARTIFACT_TYPE, command_task::ARTIFACT_TYPE];

/// Whether this node can research a task whose records' code is `artifact_type`.
pub fn can_research(artifact_type: &str) -> bool {
    RUNNABLE.contains(&artifact_type)
}

/// What the research loop works on.
enum TaskChoice {
    Known(Box<TaskManifest>),
    /// The built-in default task; `stored`: its manifest is in the store already.
    Default {
        stored: bool,
    },
}

/// The task to research: the pinned one, else the most active one (`active`) if this node can
/// run it, else the built-in default task.
fn task_to_research(
    read: &crate::Reader,
    pinned: Option<&str>,
    active: Option<&str>,
    me: &str,
) -> Result<TaskChoice, String> {
    if let Some(pinned) = pinned {
        let resolved = read.resolve_task(pinned).map_err(|e| e.to_string())?;
        // the default task is known to every node, stored or not
        let default = default_task::TASK_ID;
        let id = match resolved {
            Some(id) => id,
            // unless a stored task shares the prefix (then it is ambiguous)
            None if pinned.len() >= 4
                && default.starts_with(pinned)
                && !read
                    .tasks()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|row| row.manifest.task_id.starts_with(pinned)) =>
            {
                default.to_string()
            }
            None => return Err(format!("the pinned task {pinned} is not known yet")),
        };
        let row = read.task(&id).map_err(|e| e.to_string())?;
        let row = match row {
            Some(row) => row,
            None if id == default => return Ok(TaskChoice::Default { stored: false }),
            None => return Err(format!("task {id} has no manifest yet")),
        };
        if !can_research(&row.manifest.artifact_type) {
            return Err(format!(
                "the pinned task {id} uses artifact type {}, which spored cannot train (it \
                 trains {RUNNABLE:?}); pin another (`spored task use ID`) or none (`spored task \
                 use --unpin`)",
                crate::refusal::Capped(&row.manifest.artifact_type)
            ));
        }
        return Ok(TaskChoice::Known(Box::new(row.manifest)));
    }
    if let Some(id) = active {
        if let Some(row) = read.task(id).map_err(|e| e.to_string())? {
            // a task with no root yet waits for its creator's (`lineage::TaskRoot`): not one to
            // pick for this node unless it is the creator (a stranger's fresh manifest would
            // otherwise stall the loop)
            let rooted = read
                .task_stats(id)
                .map_err(|e| e.to_string())?
                .is_some_and(|s| s.root.is_some());
            let ours = row.manifest.created_by == me;
            if row.manifest.artifact_type == ARTIFACT_TYPE && (rooted || ours) {
                return Ok(TaskChoice::Known(Box::new(row.manifest)));
            }
        }
    }
    let stored = read
        .task(&default_task::manifest().task_id)
        .map_err(|e| e.to_string())?
        .is_some();
    Ok(TaskChoice::Default { stored })
}

/// The task a research node would work on now, read from the store: the pinned one, else the
/// most active it can train, else the default task (whose manifest every node knows).
pub fn task_now(
    read: &crate::Reader,
    pinned: Option<&str>,
    me: &str,
) -> Result<TaskManifest, String> {
    let active = read.active_task(None).map_err(|e| e.to_string())?;
    Ok(
        match task_to_research(read, pinned, active.as_deref(), me)? {
            TaskChoice::Known(manifest) => *manifest,
            TaskChoice::Default { .. } => default_task::manifest(),
        },
    )
}

/// The first 8 characters of an id, for messages.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The parent of the next experiment (see the module docs); `None`: the task has no root yet,
/// so the baseline runs first.
fn choose_in(
    read: &crate::Reader,
    task: &TaskManifest,
    rng: &mut SplitMix64,
) -> Result<Option<Choice>, String> {
    let frontier_ids = read
        .frontier_ids(&task.task_id, task.goal())
        .map_err(|e| e.to_string())?;
    let stats = read
        .task_stats(&task.task_id)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if frontier_ids.is_empty() {
        // A root exists but nothing is on the frontier (the root crashed): run the baseline
        // again only if the task has no root at all.
        if stats.root.is_some() {
            return Err("the task's root is not on the frontier (it crashed?)".into());
        }
        return Ok(None);
    }
    let mut candidates = Vec::new();
    for id in &frontier_ids {
        let Some(entry) = read.index_entry(id).map_err(|e| e.to_string())? else {
            continue;
        };
        let children = read.children(id).map_err(|e| e.to_string())?.len();
        candidates.push(Candidate {
            id: id.clone(),
            metric: entry.metric,
            children,
        });
    }
    let best = candidates.first().map_or(f64::NAN, |c| c.metric);
    let recent = read
        .recent_ids(&task.task_id, 20)
        .map_err(|e| e.to_string())?;
    let near_best = recent
        .iter()
        .filter_map(|id| read.index_entry(id).ok().flatten())
        .filter(|e| e.status == Status::Keep && (e.metric - best).abs() <= 0.01 * best.abs())
        .count();
    let exploit = exploit_share(stats.count, near_best);
    let parent = choose_parent(&candidates, exploit, rng)
        .ok_or("empty frontier")?
        .clone();
    let record = read
        .experiment(&parent.id)
        .map_err(|e| e.to_string())?
        .ok_or("frontier record missing from the store")?;
    let tried: HashSet<String> = read
        .task_record_ids(&task.task_id)
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|id| read.experiment(id).ok().flatten())
        .map(|r| r.code_cid)
        .collect();
    let tried_from_parent: Vec<(String, f64, String)> = read
        .children(&parent.id)
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|id| read.experiment(id).ok().flatten())
        .map(|r| {
            (
                r.status.as_str().to_string(),
                r.val_bpb.value(),
                r.description,
            )
        })
        .collect();
    Ok(Some(Choice {
        parent,
        record,
        best,
        task_records: stats.count,
        tried,
        tried_from_parent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn workers_stop_at_max_experiments_and_wait_on_attempts_that_may_fail() {
        let count = std::sync::Arc::new(Count::default());
        // max 1: the first starts; a second waits while the first may still come to nothing
        assert!(count.start(Some(1)).await);
        let waiting = {
            let count = count.clone();
            actix_rt::spawn(async move { count.start(Some(1)).await })
        };
        actix_rt::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !waiting.is_finished(),
            "a second started with one under way"
        );
        // the first made nothing (an error, a wait): the second may go
        count.end(false);
        assert!(waiting.await.unwrap(), "the waiting worker never started");
        // it made a record: every worker stops now
        count.end(true);
        assert!(!count.start(Some(1)).await);
        assert_eq!(count.done(), 1);
        // no maximum: always
        assert!(count.start(None).await);
    }

    #[test]
    fn a_config_runs_on_one_worker_at_a_time() {
        let set = std::sync::Arc::default();
        let first = InFlight::claim(&set, "abc").expect("free");
        assert!(InFlight::claim(&set, "abc").is_none(), "claimed twice");
        assert!(InFlight::claim(&set, "def").is_some());
        drop(first);
        assert!(InFlight::claim(&set, "abc").is_some(), "not given back");
    }

    #[test]
    fn exploit_share_follows_the_reference() {
        assert_eq!(exploit_share(3, 0), 0.5);
        assert_eq!(exploit_share(20, 0), 0.6);
        assert_eq!(exploit_share(80, 2), 0.7);
        assert_eq!(exploit_share(80, 1), 0.3);
    }

    #[test]
    fn explore_prefers_records_with_few_children() {
        let frontier = vec![
            Candidate {
                id: "best".into(),
                metric: 1.0,
                children: 50,
            },
            Candidate {
                id: "fresh".into(),
                metric: 1.1,
                children: 0,
            },
        ];
        let mut rng = SplitMix64::new(9);
        let mut fresh = 0;
        for _ in 0..1000 {
            if choose_parent(&frontier, 0.0, &mut rng).unwrap().id == "fresh" {
                fresh += 1;
            }
        }
        assert!(fresh > 900, "{fresh}");
        assert_eq!(choose_parent(&frontier, 1.0, &mut rng).unwrap().id, "best");
        assert!(choose_parent(&[], 0.5, &mut rng).is_none());
    }

    #[test]
    fn decisions_match_the_reference_vectors() {
        let ok = |v: f64| RunResult {
            parsed: report::Parsed {
                val_bpb: v,
                ..Default::default()
            },
            success: true,
            ..RunResult::default()
        };
        assert_eq!(decide(&ok(0.99), Some(1.0), Goal::Minimize), Status::Keep);
        assert_eq!(decide(&ok(1.0), Some(1.0), Goal::Minimize), Status::Discard);
        assert_eq!(
            decide(&ok(1.01), Some(1.0), Goal::Minimize),
            Status::Discard
        );
        assert_eq!(decide(&ok(1.5), None, Goal::Minimize), Status::Keep);
        let crash = RunResult {
            error: "boom".into(),
            ..RunResult::default()
        };
        assert_eq!(decide(&crash, Some(1.0), Goal::Minimize), Status::Crash);
        assert_eq!(
            decide(&RunResult::default(), Some(1.0), Goal::Minimize),
            Status::Discard
        );
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // this test owns its store
mod task_choice_tests {
    use super::*;

    #[test]
    fn a_strangers_fresh_task_without_a_root_is_not_researched_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(&dir.path().join("db/spored.redb")).unwrap();
        let stranger = Identity::from_seed([7; 32]);
        let me = Identity::from_seed([8; 32]).node_id();
        let mut manifest = TaskManifest {
            name: "fresh".into(),
            task_type: "ml_train".into(),
            artifact_type: ARTIFACT_TYPE.into(),
            metric: "val_bpb".into(),
            goal: "minimize".into(),
            created_by: stranger.node_id(),
            timestamp: i64::MAX / 2,
            version: 1,
            ..TaskManifest::default()
        };
        manifest.sign_with(&stranger);
        store.write(|w| w.insert_manifest(&manifest)).unwrap();
        let read = store.read().unwrap();
        let active = read.active_task(None).unwrap();
        assert_eq!(active.as_deref(), Some(manifest.task_id.as_str()));
        // the stranger's task has no root: the default task instead
        let choice = task_to_research(&read, None, active.as_deref(), &me).unwrap();
        assert!(matches!(choice, TaskChoice::Default { .. }));
        // its creator would research it (and run its baseline)
        let choice = task_to_research(&read, None, active.as_deref(), &stranger.node_id()).unwrap();
        assert!(matches!(choice, TaskChoice::Known(_)));
    }
}
