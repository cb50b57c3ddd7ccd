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
    /// Train on this GPU (its `nvidia-smi` index). The node's runner also sets
    /// `CUDA_VISIBLE_DEVICES` to it, so the child sees that one GPU alone. None: the first.
    pub gpu: Option<u32>,
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

/// The hardware a child started with `device` would use (on the first GPU).
pub fn detect(device: &str) -> Hardware {
    detect_on(device, None)
}

/// The hardware a child started with `device` and `--gpu gpu` would use.
pub fn detect_on(device: &str, gpu: Option<u32>) -> Hardware {
    let cpu = Hardware {
        class: spore_spec::hardware::cpu_class(),
        cuda_version: "cpu".into(),
        backend: "flex",
    };
    if device == "cpu" || !cfg!(feature = "cuda") {
        return cpu;
    }
    match gpu_name(gpu) {
        Some(name) => Hardware {
            class: spore_spec::hardware::reference_gpu_model(&name),
            cuda_version: cuda_driver_version().unwrap_or_else(|| "unknown".into()),
            backend: "cuda",
        },
        None => cpu,
    }
}

/// The CUDA device number of GPU `gpu` (an `nvidia-smi` index; None: the first visible one):
/// its place among the GPUs `CUDA_VISIBLE_DEVICES` (`visible`) leaves to this process.
pub fn cuda_ordinal(gpu: Option<u32>, all: &[Gpu], visible: Option<&str>) -> Result<usize, String> {
    let Some(gpu) = gpu else { return Ok(0) };
    visible_gpus(all, visible)
        .iter()
        .position(|g| g.index == gpu)
        .ok_or_else(|| match visible {
            Some(v) => {
                format!("GPU {gpu} is not visible to this process (CUDA_VISIBLE_DEVICES={v})")
            }
            None => format!("there is no GPU {gpu} (nvidia-smi lists {})", all.len()),
        })
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

/// GPU `index`'s name from `nvidia-smi` (None: the first GPU), if a driver and the GPU are
/// present.
fn gpu_name(index: Option<u32>) -> Option<String> {
    let gpus = gpus();
    let gpu = match index {
        Some(i) => gpus.into_iter().find(|g| g.index == i),
        None => gpus.into_iter().next(),
    }?;
    Some(gpu.name)
}

/// One GPU as `nvidia-smi` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    /// `nvidia-smi`'s index (PCI order; what `CUDA_VISIBLE_DEVICES` names by number).
    pub index: u32,
    pub uuid: String,
    pub name: String,
}

/// The GPUs `nvidia-smi` lists (empty: no driver, no GPU). All of them: `CUDA_VISIBLE_DEVICES`
/// does not apply to `nvidia-smi` (see [`visible_gpus`]).
pub fn gpus() -> Vec<Gpu> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,uuid,name", "--format=csv,noheader"])
        .output();
    match out {
        Ok(out) if out.status.success() => parse_gpus(&String::from_utf8_lossy(&out.stdout)),
        _ => Vec::new(),
    }
}

/// `nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader` output, one GPU per line;
/// lines that do not parse are skipped.
pub fn parse_gpus(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ',').map(str::trim);
            let index = parts.next()?.parse().ok()?;
            let uuid = parts.next()?.to_string();
            let name = parts.next()?.to_string();
            (!name.is_empty()).then_some(Gpu { index, uuid, name })
        })
        .collect()
}

