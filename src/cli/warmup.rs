//! `spored warmup`: prepares the GPU kernels of the task this node would research, before the
//! node runs (issue #22; how and why: `spore_actors::warmup`). A node starting on a GPU does the
//! same by itself; this command lets an operator pay the minutes at install time instead.

use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use spore_actors::experiment_runner::{Runner, Slot};
use spore_actors::warmup;
use spore_spec::json::Value;
use spore_train::report::Event;

use super::Context;

#[derive(Args, Debug)]
pub struct WarmupArgs {
    /// The task to prepare (default: the pinned task, else the most active one this node can
    /// train, else the built-in default task)
    #[arg(long, value_name = "TASK_ID")]
    pub task: Option<String>,
    /// auto (the GPUs, when this build drives them and there are any), cuda, or cpu: the same
    /// run on the CPU, a check that the task starts here (the CPU's kernels are compiled in, so
    /// nothing is kept)
    #[arg(long, default_value = "auto", value_parser = ["auto", "cuda", "cpu"])]
    pub device: String,
    /// Prepare again even when the kernel cache says it is done
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Context, args: WarmupArgs) -> Result<()> {
    let Some(store) = ctx.store_unless_running()? else {
        anyhow::bail!(
            "a node runs on {}: it prepares the GPU kernels of its task itself when it starts \
             (its log says \"preparing GPU kernels\"); stop it to prepare another task",
            ctx.data_dir.root.display()
        );
    };
    let (runner, hardware) = super::research::runner(&ctx.config, &ctx.data_dir, &args.device)?;
    let slot = runner.slots()[0];
    if slot == Slot::Cpu && args.device != "cpu" {
        let why = match cfg!(feature = "cuda") {
            true => "no NVIDIA GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES)",
            false => "this spored is built without the `cuda` feature",
        };
        return say(
            ctx,
            &format!(
                "No GPU kernels to prepare: {why}. The CPU's kernels are compiled into spored. \
                 (`--device cpu` runs the preparing run on the CPU anyway.)"
            ),
            None,
        );
    }
    let me = match ctx.data_dir.has_identity() {
        true => ctx.data_dir.load_identity()?.node_id(),
        false => String::new(),
    };
    let pinned = args
        .task
        .clone()
        .or_else(|| (!ctx.config.task_id.is_empty()).then(|| ctx.config.task_id.clone()));
    #[allow(clippy::disallowed_methods)] // no node runs: this process owns the store
    let read = store.read()?;
    let target = spore_actors::research::task_now(&read, pinned.as_deref(), &me)
        .and_then(|task| warmup::target(&read, task, &ctx.data_dir.datasets()))
        .map_err(anyhow::Error::msg)?;
    drop(read);
    // the store stays open (locked) until the kernels are noted: a node started meanwhile
    // would prepare the same kernels on the same GPU
    let Some(target) = target else {
        return say(
            ctx,
            "Nothing to prepare: the task is a command task, or its base config is not on this \
             node yet (its first experiment prepares its own kernels).",
            None,
        );
    };
    let task = &target.task;
    let cache = runner
        .kernel_cache
        .clone()
        .context("the runner keeps no kernel cache")?;
    let on = super::research::kernels_for(&hardware, &runner);
    let key = target.key(&on);
    let gpu = matches!(slot, Slot::Gpu(_));
    if gpu && !args.force && warmup::prepared(&cache, &key) {
        return say(
            ctx,
            &format!(
                "The GPU kernels of task {} ({}) on {} are prepared already, in {}. (`--force` \
                 prepares them again.)",
                task.task_id,
                task.name,
                hardware.class,
                cache.display()
            ),
            Some(&target),
        );
    }
    // the task's corpus, when it is the GPU corpus and not here yet (the baseline runs on it)
    if task.dataset_cid == spore_actors::gpu_corpus::CORPUS_SHA256 {
        super::prepare::gpu_corpus(ctx)?;
    }
    let request = target
        .request(&ctx.data_dir.datasets())
        .map_err(anyhow::Error::msg)?;
    if !ctx.json {
        println!(
            "Preparing task {} ({}) on {} ({slot}): its baseline for {} steps and the evaluation",
            task.task_id,
            task.name,
            hardware.class,
            warmup::STEPS
        );
    }
    let started = Instant::now();
    let json = ctx.json;
    let result = actix_rt::System::new().block_on(async {
        Runner::new(runner)
            .run_on(slot, &request, |event| {
                if let (Event::Stage(s), false) = (event, json) {
                    println!("  {}", s.describe());
                }
            })
            .await
    });
    if !result.success {
        anyhow::bail!("the preparing run failed: {}", result.failure_text());
    }
    let seconds = started.elapsed().as_secs_f64();
    if gpu {
        let what = format!("task {} baseline, {:?}", task.task_id, on);
        warmup::mark(&cache, &key, &what)
            .with_context(|| format!("noting the prepared kernels in {}", cache.display()))?;
    }
    drop(store);
    let text = match gpu {
        true => format!(
            "Ready: the GPU kernels of task {} are prepared ({seconds:.0} s), in {}.",
            task.task_id,
            cache.display()
        ),
        false => format!(
            "Ready: task {} starts on this CPU ({seconds:.0} s; nothing is kept).",
            task.task_id
        ),
    };
    say(ctx, &text, Some(&target))
}

/// Prints `text`, or with `--json` an object saying what was prepared.
fn say(ctx: &Context, text: &str, target: Option<&warmup::Target>) -> Result<()> {
    if ctx.json {
        crate::output::print_json(&spore_spec::json::object([
            (
                "task_id",
                target.map_or(Value::Null, |t| Value::Str(t.task.task_id.clone())),
            ),
            ("message", Value::Str(text.into())),
        ]));
    } else {
        println!("{text}");
    }
    Ok(())
}
