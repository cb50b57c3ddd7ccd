//! The training loop and the val_bpb evaluation, generic over the autodiff backend.
//!
//! Budget: the clock starts after the first optimiser step (warm-up: allocation, and on GPUs
//! kernel compilation and autotuning); `training_seconds` and tokens/s cover the steps after it.
//!
//! Reproducibility: the run times steps 6 to 10, then fixes the number of optimiser steps that
//! fit the budget; the learning-rate schedule depends on the step alone before step 10 and on
//! `step / planned_steps` after it. A rerun
//! given that step count (`--steps N`, what the record's `num_steps` holds) replays the same
//! batches, the same schedule and, on the same backend, the same val_bpb.

use crate::config::{OptimizerKind, Precision, RunConfig};
use crate::data::Dataset;
use crate::model::Gpt;
use crate::muon::{split_matrices, Muon};
use crate::rng::SplitMix64;
use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use std::time::{Duration, Instant};

/// The run plans its step count after this many steps...
const PLAN_AT: usize = 10;
/// ...from the time of the last few of them (the first ones compile kernels on GPUs).
const CALIBRATION_STEPS: usize = 5;
/// A loss above this (or not finite) stops the run as diverged.
const DIVERGED_LOSS: f64 = 100.0;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Wall-clock budget for the optimiser steps (evaluation comes after).
    pub budget: Duration,
    /// Exact number of optimiser steps (a rerun); `None` plans them from the budget.
    pub steps: Option<usize>,
    /// Validation tokens to score.
    pub eval_tokens: usize,
    /// Shards per micro-batch (CPU: 2; GPU: 1). Part of the numerics: a rerun must use the
    /// same value.
    pub shards: usize,
    /// Run the shards on parallel threads (false: one after the other, same numbers).
    pub parallel: bool,
    /// Most sequences in one forward pass: a larger micro-batch runs in chunks of this many
    /// rows, one after the other, and their gradients add up to the micro-batch's (the
    /// reference's resource-scaled device batch; `spored run --resource`). Less memory; the
    /// same result up to float summation order. `usize::MAX`: the whole micro-batch at once.
    pub max_rows: usize,
}

impl TrainOptions {
    /// Rows per forward pass for a node running at `resource` percent (1–100) of the machine:
    /// that share of the micro-batch, at least one row; all of it at 100.
    pub fn rows_for_resource(batch_size: usize, resource: u8) -> usize {
        if resource >= 100 {
            return usize::MAX;
        }
        (batch_size * resource.max(1) as usize / 100).max(1)
    }
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub step: usize,
    pub planned: Option<usize>,
    pub loss: f64,
    pub tokens_per_s: f64,
    pub elapsed: Duration,
    pub budget: Duration,
}

/// What a run tells while it trains: a stage of its start (before the first optimiser step, on
/// a GPU the minutes of kernel compilation and autotuning), then every step.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Stage `index` of [`STAGES`] begins.
    Stage {
        index: usize,
        what: &'static str,
    },
    Step(&'a Progress),
}

impl Event<'_> {
    fn stage(index: usize) -> Event<'static> {
        Event::Stage {
            index,
            what: STAGES[index],
        }
    }
}

/// The stages of a run's start, in order ([`Event::Stage`]).
pub const STAGES: [&str; 3] = [
    "building the model",
    "the first forward and backward pass",
    "the first optimizer step",
];

#[derive(Clone, Debug)]
pub struct Outcome {
    pub val_bpb: f64,
    pub steps: usize,
    pub num_params: u64,
    pub tokens: u64,
    pub train_seconds: f64,
    pub tokens_per_s: f64,
    pub final_loss: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged { step: usize, loss: f64 },
    #[error("the validation split is shorter than one context window")]
    NoValidation,
}

