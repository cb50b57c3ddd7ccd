//! Every GPU busy (issue #22): a research node with two GPU slots runs two experiments at once,
//! each child pinned to its own GPU, and publishes each of them. The GPUs are stand-ins: the
//! runner's slots are given, and the training child is a script that logs what it was started
//! with and prints what `spored train` prints. Scheduling on real GPUs differs only in who
//! listed the slots (`experiment_runner::slots`, unit-tested).

#![allow(clippy::disallowed_methods)] // this process owns its store

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback_options;
use spore_actors::experiment_runner::{RunnerConfig, Slot};
use spore_actors::node::{Mode, Node, Work};
use spore_actors::research::ResearchOptions;
use spore_actors::setting::Setting;
use spore_actors::verifier::VerifyOptions;
use spore_actors::Store;
use spore_spec::Identity;

/// `spored train` as the runner sees it: a stage line, progress, the summary. It logs
/// `start <--gpu> <CUDA_VISIBLE_DEVICES> <--device> <config sha> <ns>` and `end <--gpu> <ns>`.
fn fake_train(log: &std::path::Path) -> String {
    format!(
        r#"#!/bin/sh
gpu=none; device=none; config=none
while [ $# -gt 0 ]; do
  case "$1" in --gpu) gpu="$2"; shift;; --device) device="$2"; shift;; --config) config="$2"; shift;; esac
  shift
done
sha=$(sha256sum "$config" | cut -c1-16)
echo "start $gpu ${{CUDA_VISIBLE_DEVICES:-unset}} $device $sha $(date +%s%N)" >> {log}
echo "preparing stage=1 of=4 gpu=1 budget=1.0 elapsed=0.0 what=reading the corpus"
sleep 1
echo "progress step=1 planned=2 loss=3.0 tok_s=10 elapsed=0.5 budget=1.0"
echo "end $gpu $(date +%s%N)" >> {log}
printf -- "---\nval_bpb:          2.5\nnum_steps:        2\nnum_parameters:   10\n"
"#,
        log = log.display()
    )
}

#[test]
fn a_node_with_two_gpus_runs_two_experiments_at_once_each_on_its_own_gpu() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("children.log");
        let program = dir.path().join("train.sh");
        std::fs::write(&program, fake_train(&log)).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
        let seed = [41u8; 32];
        let work = Work {
            runner: RunnerConfig {
                program,
                work_dir: dir.path().join("runs"),
                resource: 100,
                memory_limit_mb: 4096,
                device: "cuda".into(),
                eval_tokens: None,
                show_progress: false,
                grace: Some(Duration::from_secs(30)),
                kernel_cache: None,
                slots: vec![Slot::Gpu(0), Slot::Gpu(1)],
            },
            verify: VerifyOptions {
                seed,
                gpu_model: "NVIDIA_H100_80GB_HBM3".into(),
                probability: 0.0,
                datasets_dir: dir.path().join("datasets"),
                sandbox: Default::default(),
                rerun: None,
            },
        };
        let research = ResearchOptions {
            seed,
            pinned_task: Setting::new(None),
            time_budget: Some(Duration::from_secs(1)),
            max_experiments: Some(4),
            gpu_model: "NVIDIA_H100_80GB_HBM3".into(),
            cuda_version: "12.8".into(),
            memory_limit: 4 << 30,
            initial_sync_wait: Duration::ZERO,
            llm: Setting::new(None),
            datasets_dir: dir.path().join("datasets"),
            sandbox: Default::default(),
            parallel: 2,
        };
        let node = Node::builder(store.clone(), loopback_options(41, Vec::new()))
            .mode(Mode::Research(work, Box::new(research)))
            .spawn()
            .unwrap();
        let me = Identity::from_seed(seed).node_id();
        let mine = || store.read().unwrap().node_record_ids(&me, 100).unwrap();
        // while both run, the explorer's header lists two runs, one per GPU
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut most_at_once = 0;
        let mut devices = std::collections::BTreeSet::new();
        while mine().len() < 4 {
            assert!(
                Instant::now() < deadline,
                "4 experiments not published in 60 s"
            );
            let now = node.registry.metrics.training();
            most_at_once = most_at_once.max(now.len());
            devices.extend(now.into_iter().map(|t| t.device));
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            most_at_once, 2,
            "the header showed at most {most_at_once} run(s)"
        );
        assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["gpu 0", "gpu 1"]);
        // max_experiments counts over both GPUs: no fifth
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let ids = mine();
        assert_eq!(ids.len(), 4, "max_experiments = 4 over both GPUs");
        let read = store.read().unwrap();
        let records: Vec<_> = ids
            .iter()
            .map(|id| read.experiment(id).unwrap().unwrap())
            .collect();
        let configs: std::collections::BTreeSet<_> =
            records.iter().map(|r| r.code_cid.clone()).collect();
        assert_eq!(configs.len(), 4, "two workers ran the same config");
        for r in &records {
            assert_eq!(r.gpu_model, "NVIDIA_H100_80GB_HBM3");
            assert_eq!(r.val_bpb.value(), 2.5);
        }
        drop(read);

        let text = std::fs::read_to_string(&log).unwrap();
        let starts: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("start"))
            .map(|l| l.split(' ').collect())
            .collect();
        assert_eq!(starts.len(), 4, "{text}");
        for s in &starts {
            // pinned: `--gpu N`, CUDA_VISIBLE_DEVICES=N, the CUDA device
            assert!(["0", "1"].contains(&s[1]), "{text}");
            assert_eq!(s[1], s[2], "{text}");
            assert_eq!(s[3], "cuda", "{text}");
        }
        // each GPU ran one child at a time, and the two GPUs' children overlapped
        let times = |kind: &str, gpu: &str| -> Vec<u128> {
            text.lines()
                .filter(|l| l.starts_with(kind) && l.split(' ').nth(1) == Some(gpu))
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect()
        };
        for gpu in ["0", "1"] {
            let (s, e) = (times("start", gpu), times("end", gpu));
            assert!(!s.is_empty(), "GPU {gpu} ran nothing: {text}");
            for (i, start) in s.iter().enumerate().skip(1) {
                assert!(
                    *start >= e[i - 1],
                    "two children on GPU {gpu} at once: {text}"
                );
            }
        }
        let (s0, e0, s1, e1) = (
            times("start", "0"),
            times("end", "0"),
            times("start", "1"),
            times("end", "1"),
        );
        let overlapped = s0
            .iter()
            .zip(&e0)
            .any(|(a, b)| s1.iter().zip(&e1).any(|(c, d)| a < d && c < b));
        assert!(
            overlapped,
            "the GPUs never trained at the same time: {text}"
        );
        node.shutdown().await;
    });
}
