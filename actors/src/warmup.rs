//! Preparing GPU kernels before the first experiment (issue #22).
//!
//! burn's CUDA backend compiles its kernels and autotunes them on first use: minutes on a fresh
//! machine. The results go to the kernel cache in the data dir (`<data>/gpu-kernels`, `spored
//! train --kernel-cache`), so only the first use pays. A node starting on a GPU, and `spored
//! warmup`, pay it before the first experiment: one short run of the task's baseline (a few
//! steps and the evaluation) fills the cache, and a marker named after what was prepared says
//! so, so later starts skip it. Several GPUs share one cache, so the node prepares on one
//! before its workers start on all of them (instead of each compiling the same kernels at
//! once). Proposals that change the model's shapes compile what they add on their first step,
//! which is not budget time either (the budget clock starts after it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use spore_spec::TaskManifest;
use spore_train::config::ARTIFACT_TYPE;

use crate::experiment_runner::RunRequest;
use crate::task_data::{builtin_baseline, task_data};

/// Optimiser steps of a preparing run: the first compiles the training kernels, the second
/// checks that they run warm.
pub const STEPS: u64 = 2;

/// What a preparing run runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hardware {
    /// The records' `gpu_model` class.
    pub gpu_class: String,
    /// The records' `cuda_version` (the driver's CUDA version).
    pub cuda_version: String,
    /// The runner's `resource` share.
    pub resource: u8,
}

/// Where a node keeps its kernels, and what they are prepared for.
#[derive(Clone, Debug)]
pub struct Cache {
    pub dir: PathBuf,
    pub on: Hardware,
}

/// The label of a preparing run (the explorer's header: "the task's baseline: preparing GPU
/// kernels (2/4: …)").
pub const LABEL: &str = "the task's baseline";

/// What a preparing run prepares: a task's baseline.
#[derive(Clone, Debug)]
pub struct Target {
    pub task: TaskManifest,
    /// The baseline config artifact.
    pub config: Vec<u8>,
}

impl Target {
    /// The marker's name: what decides the kernels (this build, the GPU class and driver,
    /// `resource`, which sets the rows of a forward pass, the config and the data's
    /// preparation), not the task (tasks with one baseline share them).
    pub fn key(&self, on: &Hardware) -> String {
        let mut text = format!(
            "spored {}\n{}\n{}\n{}\n{}\n{}\n",
            env!("CARGO_PKG_VERSION"),
            on.gpu_class,
            on.cuda_version,
            on.resource,
            self.task.dataset_cid,
            self.task.prepare_cid
        )
        .into_bytes();
        text.extend_from_slice(&self.config);
        spore_spec::crypto::sha256_hex(&text)
    }

    /// The run that prepares the kernels: [`STEPS`] steps and the evaluation.
    pub fn request(&self, datasets_dir: &Path) -> Result<RunRequest, String> {
        let data = task_data(datasets_dir, &self.task)?;
        Ok(RunRequest {
            config_bytes: self.config.clone(),
            budget: Duration::from_secs(self.task.time_budget.max(1) as u64),
            steps: Some(STEPS),
            label: LABEL.into(),
            corpus: data.corpus,
            prepare: data.prepare,
        })
    }
}

/// What preparing `task` (the one a node would research now, `research::task_now`) runs: its
/// baseline. None: nothing to prepare (a command task, or a base config not on this node yet:
/// its first experiment prepares its own kernels).
pub fn target(
    read: &crate::Reader,
    task: TaskManifest,
    datasets_dir: &Path,
) -> Result<Option<Target>, String> {
    if task.artifact_type != ARTIFACT_TYPE {
        return Ok(None);
    }
    let stored = read
        .artifact(&task.base_code_cid)
        .map_err(|e| e.to_string())?;
    let config = match stored {
        Some(bytes) => bytes,
        None => match builtin_baseline(datasets_dir, &task) {
            Ok(bytes) if spore_spec::crypto::sha256_hex(&bytes) == task.base_code_cid => bytes,
            _ => return Ok(None),
        },
    };
    Ok(Some(Target { task, config }))
}

/// Where the marker of `key` lives in `cache`.
fn marker(cache: &Path, key: &str) -> PathBuf {
    cache.join("prepared").join(key)
}

/// Whether kernels for `key` were prepared into `cache`.
pub fn prepared(cache: &Path, key: &str) -> bool {
    marker(cache, key).exists()
}

/// Notes that kernels for `key` are in `cache`.
pub fn mark(cache: &Path, key: &str, what: &str) -> std::io::Result<()> {
    let path = marker(cache, key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{what}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_what_decides_the_kernels() {
        let task = crate::default_task::manifest();
        let config = crate::default_task::baseline().to_bytes();
        let target = Target {
            task: task.clone(),
            config: config.clone(),
        };
        let h100 = Hardware {
            gpu_class: "NVIDIA_H100_80GB_HBM3".into(),
            cuda_version: "12.8".into(),
            resource: 100,
        };
        let key = target.key(&h100);
        assert_eq!(key.len(), 64);
        // another GPU class, driver, resource share or config: other kernels
        for other in [
            Hardware {
                gpu_class: "NVIDIA_A100-SXM4-40GB".into(),
                ..h100.clone()
            },
            Hardware {
                cuda_version: "13.0".into(),
                ..h100.clone()
            },
            Hardware {
                resource: 50,
                ..h100.clone()
            },
        ] {
            assert_ne!(key, target.key(&other), "{other:?}");
        }
        let mut other = config.clone();
        other.extend_from_slice(b"\n");
        assert_ne!(
            key,
            Target {
                task,
                config: other
            }
            .key(&h100)
        );

        let dir = tempfile::tempdir().unwrap();
        assert!(!prepared(dir.path(), &key));
        mark(dir.path(), &key, "task x").unwrap();
        assert!(prepared(dir.path(), &key));
        let cpu = Hardware {
            gpu_class: "CPU".into(),
            ..h100
        };
        assert!(!prepared(dir.path(), &target.key(&cpu)));
    }

    #[test]
    fn a_preparing_run_is_a_short_run_of_the_baseline_on_the_task_data() {
        let task = crate::default_task::manifest();
        let target = Target {
            task,
            config: crate::default_task::baseline().to_bytes(),
        };
        let dir = tempfile::tempdir().unwrap();
        let request = target.request(dir.path()).unwrap();
        assert_eq!(request.steps, Some(STEPS));
        assert_eq!(request.config_bytes, target.config);
        // the default task trains on the built-in corpus
        assert!(request.corpus.is_none() && request.prepare.is_none());
    }
}
