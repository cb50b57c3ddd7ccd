//! Every GPU busy and a warm start (issue #22): a research node with two GPU slots prepares the
//! kernels of its task once, then runs two experiments at once, each child pinned to its own GPU,
//! and publishes each of them; a node started after it finds the kernels prepared. The GPUs are stand-ins: the
//! runner's slots are given, and the training child is a script that logs what it was started
//! with and prints what `spored train` prints. Scheduling on real GPUs differs only in who
//! listed the slots (`experiment_runner::slots`, unit-tested).

#![allow(clippy::disallowed_methods)] // this process owns its store

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback_options;
use spore_actors::experiment_runner::{RunnerConfig, Slot};
use spore_actors::node::{Mode, Node, Work};
use spore_actors::research::ResearchOptions;
use spore_actors::setting::Setting;
use spore_actors::verifier::VerifyOptions;
use spore_actors::Store;
use spore_spec::wire::Message;
use spore_spec::{Identity, Signed as _, TaskManifest};

/// `spored train` as the runner sees it: a stage line, progress, the summary. It logs
/// `start <--gpu> <CUDA_VISIBLE_DEVICES> <--device> <--steps> <config sha256> <ns>` and
/// `end <--gpu> <ns>`.
fn fake_train(log: &std::path::Path) -> String {
    format!(
        r#"#!/bin/sh
gpu=none; device=none; config=none; steps=budget
while [ $# -gt 0 ]; do
  case "$1" in --gpu) gpu="$2"; shift;; --device) device="$2"; shift;; --config) config="$2"; shift;;
    --steps) steps="$2"; shift;; esac
  shift
done
sha=$(sha256sum "$config" | cut -c1-64)
echo "start $gpu ${{CUDA_VISIBLE_DEVICES:-unset}} $device $steps $sha $(date +%s%N)" >> {log}
echo "preparing stage=1 of=4 gpu=1 budget=1.0 elapsed=0.0 what=reading the corpus"
sleep 1
echo "progress step=1 planned=2 loss=3.0 tok_s=10 elapsed=0.5 budget=1.0"
echo "end $gpu $(date +%s%N)" >> {log}
printf -- "---\nval_bpb:          2.5\nnum_steps:        2\nnum_parameters:   10\n"
"#,
        log = log.display()
    )
}

/// A research node on the default task with GPU slots 0 and 1, its store in `dir/db`, its
/// children [`fake_train`], and its kernel cache in `dir/gpu-kernels`.
fn start_node(dir: &Path, db: &str, max_experiments: u64) -> (Node, Arc<Store>) {
    start_node_on(dir, db, max_experiments, None)
}

/// [`start_node`] researching task `pinned`.
fn start_node_on(
    dir: &Path,
    db: &str,
    max_experiments: u64,
    pinned: Option<TaskManifest>,
) -> (Node, Arc<Store>) {
    let program = dir.join("train.sh");
    std::fs::write(&program, fake_train(&dir.join("children.log"))).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Arc::new(Store::open(&dir.join(db).join("spored.redb")).unwrap());
    if let Some(task) = &pinned {
        let body = Message::Task(task.clone()).encode_body();
        let stored = spore_actors::ingest::ingest(&store, &[body], None, false).unwrap();
        assert_eq!(stored.summary.accepted, 1, "{:?}", stored.summary.problems);
    }
    let work = Work {
        runner: RunnerConfig {
            program,
            work_dir: dir.join("runs"),
            resource: 100,
            memory_limit_mb: 4096,
            device: "cuda".into(),
            eval_tokens: None,
            show_progress: false,
            grace: Some(Duration::from_secs(30)),
            kernel_cache: Some(dir.join("gpu-kernels")),
            slots: vec![Slot::Gpu(0), Slot::Gpu(1)],
        },
        verify: VerifyOptions {
            seed: SEED,
            gpu_model: CLASS.into(),
            probability: 0.0,
            datasets_dir: dir.join("datasets"),
            sandbox: Default::default(),
            rerun: None,
        },
    };
    let research = ResearchOptions {
        seed: SEED,
        pinned_task: Setting::new(pinned.map(|t| t.task_id)),
        time_budget: Some(Duration::from_secs(1)),
        max_experiments: Some(max_experiments),
        gpu_model: CLASS.into(),
        cuda_version: "12.8".into(),
        memory_limit: 4 << 30,
        initial_sync_wait: Duration::ZERO,
        llm: Setting::new(None),
        datasets_dir: dir.join("datasets"),
        sandbox: Default::default(),
        parallel: 2,
        kernel_cache: Some(spore_actors::warmup::Cache {
            dir: dir.join("gpu-kernels"),
            on: spore_actors::warmup::Hardware {
                gpu_class: CLASS.into(),
                cuda_version: "12.8".into(),
                resource: 100,
            },
        }),
    };
    let node = Node::builder(store.clone(), loopback_options(41, Vec::new()))
        .mode(Mode::Research(work, Box::new(research)))
        .spawn()
        .unwrap();
    (node, store)
}

