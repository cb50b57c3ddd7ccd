//! The working side of `spored run` from its config: the ExperimentRunner, the Verifier and the
//! ChallengeArbiter (research and verify-only modes), and the research loop (research mode); the
//! library's node builder starts them.

use std::time::Duration;

use anyhow::{Context as _, Result};
use spore_actors::experiment_runner::{RunnerConfig, Slot};
use spore_actors::llm::LlmSettings;
use spore_actors::node::{Mode, Work};
use spore_actors::research::ResearchOptions;
use spore_actors::setting::Setting;
use spore_actors::verifier::VerifyOptions;
use spore_actors::warmup;
use spore_train::child::Hardware;
use tracing::info;

use crate::config::{NodeConfig, NodeMode};
use crate::data_dir::DataDir;

/// Total memory in bytes (Linux `/proc/meminfo`), or 8 GiB when unknown.
fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(8 << 30, |kb| kb * 1024)
}

/// The settings a running node takes again on reload (SIGHUP, or a command that changed them):
/// shared with the research loop and the explorer, which read them where they use them.
#[derive(Clone, Debug)]
pub struct Live {
    pub pinned_task: Setting<Option<String>>,
    pub llm: Setting<Option<LlmSettings>>,
}

impl Live {
    pub fn load(config: &NodeConfig, data_dir: &DataDir) -> Result<Live> {
        Ok(Live {
            pinned_task: Setting::new(pinned(config)),
            llm: Setting::new(llm_settings(config, data_dir)?),
        })
    }

    /// What a reload would set: read (and checked) before anything is applied.
    pub fn read(config: &NodeConfig, data_dir: &DataDir) -> Result<Reloaded> {
        Ok(Reloaded {
            pinned_task: pinned(config),
            llm: llm_settings(config, data_dir)?,
        })
    }

    /// Applies what [`Live::read`] read; says whether the pinned task changed.
    pub fn apply(&self, new: Reloaded) -> bool {
        let changed = self.pinned_task.get() != new.pinned_task;
        self.pinned_task.set(new.pinned_task);
        self.llm.set(new.llm);
        changed
    }
}

/// The settings a reload takes, read before any is applied.
pub struct Reloaded {
    pinned_task: Option<String>,
    llm: Option<LlmSettings>,
}

fn pinned(config: &NodeConfig) -> Option<String> {
    (!config.task_id.is_empty()).then(|| config.task_id.clone())
}

/// The LLM settings of `spored set`, if any; only a research node reads them (a relay or a
/// verify-only node proposes nothing, and a broken `llm.toml` must not keep it from starting).
fn llm_settings(config: &NodeConfig, data_dir: &DataDir) -> Result<Option<LlmSettings>> {
    if config.mode != NodeMode::Research {
        return Ok(None);
    }
    Ok(super::llm::load(&data_dir.llm())?.map(|c| LlmSettings {
        provider: c.provider,
        api_key: c.api_key,
        model: c.model,
        base_url: c.base_url,
        max_tokens: c.max_token,
        temperature: c.temperature,
        timeout: Duration::from_secs(180),
    }))
}