/// Train `config` on `data` and score it on the validation split.
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    data: &Dataset,
    options: &TrainOptions,
    device: &B::Device,
    mut on_event: impl FnMut(Event),
) -> Result<Outcome, TrainError> {
    let t = &config.train;
    on_event(Event::stage(0));
    B::seed(device, t.seed);
    // burn initialises parameters lazily, on first use, from the seeded RNG: every clone of a
    // fresh model would draw its own weights (the shards' copies and the optimiser's model got
    // three different initialisations in the first step). Materialise them once, here.
    let mut model = Gpt::<B>::new(&config.model, device)
        .with_bf16(t.precision == Precision::Bf16)
        .map(&mut FreshLeaves);
    let mut adamw = AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(t.weight_decay as f32);
    if t.grad_clip > 0.0 {
        adamw = adamw.with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(
            t.grad_clip as f32,
        )));
    }
    let mut optim = adamw.init::<B, Gpt<B>>();
    // Muon takes the hidden matrices; AdamW keeps the rest (their gradients are split per step)
    let mut muon = (t.optimizer == OptimizerKind::Muon).then(|| {
        burn::optim::adaptor::OptimizerAdaptor::<Muon, Gpt<B>, B>::from(Muon { beta: 0.95 })
    });
    let matrices = model.matrix_ids();
    let mut rng = SplitMix64::new(t.seed);
    let context = config.model.context;
    let tokens_per_step = config.tokens_per_step() as u64;
    // a micro-batch is fed in chunks of at most this many tokens (rows × (context + 1))
    let chunk_tokens = options.max_rows.max(1).saturating_mul(context + 1);

    // The budget clock starts after the first step: that one includes allocation, kernel
    // compilation and autotuning on GPUs (minutes for a cold cache), none of which is training.
    let mut clock: Option<Instant> = None;
    let elapsed = |clock: &Option<Instant>| clock.map_or(Duration::ZERO, |c| c.elapsed());
    let mut planned = options.steps;
    let mut window: Option<Instant> = None;
    let mut step = 0usize;
    let mut loss_value = f64::NAN;
    loop {
        if let Some(n) = planned {
            if step >= n {
                break;
            }
        } else if elapsed(&clock) >= options.budget {
            // The budget ran out while calibrating: the steps taken are the step count.
            break;
        }
        // Until the plan exists the schedule sees progress 0 (warmup depends on the step alone);
        // a rerun with a given step count does the same, so both follow one schedule.
        let progress = match planned {
            Some(n) if step >= PLAN_AT => step as f64 / n as f64,
            _ => 0.0,
        };
        let lr = config.lr_at(step, progress);
        if step == 0 {
            on_event(Event::stage(1));
        }
        let mut accumulator = GradientsAccumulator::<Gpt<B>>::new();
        let mut loss_sum = 0.0;
        for _ in 0..t.grad_accum {
            let batch = data.train_batch(&mut rng, t.batch_size, context);
            for chunk in batch.chunks(chunk_tokens) {
                for (loss, grads) in shard_grads(&model, chunk, t, context, options, device) {
                    loss_sum += loss;
                    accumulator.accumulate(&model, grads);
                }
            }
        }
        loss_value = loss_sum;
        if !loss_value.is_finite() || loss_value > DIVERGED_LOSS {
            return Err(TrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        if step == 0 {
            on_event(Event::stage(2));
        }
        let mut grads = accumulator.grads();
        if let Some(muon) = muon.as_mut() {
            let hidden = split_matrices::<B>(&mut grads, &matrices);
            model = muon.step(t.muon_lr * lr / t.lr, model, hidden);
        }
        model = optim.step(lr, model, grads);
        step += 1;

        if step == 1 {
            clock = Some(Instant::now());
        }
        if step == PLAN_AT - CALIBRATION_STEPS {
            window = Some(Instant::now());
        } else if planned.is_none() && step == PLAN_AT {
            let per_step =
                window.map_or(1.0, |w| w.elapsed().as_secs_f64()) / CALIBRATION_STEPS as f64;
            let left = options.budget.as_secs_f64() - elapsed(&clock).as_secs_f64();
            planned = Some(step + (left.max(0.0) / per_step.max(1e-9)).floor() as usize);
        }
        let timed = elapsed(&clock);
        on_event(Event::Step(&Progress {
            step,
            planned,
            loss: loss_value,
            tokens_per_s: (step.saturating_sub(1) as u64 * tokens_per_step) as f64
                / timed.as_secs_f64().max(1e-9),
            elapsed: timed,
            budget: options.budget,
        }));
    }
    // Throughput over the timed steps (all but the first).
    let train_seconds = elapsed(&clock).as_secs_f64();
    let tokens = step as u64 * tokens_per_step;
    let timed_tokens = step.saturating_sub(1) as u64 * tokens_per_step;
    let val_bpb = evaluate(&model.valid(), data, context, options.eval_tokens, device)?;
    Ok(Outcome {
        val_bpb,
        steps: step,
        num_params: config.num_params(),
        tokens,
        train_seconds,
        tokens_per_s: timed_tokens as f64 / train_seconds.max(1e-9),
        final_loss: loss_value,
    })
}

/// Loss and gradients of one micro-batch (or one chunk of it), split in `shards` fixed row
/// ranges computed on parallel threads. The split depends only on the config and `shards`,
/// never on the machine's cores, so results do not change with the thread count. Each shard's mean loss is weighted by its share
/// of the batch, so the sum is the whole micro-batch's mean loss.
fn shard_grads<B: AutodiffBackend>(
    model: &Gpt<B>,
    batch: &[u32],
    t: &crate::config::TrainConfig,
    context: usize,
    options: &TrainOptions,
    device: &B::Device,
) -> Vec<(f64, GradientsParams)> {
    let span = context + 1;
    let rows = batch.len() / span;
    let shards = options.shards.clamp(1, rows.max(1));
    let rows_per = rows.div_ceil(shards);
    let one = |model: &Gpt<B>, rows: &[u32]| {
        let n = rows.len() / span;
        let (inputs, targets) = split_batch::<B>(rows, n, context, device);
        let weight = n as f64 / (t.batch_size * t.grad_accum) as f64;
        let loss = model.token_nll(inputs, targets).mean() * weight;
        let value = loss.clone().into_scalar().elem::<f64>();
        (value, GradientsParams::from_grads(loss.backward(), model))
    };
    let parts: Vec<&[u32]> = batch.chunks(rows_per * span).collect();
    // Every shard works on its own leaves (same ParamIds, fresh autodiff nodes): the graphs are
    // disjoint, so threads cannot contend, and a second backward never meets the first one's
    // state (reusing leaves across backward passes changed the gradients: a test checks that
    // sequential and parallel shards now agree exactly). Gradients land on the same parameters.
    let copies: Vec<Gpt<B>> = parts
        .iter()
        .map(|_| model.clone().map(&mut FreshLeaves))
        .collect();
    if parts.len() == 1 || !options.parallel {
        return parts
            .iter()
            .zip(&copies)
            .map(|(rows, copy)| one(copy, rows))
            .collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts[1..]
            .iter()
            .zip(&copies[1..])
            .map(|(rows, copy)| scope.spawn(move || one(copy, rows)))
            .collect();
        let mut out = vec![one(&copies[0], parts[0])];
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Maps every parameter to a new autodiff leaf with the same id and value.
struct FreshLeaves;

impl<B: AutodiffBackend> ModuleMapper<B> for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
    }
}

/// val_bpb as the reference computes it: summed cross-entropy in nats over the target tokens,
/// divided by ln 2 times the UTF-8 bytes of those tokens.
pub fn evaluate<B: Backend>(
    model: &Gpt<B>,
    data: &Dataset,
    context: usize,
    eval_tokens: usize,
    device: &B::Device,
) -> Result<f64, TrainError> {
    let windows = data.eval_windows(context, eval_tokens);
    if windows.is_empty() {
        return Err(TrainError::NoValidation);
    }
    let mut nats = 0.0f64;
    let mut bytes = 0u64;
    for group in windows.chunks(16) {
        let flat: Vec<u32> = group.iter().flatten().copied().collect();
        let (inputs, targets) = split_batch::<B>(&flat, group.len(), context, device);
        let nll = model.token_nll(inputs, targets);
        let values = nll.into_data().convert::<f32>();
        let values = values.as_slice::<f32>().unwrap_or(&[]);
        nats += values.iter().map(|&v| v as f64).sum::<f64>();
        for w in group {
            bytes += w[1..]
                .iter()
                .map(|&tok| data.token_bytes[tok as usize] as u64)
                .sum::<u64>();
        }
    }
    Ok(nats / (std::f64::consts::LN_2 * bytes.max(1) as f64))
}

/// Inputs and targets [batch, context] from `batch` spans of `context + 1` tokens.
fn split_batch<B: Backend>(
    flat: &[u32],
    batch: usize,
    context: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let span = context + 1;
    let mut inputs = Vec::with_capacity(batch * context);
    let mut targets = Vec::with_capacity(batch * context);
    for row in flat.chunks(span) {
        inputs.extend(row[..context].iter().map(|&t| t as i64));
        targets.extend(row[1..].iter().map(|&t| t as i64));
    }
    (
        Tensor::from_data(TensorData::new(inputs, [batch, context]), device),
        Tensor::from_data(TensorData::new(targets, [batch, context]), device),
    )
}
