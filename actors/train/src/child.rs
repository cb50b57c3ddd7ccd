//! The body of `spored train`: one training run in its own process.

use crate::config::{Precision, RunConfig};
use crate::data::{builtin_corpus, EVAL_TOKENS};
use crate::prepare::Preparation;
use crate::report;
use crate::train::{self, TrainOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Parallel shards per micro-batch on CPU backends: fixed, so results do not depend on the
/// machine's core count (a one-core machine runs the two shards one after the other).
pub const CPU_SHARDS: usize = 2;

#[derive(Clone, Debug)]
pub struct ChildArgs {
    /// The config artifact to run.
    pub config: PathBuf,
    /// Training budget in seconds.
    pub budget_s: f64,
    /// Exact optimiser steps (a verification rerun).
    pub steps: Option<usize>,
    /// Validation tokens to score (the default task uses [`EVAL_TOKENS`]).
    pub eval_tokens: Option<usize>,
    /// A corpus file instead of the built-in one.
    pub corpus: Option<PathBuf>,
    /// A preparation document (`spored prepare --bpe`) instead of byte-level tokens.
    pub prepare: Option<PathBuf>,
    /// Refuse configs whose estimated training memory exceeds this.
    pub memory_limit_mb: u64,
    /// `cpu`, `cuda` or `auto`.
    pub device: String,
    /// Share of the machine (1–100): scales the rows of one forward pass
    /// ([`TrainOptions::rows_for_resource`]).
    pub resource: u8,
    /// Where the GPU backend keeps compiled kernels and autotune results (the node passes
    /// `<data dir>/gpu-kernels`); None: the backend's own default (beside a Cargo.toml, or the
    /// user's cache directory).
    pub kernel_cache: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Prepare(#[from] crate::prepare::PrepareError),
    #[error("{0}")]
    Device(String),
}

/// Which hardware ran (or will run) a training child.
#[derive(Clone, Debug, PartialEq)]
pub struct Hardware {
    /// The record's `gpu_model` class.
    pub class: String,
    /// The record's `cuda_version` field.
    pub cuda_version: String,
    pub backend: &'static str,
}

/// The hardware a child started with `device` would use.
pub fn detect(device: &str) -> Hardware {
    let cpu = Hardware {
        class: spore_spec::hardware::cpu_class(),
        cuda_version: "cpu".into(),
        backend: "flex",
    };
    if device == "cpu" || !cfg!(feature = "cuda") {
        return cpu;
    }
    match gpu_name() {
        Some(name) => Hardware {
            class: spore_spec::hardware::reference_gpu_model(&name),
            cuda_version: cuda_driver_version().unwrap_or_else(|| "unknown".into()),
            backend: "cuda",
        },
        None => cpu,
    }
}

/// Points CubeCL (burn's GPU backend) at `dir` for its compiled kernels and its autotune
/// results, so a node's next experiment (and its next start) finds them warm. Must run before the
/// first GPU call: CubeCL reads its configuration once.
#[cfg(feature = "cuda")]
fn kernel_cache_in(dir: &Path) {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig as _};
    let mut config = CubeClRuntimeConfig::default();
    config.autotune.cache = CacheConfig::File(dir.join("autotune"));
    config.compilation.cache = Some(CacheConfig::File(dir.join("compiled")));
    CubeClRuntimeConfig::set(config);
}

/// The first GPU's name from `nvidia-smi`, if a driver and a GPU are present.
fn gpu_name() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

fn cuda_driver_version() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pos = text.find("CUDA Version:")?;
    Some(text[pos + 13..].split_whitespace().next()?.to_string())
}

/// Threads this run may use: `RAYON_NUM_THREADS` (the runner sets it from `--resource`), else
/// the machine's cores.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Peak resident memory (Linux `VmHWM`) in KiB of `process`: a pid, or `self`.
pub fn peak_rss_kib(process: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Keeps freed memory in the process for reuse. Every tensor op allocates its output; glibc
/// hands blocks over 128 KiB back to the OS on free and maps fresh zeroed pages for the next
/// one, so training spent its time in page faults. With these thresholds a step reuses the
/// previous step's memory: 17.0k → 20.4k tokens/s on the throughput bench (docs/benchmarks.md).
/// Freed memory stays mapped (up to 1 GiB is not trimmed), so resident memory no longer drops
/// between steps; the peak is set by the largest step either way. Call before training.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning thresholds; a zero return (not applied) is
    // harmless.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Run one training child: progress lines, then the summary block, on `out`.
pub fn run(args: &ChildArgs, out: &mut dyn Write) -> Result<(), ChildError> {
    let started = Instant::now();
    tune_allocator();
    let bytes = std::fs::read(&args.config).map_err(|source| ChildError::Io {
        path: args.config.display().to_string(),
        source,
    })?;
    let config = RunConfig::from_bytes(&bytes)?;
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| ChildError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let preparation = match &args.prepare {
        Some(p) => Preparation::from_document(read(p)?)?,
        None => Preparation::bytes(),
    };
    let corpus = match &args.corpus {
        Some(p) => read(p)?,
        None => builtin_corpus(),
    };
    let data = match &args.prepare {
        Some(p) => preparation.dataset_cached(&corpus, p.parent().unwrap_or(Path::new(".")))?,
        None => preparation.dataset(&corpus)?,
    };
    drop(corpus);
    config.check_runnable(data.vocab_size(), args.memory_limit_mb << 20)?;
    let hardware = detect(&args.device);
    if config.train.precision == Precision::Bf16 && hardware.backend != "cuda" {
        return Err(ChildError::Device(format!(
            "train.precision = \"bf16\" needs a CUDA device; this run has {} ({})",
            hardware.backend, hardware.class
        )));
    }
    let options = TrainOptions {
        budget: Duration::from_secs_f64(args.budget_s.max(0.0)),
        steps: args.steps,
        eval_tokens: args.eval_tokens.unwrap_or(EVAL_TOKENS),
        shards: if hardware.backend == "cuda" {
            1
        } else {
            CPU_SHARDS
        },
        parallel: threads() > 1,
        max_rows: TrainOptions::rows_for_resource(config.train.batch_size, args.resource),
    };
    let _ = writeln!(
        out,
        "run config={config} params={} backend={} hardware={}",
        config.num_params(),
        hardware.backend,
        hardware.class
    );
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let mut progress = |p: &train::Progress| {
        if last_line.elapsed() >= Duration::from_millis(500) {
            last_line = Instant::now();
            let _ = writeln!(out, "{}", report::progress_line(p));
            let _ = out.flush();
        }
    };
    let outcome = match hardware.backend {
        #[cfg(feature = "cuda")]
        "cuda" => {
            if let Some(dir) = &args.kernel_cache {
                kernel_cache_in(dir);
            }
            type B = burn::backend::Autodiff<burn_cuda::Cuda>;
            let device = burn_cuda::CudaDevice::default();
            train::train::<B>(&config, &data, &options, &device, &mut progress)?
        }
        _ => {
            type B = burn::backend::Autodiff<burn::backend::Flex>;
            let device = Default::default();
            train::train::<B>(&config, &data, &options, &device, &mut progress)?
        }
    };
    let _ = write!(
        out,
        "{}",
        report::summary(
            &outcome,
            started.elapsed().as_secs_f64(),
            peak_rss_kib("self").map_or(0.0, |kib| kib as f64 / 1024.0),
            config.model.n_layer
        )
    );
    let _ = out.flush();
    Ok(())
}