/// The runner a node on `data_dir` starts its children with, on children of `device` (`auto`:
/// the GPUs when this build drives them): its slots, and the hardware class of its records.
pub fn runner(
    config: &NodeConfig,
    data_dir: &DataDir,
    device: &str,
) -> Result<(RunnerConfig, Hardware)> {
    let program = std::env::current_exe().context("cannot find the spored executable")?;
    // Half of this node's share of memory: the estimate is rough and the node needs room too.
    let memory_limit = total_memory() / 100 * config.resource as u64 / 2;
    // one experiment per GPU this build can drive and the process may see
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let gpus = match spore_train::child::detect(device).backend {
        "cuda" => {
            let gpus =
                spore_train::child::visible_gpus(&spore_train::child::gpus(), visible.as_deref());
            if gpus.is_empty() {
                tracing::warn!(
                    cuda_visible_devices = visible.as_deref().unwrap_or(""),
                    "CUDA_VISIBLE_DEVICES names no GPU nvidia-smi lists (indices or GPU-… UUIDs; MIG instances are not supported): experiments run on the CPU"
                );
            }
            gpus
        }
        _ => Vec::new(),
    };
    let (slots, left_out) = spore_actors::experiment_runner::slots(device, &gpus);
    for gpu in left_out {
        tracing::warn!(gpu = gpu.index, model = %gpu.name, "GPU left out: a node runs on GPUs of one model (its records' class); choose them with CUDA_VISIBLE_DEVICES");
    }
    // the class of the GPUs it runs on (the first visible one's), or the CPU's
    let hardware = match slots[0] {
        Slot::Gpu(index) => spore_train::child::detect_on("cuda", Some(index)),
        Slot::Cpu => spore_train::child::detect("cpu"),
    };
    let runner = RunnerConfig {
        program,
        work_dir: data_dir.root.join("runs"),
        resource: config.resource,
        memory_limit_mb: memory_limit >> 20,
        device: device.into(),
        eval_tokens: None,
        show_progress: true,
        grace: None,
        // compiled GPU kernels and autotune results stay with the node (issue #22)
        kernel_cache: Some(data_dir.root.join("gpu-kernels")),
        slots,
    };
    Ok((runner, hardware))
}

/// What the GPU kernels of `runner`'s children on `hardware` are prepared for (`warmup`).
pub fn kernels_for(hardware: &Hardware, runner: &RunnerConfig) -> warmup::Hardware {
    warmup::Hardware {
        gpu_class: hardware.class.clone(),
        cuda_version: hardware.cuda_version.clone(),
        resource: runner.resource,
    }
}

/// What this node's config asks it to do besides serving the mesh (relay mode is not asked
/// here: it runs nothing).
pub fn mode(config: &NodeConfig, data_dir: &DataDir, seed: [u8; 32], live: &Live) -> Result<Mode> {
    let (runner, hardware) = runner(config, data_dir, "auto")?;
    info!(
        hardware = %hardware.class,
        backend = hardware.backend,
        slots = %runner.slots().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        threads = runner.threads(),
        mode = config.mode.as_str(),
        "experiment runner"
    );
    let work = Work {
        runner,
        verify: VerifyOptions {
            seed,
            gpu_model: hardware.class.clone(),
            probability: config.verify_probability,
            datasets_dir: data_dir.datasets(),
            sandbox: config.sandbox(&data_dir.root),
            rerun: None,
        },
    };
    if config.mode != NodeMode::Research {
        return Ok(Mode::VerifyOnly(work));
    }
    let llm = live.llm.get();
    match &llm {
        Some(l) => {
            info!(provider = %l.provider, model = %l.model, "research: proposals from the LLM, the built-in search when it fails")
        }
        None => {
            info!("research: no LLM configured (`spored set`); proposals from the built-in search")
        }
    }
    let research = ResearchOptions {
        seed,
        pinned_task: live.pinned_task.clone(),
        time_budget: (config.time_budget > 0).then(|| Duration::from_secs(config.time_budget)),
        max_experiments: (config.max_experiments > 0).then_some(config.max_experiments),
        gpu_model: hardware.class.clone(),
        cuda_version: hardware.cuda_version.clone(),
        memory_limit: work.runner.memory_limit_mb << 20,
        initial_sync_wait: if config.peer.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_secs(15)
        },
        llm: live.llm.clone(),
        datasets_dir: data_dir.datasets(),
        sandbox: config.sandbox(&data_dir.root),
        parallel: work.runner.slots().len(),
        kernel_cache: match work.runner.slots()[0] {
            Slot::Gpu(_) => work.runner.kernel_cache.clone().map(|dir| warmup::Cache {
                dir,
                on: kernels_for(&hardware, &work.runner),
            }),
            Slot::Cpu => None,
        },
    };
    Ok(Mode::Research(work, Box::new(research)))
}
