//! Training behaviour: a tiny config learns, reruns reproduce, the reference's parse rules hold.

use spore_train::report::parse_output;
use spore_train::train::{train, TrainOptions};
use spore_train::{Dataset, RunConfig};
use std::time::Duration;

type B = burn::backend::Autodiff<burn::backend::Flex>;

/// burn's seeded RNG is one per process: tests that train at the same time would interleave
/// their draws and change each other's initial weights. Training tests take turns.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny() -> RunConfig {
    let mut c = RunConfig::baseline();
    c.model.n_layer = 1;
    c.model.d_model = 32;
    c.model.n_head = 2;
    c.model.context = 32;
    c.train.batch_size = 8;
    c.train.warmup_steps = 5;
    c
}

fn run(config: &RunConfig, data: &Dataset, steps: usize) -> f64 {
    run_on(config, data, steps, true)
}

fn run_on(config: &RunConfig, data: &Dataset, steps: usize, parallel: bool) -> f64 {
    let _turn = one_at_a_time();
    let options = TrainOptions {
        budget: Duration::from_secs(600),
        steps: Some(steps),
        eval_tokens: 4096,
        shards: spore_train::child::CPU_SHARDS,
        parallel,
        max_rows: usize::MAX,
    };
    train::<B>(config, data, &options, &Default::default(), |_| {})
        .expect("training runs")
        .val_bpb
}

#[test]
fn a_tiny_config_learns_and_a_rerun_reproduces_it() {
    let data = Dataset::builtin();
    let config = tiny();
    let untrained = run(&config, &data, 0);
    // Uniform over 256 byte values is 8 bits per byte; an untrained model is close to that.
    assert!(
        (untrained - 8.0).abs() < 0.5,
        "untrained val_bpb {untrained}"
    );
    let trained = run(&config, &data, 60);
    assert!(
        trained < untrained - 2.0,
        "60 steps should lower val_bpb well below {untrained}, got {trained}"
    );
    let again = run(&config, &data, 60);
    assert!(
        (trained - again).abs() < 1e-4,
        "same config, seed, steps and backend: {trained} vs {again}"
    );
    // one thread or two: the same shards, the same numbers
    assert_eq!(run_on(&config, &data, 60, false), trained);
    let mut other_seed = config.clone();
    other_seed.train.seed += 1;
    assert_ne!(run(&other_seed, &data, 60), trained);
}

#[test]
fn a_budgeted_run_plans_its_steps_and_reports_them() {
    let data = Dataset::builtin();
    let options = TrainOptions {
        budget: Duration::from_secs(2),
        steps: None,
        eval_tokens: 2048,
        shards: spore_train::child::CPU_SHARDS,
        parallel: true,
        max_rows: usize::MAX,
    };
    let outcome = {
        let _turn = one_at_a_time();
        train::<B>(&tiny(), &data, &options, &Default::default(), |_| {}).unwrap()
    };
    assert!(outcome.steps > 5, "{} steps in 2 s", outcome.steps);
    assert!(outcome.train_seconds < 4.0, "{} s", outcome.train_seconds);
    assert!(outcome.val_bpb > 0.0 && outcome.val_bpb < 8.5);
}

#[test]
fn runner_output_parses_as_the_reference_vectors_say() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/vectors/parsing.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["runner_parse_output"].as_object().unwrap();
    assert!(cases.len() >= 4);
    for (name, case) in cases {
        let p = parse_output(case["output"].as_str().unwrap());
        assert_eq!(p.val_bpb, case["val_bpb"].as_f64().unwrap(), "{name}");
        assert_eq!(
            p.peak_vram_mb,
            case["peak_vram_mb"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(p.num_steps, case["num_steps"].as_u64().unwrap(), "{name}");
        assert_eq!(p.num_params, case["num_params"].as_u64().unwrap(), "{name}");
        assert_eq!(
            p.success(true),
            case["success_if_exit_0"].as_bool().unwrap(),
            "{name}"
        );
    }
    for case in v["runner_status_decision"].as_array().unwrap() {
        let status = spore_train::report::decide(
            case["success"].as_bool().unwrap(),
            case["error"].as_str().unwrap(),
            case["result_val_bpb"].as_f64().unwrap(),
            case["parent_val_bpb"].as_f64(),
        );
        assert_eq!(status, case["status"].as_str().unwrap(), "{}", case["case"]);
    }
}

#[test]
fn a_smaller_resource_runs_the_micro_batch_in_chunks_with_the_same_gradients() {
    assert_eq!(TrainOptions::rows_for_resource(16, 100), usize::MAX);
    assert_eq!(TrainOptions::rows_for_resource(16, 50), 8);
    assert_eq!(TrainOptions::rows_for_resource(16, 1), 1);
    let data = Dataset::builtin();
    let config = tiny(); // 8 rows per micro-batch
    let run_with = |shards: usize, max_rows: usize| {
        let options = TrainOptions {
            budget: Duration::from_secs(600),
            steps: Some(30),
            eval_tokens: 4096,
            shards,
            parallel: true,
            max_rows,
        };
        let _turn = one_at_a_time();
        train::<B>(&config, &data, &options, &Default::default(), |_| {}).expect("training runs")
    };
    // two shards of 4 rows at once, or two chunks of 4 rows one after the other: the same
    // row groups, so the very same numbers
    let sharded = run_with(2, usize::MAX);
    let chunked = run_with(1, 4);
    assert_eq!(sharded.val_bpb, chunked.val_bpb);
    assert_eq!(sharded.final_loss, chunked.final_loss);
    assert_eq!(sharded.tokens, chunked.tokens, "the same total batch");
    // one pass of 8 rows, or chunks of 2: the same gradients summed in another order, equal up
    // to rounding (before parameters were materialised up front, each shard's copy of a fresh
    // model drew its own initial weights and these differed by 2 % after 30 steps)
    let whole = run_with(1, usize::MAX);
    let fine = run_with(2, 2);
    for other in [&whole, &fine] {
        assert_eq!(other.steps, sharded.steps);
        assert!(
            (other.val_bpb - sharded.val_bpb).abs() < 1e-6,
            "{} vs {}",
            other.val_bpb,
            sharded.val_bpb
        );
    }
}

#[test]
fn muon_trains_the_hidden_matrices() {
    let data = Dataset::builtin();
    let adamw = run(&tiny(), &data, 60);
    let mut config = tiny();
    config.train.optimizer = spore_train::config::OptimizerKind::Muon;
    let muon = run(&config, &data, 60);
    assert!(muon < 6.0, "60 Muon steps should learn: val_bpb {muon}");
    assert!(
        (muon - adamw).abs() > 1e-3,
        "Muon must change the updates: {muon} vs {adamw}"
    );
    assert_eq!(run(&config, &data, 60), muon, "and reproduce");
}