/// The GPUs of `all` that `CUDA_VISIBLE_DEVICES` (`visible`) leaves to this process, in its
/// order: indices or UUIDs (`GPU-…`, a unique prefix is enough), comma-separated; the list ends
/// at the first entry that names no GPU, as CUDA reads it. Unset: all of them.
pub fn visible_gpus(all: &[Gpu], visible: Option<&str>) -> Vec<Gpu> {
    let Some(visible) = visible else {
        return all.to_vec();
    };
    let mut chosen: Vec<Gpu> = Vec::new();
    for entry in visible.split(',').map(str::trim) {
        let found = match entry.parse::<u32>() {
            Ok(i) => all.iter().find(|g| g.index == i),
            Err(_) if entry.starts_with("GPU-") || entry.starts_with("MIG-") => {
                let mut matching = all.iter().filter(|g| g.uuid.starts_with(entry));
                match (matching.next(), matching.next()) {
                    (Some(g), None) => Some(g),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        match found {
            Some(g) if !chosen.contains(g) => chosen.push(g.clone()),
            Some(_) => {}
            None => break,
        }
    }
    chosen
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
    let hardware = detect_on(&args.device, args.gpu);
    let gpu = hardware.backend == "cuda";
    // asked for a GPU: never train on the CPU instead (the record would name the GPU's class)
    if (args.device == "cuda" || args.gpu.is_some()) && !gpu {
        return Err(ChildError::Device(
            match (cfg!(feature = "cuda"), args.gpu) {
                (false, _) => {
                    "a CUDA device was asked for; this spored is built without the `cuda` feature"
                        .into()
                }
                (true, Some(i)) => format!("GPU {i} was asked for; nvidia-smi does not list it"),
                (true, None) => "a CUDA device was asked for; nvidia-smi lists no GPU".into(),
            },
        ));
    }
    // What the run does before its first optimiser step, told as it begins: on a GPU with a
    // cold kernel cache that is minutes, and the node says so (`report::StageLine`).
    let of = 1 + train::STAGES.len() as u64;
    let stage = |out: &mut dyn Write, index: u64, what: &str| {
        let line = report::stage_line(&report::StageLine {
            stage: index + 1,
            of,
            gpu,
            budget: args.budget_s,
            elapsed: started.elapsed().as_secs_f64(),
            what: what.into(),
        });
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    stage(out, 0, "reading the corpus");
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
    let mut progress = |event: train::Event| match event {
        train::Event::Stage { index, what } => stage(out, index as u64 + 1, what),
        train::Event::Step(p) => {
            if last_line.elapsed() >= Duration::from_millis(500) {
                last_line = Instant::now();
                let _ = writeln!(out, "{}", report::progress_line(p));
                let _ = out.flush();
            }
        }
    };
    let outcome = match hardware.backend {
        #[cfg(feature = "cuda")]
        "cuda" => {
            if let Some(dir) = &args.kernel_cache {
                kernel_cache_in(dir);
            }
            type B = burn::backend::Autodiff<burn_cuda::Cuda>;
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
            let index =
                cuda_ordinal(args.gpu, &gpus(), visible.as_deref()).map_err(ChildError::Device)?;
            let device = burn_cuda::CudaDevice { index };
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

#[cfg(test)]
mod tests {
    use super::*;

    const SMI: &str = "0, GPU-6f1c2a8e-0000-1111-2222-333344445555, NVIDIA H100 80GB HBM3\n\
                       1, GPU-9a0b1c2d-0000-1111-2222-333344445555, NVIDIA H100 80GB HBM3\n\
                       2, GPU-9a0b77aa-0000-1111-2222-333344445555, NVIDIA A100-SXM4-40GB\n\
                       not a gpu line\n";

    #[test]
    fn nvidia_smi_lists_parse_and_bad_lines_are_skipped() {
        let gpus = parse_gpus(SMI);
        assert_eq!(gpus.len(), 3);
        assert_eq!(gpus[2].index, 2);
        assert_eq!(gpus[2].name, "NVIDIA A100-SXM4-40GB");
        assert!(parse_gpus("").is_empty());
        assert!(parse_gpus("No devices were found").is_empty());
    }

    #[test]
    fn cuda_visible_devices_is_read_as_cuda_reads_it() {
        let all = parse_gpus(SMI);
        let indices = |v: Option<&str>| -> Vec<u32> {
            visible_gpus(&all, v).iter().map(|g| g.index).collect()
        };
        assert_eq!(indices(None), [0, 1, 2]);
        assert_eq!(indices(Some("2,0")), [2, 0]);
        assert_eq!(indices(Some("")), Vec::<u32>::new());
        assert_eq!(indices(Some("-1")), Vec::<u32>::new());
        // the list ends at the first entry that names no GPU
        assert_eq!(indices(Some("1,7,0")), [1]);
        // a unique UUID prefix names a GPU; an ambiguous one ends the list
        assert_eq!(indices(Some("GPU-6f1c")), [0]);
        assert_eq!(indices(Some("0,GPU-9a0b")), [0]);
        assert_eq!(indices(Some("GPU-9a0b77")), [2]);
    }

    #[test]
    fn a_pinned_gpu_is_found_among_the_visible_ones() {
        let all = parse_gpus(SMI);
        // the runner pins a child with CUDA_VISIBLE_DEVICES=N and --gpu N: CUDA's device 0
        assert_eq!(cuda_ordinal(Some(2), &all, Some("2")), Ok(0));
        assert_eq!(cuda_ordinal(Some(1), &all, None), Ok(1));
        assert_eq!(cuda_ordinal(Some(0), &all, Some("2,0")), Ok(1));
        assert_eq!(cuda_ordinal(None, &all, Some("2")), Ok(0));
        let hidden = cuda_ordinal(Some(1), &all, Some("2")).unwrap_err();
        assert!(hidden.contains("not visible"), "{hidden}");
        assert!(cuda_ordinal(Some(5), &all, None).is_err());
    }
}