const SEED: [u8; 32] = [41; 32];
const CLASS: &str = "NVIDIA_H100_80GB_HBM3";

/// The children's log lines of `kind` (`start`, `end`) on `gpu`: their other fields.
fn lines<'a>(text: &'a str, kind: &str, gpu: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|l| l[0] == kind && l[1] == gpu)
        .collect()
}

fn nanos(line: &[&str]) -> u128 {
    line.last().unwrap().parse().unwrap()
}

#[test]
fn a_node_with_two_gpus_prepares_once_then_runs_one_experiment_on_each_at_once() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (node, store) = start_node(dir.path(), "db", 4);
        let me = Identity::from_seed(SEED).node_id();
        let mine = || store.read().unwrap().node_record_ids(&me, 100).unwrap();
        // while both run, the explorer's header lists two runs, one per GPU
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut most_at_once = 0;
        let mut devices = std::collections::BTreeSet::new();
        let mut preparing_seen = false;
        while mine().len() < 4 {
            assert!(
                Instant::now() < deadline,
                "4 experiments not published in 60 s"
            );
            let now = node.registry.metrics.training();
            most_at_once = most_at_once.max(now.len());
            preparing_seen |= now
                .iter()
                .any(|t| t.label == spore_actors::warmup::LABEL && t.preparing.is_some());
            devices.extend(now.into_iter().map(|t| t.device));
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            preparing_seen,
            "the header never said the kernels were being prepared"
        );
        assert_eq!(
            most_at_once, 2,
            "the header showed at most {most_at_once} run(s)"
        );
        assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["gpu 0", "gpu 1"]);
        // max_experiments counts over both GPUs: no fifth
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let ids = mine();
        assert_eq!(ids.len(), 4, "max_experiments = 4 over both GPUs");
        {
            let read = store.read().unwrap();
            let records: Vec<_> = ids
                .iter()
                .map(|id| read.experiment(id).unwrap().unwrap())
                .collect();
            let configs: std::collections::BTreeSet<_> =
                records.iter().map(|r| r.code_cid.clone()).collect();
            assert_eq!(configs.len(), 4, "two workers ran the same config");
            for r in &records {
                assert_eq!(r.gpu_model, CLASS);
                assert_eq!(r.val_bpb.value(), 2.5);
            }
        }
        node.shutdown().await;
        drop(store);

        let text = std::fs::read_to_string(dir.path().join("children.log")).unwrap();
        let starts: Vec<Vec<&str>> = ["0", "1"]
            .iter()
            .flat_map(|gpu| lines(&text, "start", gpu))
            .collect();
        assert_eq!(starts.len(), 5, "a preparing run and 4 experiments: {text}");
        for s in &starts {
            // pinned: `--gpu N`, CUDA_VISIBLE_DEVICES=N, the CUDA device
            assert_eq!(s[1], s[2], "{text}");
            assert_eq!(s[3], "cuda", "{text}");
        }
        // first the preparing run (a few steps), alone: every experiment started after it ended
        let first = text.lines().next().unwrap().split(' ').collect::<Vec<_>>();
        assert_eq!(
            first[4], "2",
            "the first child was not the preparing run: {text}"
        );
        let prepared_at = nanos(&lines(&text, "end", first[1])[0]);
        assert!(starts
            .iter()
            .filter(|s| s[4] == "budget")
            .all(|s| nanos(s) >= prepared_at));
        assert_eq!(starts.iter().filter(|s| s[4] == "budget").count(), 4);
        // each GPU ran one child at a time, and the two GPUs' children overlapped
        for gpu in ["0", "1"] {
            let (s, e) = (lines(&text, "start", gpu), lines(&text, "end", gpu));
            assert!(!s.is_empty(), "GPU {gpu} ran nothing: {text}");
            for i in 1..s.len() {
                assert!(
                    nanos(&s[i]) >= nanos(&e[i - 1]),
                    "two children on GPU {gpu}: {text}"
                );
            }
        }
        let spans = |gpu| {
            lines(&text, "start", gpu)
                .iter()
                .zip(lines(&text, "end", gpu))
                .map(|(s, e)| (nanos(s), nanos(&e)))
                .collect::<Vec<_>>()
        };
        let overlapped = spans("0")
            .iter()
            .any(|(a, b)| spans("1").iter().any(|(c, d)| a < d && c < b));
        assert!(
            overlapped,
            "the GPUs never trained at the same time: {text}"
        );

        // another node with the same kernel cache: prepared, so its first child is an experiment
        let (node, store) = start_node(dir.path(), "db2", 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while store
            .read()
            .unwrap()
            .node_record_ids(&me, 100)
            .unwrap()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "no experiment after the restart");
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        node.shutdown().await;
        let text = std::fs::read_to_string(dir.path().join("children.log")).unwrap();
        let preparing = text.lines().filter(|l| l.split(' ').nth(4) == Some("2"));
        assert_eq!(
            preparing.count(),
            1,
            "the kernels were prepared again: {text}"
        );
    });
}

