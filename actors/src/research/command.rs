//! Research on a command task: the task's base file as root, then one LLM code edit per
//! experiment, each run by the pinned evaluator in the sandbox.

use std::time::Duration;

use spore_spec::{Identity, Status, TaskManifest};
use spore_train::report::Parsed;
use spore_train::rng::SplitMix64;
use tracing::{info, warn};

use super::{decide, InFlight, Made, ResearchLoop};
use crate::command_task::{self, Evaluator};
use crate::experiment_runner::{RunResult, RunSandboxed};
use crate::llm::{self, CodePrompt};

/// The record's `cuda_version` for a sandboxed run: no GPU is involved.
const NO_CUDA: &str = "none";

impl ResearchLoop {
    /// One experiment of a command task. `Ok(None)`: waiting (an artifact, an LLM).
    pub(super) async fn command_iteration(
        &self,
        identity: &Identity,
        rng: &mut SplitMix64,
        task: &TaskManifest,
        budget: Duration,
    ) -> Result<Option<Status>, String> {
        let Some(evaluator) = self.artifact(&task.prepare_cid).await? else {
            info!(cid = %task.prepare_cid, "research: fetching the task's evaluator first");
            return Ok(None);
        };
        let evaluator = Evaluator::parse(&evaluator)
            .map_err(|e| format!("task {}'s evaluator cannot be used: {e}", task.task_id))?;
        let Some(choice) = self.choose(task, rng).await? else {
            // one root: another worker's baseline is awaited
            if self.worker > 0 {
                return Ok(None);
            }
            let Some(base) = self.artifact(&task.base_code_cid).await? else {
                info!(cid = %task.base_code_cid, "research: fetching the task's base file first");
                return Ok(None);
            };
            let made = Made {
                bytes: base,
                description: format!("baseline: the task's {}", evaluator.candidate),
                agent_model: "baseline".into(),
                ..Made::default()
            };
            info!(task_id = %task.task_id, "research: running the baseline (task root)");
            return self
                .run_command(identity, task, &evaluator, None, made, budget)
                .await
                .map(Some);
        };
        let Some(settings) = self.options.llm.get() else {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| {
                crate::say!(
                    "task {} is a command task: its experiments are code edits proposed by an \
                     LLM, and no LLM is configured (spored set <provider> <key>); waiting",
                    &task.task_id[..12]
                )
            });
            actix_rt::time::sleep(Duration::from_secs(25)).await;
            return Ok(None);
        };
        let Some(parent_code) = self.artifact(&choice.record.code_cid).await? else {
            info!(cid = %choice.record.code_cid, "research: fetching the parent's file first");
            return Ok(None);
        };
        let parent_text = String::from_utf8_lossy(&parent_code).into_owned();
        let prompt = CodePrompt {
            task_name: task.name.clone(),
            task_description: task.description.clone(),
            metric: task.metric.clone(),
            goal: task.goal().as_str().into(),
            file_name: evaluator.candidate.clone(),
            parent_metric: choice.parent.metric,
            best_metric: choice.best,
            task_records: choice.task_records,
            tried_from_parent: choice.tried_from_parent,
        };
        let model = settings.model.clone();
        let text = parent_text.clone();
        let asked = actix_rt::task::spawn_blocking(move || {
            llm::propose_code(&settings, &text, &prompt, &|cid| choice.tried.contains(cid))
        })
        .await
        .map_err(|e| format!("the LLM call was lost: {e}"))?;
        let proposal = match asked {
            Ok(p) => p,
            Err(why) => {
                warn!("research: LLM proposal skipped ({why}); asking again in 30 s");
                actix_rt::time::sleep(Duration::from_secs(30)).await;
                return Ok(None);
            }
        };
        // another worker may run the same code now
        let cid = spore_spec::crypto::sha256_hex(&proposal.code);
        let Some(_running) = InFlight::claim(&self.in_flight, &cid) else {
            return Ok(None);
        };
        let made = Made {
            diff: spore_train::diff::unified(
                &parent_text,
                &String::from_utf8_lossy(&proposal.code),
                &evaluator.candidate,
            ),
            bytes: proposal.code,
            description: proposal.description,
            hypothesis: proposal.hypothesis,
            agent_model: model,
            ..Made::default()
        };
        self.run_command(
            identity,
            task,
            &evaluator,
            Some(&choice.record),
            made,
            budget,
        )
        .await
        .map(Some)
    }

    async fn run_command(
        &self,
        identity: &Identity,
        task: &TaskManifest,
        evaluator: &Evaluator,
        parent: Option<&spore_spec::ExperimentRecord>,
        mut made: Made,
        budget: Duration,
    ) -> Result<Status, String> {
        let sandbox = &self.options.sandbox;
        let interpreter = sandbox.interpreter(&evaluator.interpreter)?;
        let label = format!("{} {}", task.name, made.description);
        info!(task = %task.name, "research: {}", made.description);
        let job = evaluator.job(&made.bytes, &interpreter, sandbox.limits(budget));
        let outcome = self
            .runner
            .send(RunSandboxed { job, label })
            .await
            .map_err(|e| format!("the experiment runner is gone: {e}"))?
            .map_err(|why| format!("command task {} cannot run here: {why}", task.task_id))?;
        let result = command_result(&outcome, &task.metric);
        let status = decide(&result, parent.map(|p| p.val_bpb.value()), task.goal());
        made.framework = interpreter.version.clone();
        made.cuda_version = Some(NO_CUDA.into());
        made.metric = task.metric.clone();
        made.keep_output = true;
        let record = self.record(identity, task, parent, &made, &result, status, budget);
        self.publish(record, &made, &result, parent.map(|p| p.val_bpb.value()))
            .await
    }
}

/// A sandboxed evaluator run as a [`RunResult`]: the metric in `parsed.val_bpb` (the record's
/// metric field), success when it exited 0 within its limits and printed a finite metric.
pub fn command_result(outcome: &crate::sandbox::Outcome, metric: &str) -> RunResult {
    let value = command_task::parse_metric(&outcome.stdout, metric);
    let error = match (&outcome.failure, value) {
        (Some(why), _) => why.clone(),
        (None, None) => format!("the evaluator printed no {metric}: line"),
        (None, Some(_)) => String::new(),
    };
    let mut output = outcome.stdout.clone();
    if !outcome.stderr.is_empty() {
        output.push_str("--- stderr ---\n");
        output.push_str(&outcome.stderr);
        output.push('\n');
    }
    RunResult {
        parsed: Parsed {
            val_bpb: value.unwrap_or(0.0),
            ..Parsed::default()
        },
        success: error.is_empty(),
        detail: outcome.detail.clone().unwrap_or_default(),
        // the sandbox runs in a session of its own: a stop signal for the node does not reach it
        interrupted: false,
        error,
        output,
        peak_rss_mb: outcome.peak_rss_mb,
        wall: outcome.wall,
    }
}
