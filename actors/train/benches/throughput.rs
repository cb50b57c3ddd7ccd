//! Training throughput of the baseline architecture on this CPU (flex backend).
//!
//! `cargo bench -p spore-train --bench throughput -- [CORPUS] [STEPS] [BATCH] [D_MODEL] [LAYERS] [CTX]`
//! matches the arguments of `../shared/anchors/torch_tiny_gpt.py`, so both train the same model
//! on the same corpus in the same run (see docs/benchmarks.md).

use spore_train::train::{train, Event, TrainOptions};
use spore_train::{Dataset, RunConfig};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let corpus = args
        .first()
        .cloned()
        .unwrap_or_else(|| "/usr/share/common-licenses/GPL-3".into());
    let steps = arg(1, 200);
    let mut config = RunConfig::baseline();
    config.train.batch_size = arg(2, 16);
    config.model.d_model = arg(3, 64);
    config.model.n_layer = arg(4, 2);
    config.model.context = arg(5, 64);
    config.train.warmup_steps = 0;
    let data = match std::fs::read(&corpus) {
        Ok(bytes) => Dataset::from_bytes(&bytes),
        Err(e) => {
            eprintln!("cannot read {corpus}: {e}");
            std::process::exit(2);
        }
    };
    let options = TrainOptions {
        budget: Duration::from_secs(3600),
        steps: Some(steps),
        eval_tokens: 4096,
        shards: spore_train::child::CPU_SHARDS,
        parallel: true,
        max_rows: usize::MAX,
    };
    type B = burn::backend::Autodiff<burn::backend::Flex>;
    let device = Default::default();
    spore_train::child::tune_allocator(); // as `spored train` does
    let mut first_loss = None;
    let mut timed_from = None;
    let started = Instant::now();
    let outcome = train::<B>(&config, &data, &options, &device, |event| {
        if let Event::Step(p) = event {
            first_loss.get_or_insert(p.loss);
            if p.step == 10 {
                timed_from = Some(Instant::now());
            }
        }
    })
    .expect("training runs");
    let timed = timed_from.map_or(started.elapsed(), |t| t.elapsed());
    let timed_steps = steps.saturating_sub(10).max(1);
    let tokens = (timed_steps * config.tokens_per_step()) as f64;
    let tps = tokens / timed.as_secs_f64();
    let flops_per_token = 6.0 * config.num_params() as f64
        + 12.0 * (config.model.n_layer * config.model.context * config.model.d_model) as f64;
    println!(
        "spored flex: {} params, {} steps, {:.0} tokens/s (steps 10..{}), {:.2} GFLOP/s, loss {:.3} -> {:.3}, val_bpb {:.4}",
        config.num_params(),
        steps,
        tps,
        steps,
        tps * flops_per_token / 1e9,
        first_loss.unwrap_or(f64::NAN),
        outcome.final_loss,
        outcome.val_bpb
    );
}