#[test]
fn a_task_without_a_root_gets_one_root_however_many_gpus_start_on_it() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::from_seed(SEED);
        // a task of this node's own, with no root yet: its baseline runs here, once
        let mut task = spore_actors::default_task::manifest();
        task.name = "mine".into();
        task.created_by = me.node_id();
        task.sign_with(&me);
        let (node, store) = start_node_on(dir.path(), "db", 3, Some(task.clone()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let records = || {
            let read = store.read().unwrap();
            read.task_record_ids(&task.task_id)
                .unwrap()
                .iter()
                .map(|id| read.experiment(id).unwrap().unwrap())
                .collect::<Vec<_>>()
        };
        while records().len() < 3 {
            assert!(
                Instant::now() < deadline,
                "3 experiments not published in 60 s"
            );
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let all = records();
        node.shutdown().await;
        assert_eq!(all.len(), 3, "max_experiments = 3");
        let roots: Vec<_> = all.iter().filter(|r| r.parent.is_none()).collect();
        assert_eq!(roots.len(), 1, "{} roots", roots.len());
        assert_eq!(roots[0].agent_model, "baseline");
        for child in all.iter().filter(|r| r.parent.is_some()) {
            assert_eq!(child.parent.as_deref(), Some(roots[0].id.as_str()));
        }
        // and one baseline run for it: the other GPU waited instead of training a second root
        // (which the store would refuse, a whole budget wasted)
        let text = std::fs::read_to_string(dir.path().join("children.log")).unwrap();
        let baselines = text
            .lines()
            .filter(|l| l.starts_with("start"))
            .filter(|l| l.split(' ').nth(4) == Some("budget"))
            .filter(|l| l.split(' ').nth(5) == Some(roots[0].code_cid.as_str()))
            .count();
        assert_eq!(baselines, 1, "{text}");
    });
}
