//! The training loop and the val_bpb evaluation, generic over the autodiff backend.
//!
//! Reproducibility: the run first times a few steps, then fixes the number of optimiser steps
//! that fit the budget; the learning-rate schedule depends on `step / planned_steps` only. A rerun
//! given that step count (`--steps N`, what the record's `num_steps` holds) replays the same
//! batches, the same schedule and, on the same backend, the same val_bpb.

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::model::Gpt;
use crate::rng::SplitMix64;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use std::time::{Duration, Instant};

/// Steps timed before the run plans how many fit in the budget.
const CALIBRATION_STEPS: usize = 4;
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
    mut on_progress: impl FnMut(&Progress),
) -> Result<Outcome, TrainError> {
    let t = &config.train;
    B::seed(device, t.seed);
    let mut model = Gpt::<B>::new(&config.model, device);
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
    let mut rng = SplitMix64::new(t.seed);
    let context = config.model.context;
    let tokens_per_step = config.tokens_per_step() as u64;

    let start = Instant::now();
    let mut planned = options.steps;
    let mut calibration_start = None;
    let mut step = 0usize;
    let mut loss_value = f64::NAN;
    loop {
        if let Some(n) = planned {
            if step >= n {
                break;
            }
        } else if start.elapsed() >= options.budget {
            // The budget ran out while calibrating: the steps taken are the step count.
            break;
        }
        let progress = planned.map_or(0.0, |n| step as f64 / n as f64);
        let lr = config.lr_at(step, progress);
        let mut accumulator = GradientsAccumulator::<Gpt<B>>::new();
        let mut loss_sum = 0.0;
        for _ in 0..t.grad_accum {
            let batch = data.train_batch(&mut rng, t.batch_size, context);
            let (inputs, targets) = split_batch::<B>(&batch, t.batch_size, context, device);
            let loss = model.token_nll(inputs, targets).mean() / t.grad_accum as f64;
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        loss_value = loss_sum;
        if !loss_value.is_finite() || loss_value > DIVERGED_LOSS {
            return Err(TrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        model = optim.step(lr, model, accumulator.grads());
        step += 1;

        if planned.is_none() {
            if step == 1 {
                calibration_start = Some(Instant::now());
            } else if step == 1 + CALIBRATION_STEPS {
                let per_step = calibration_start
                    .map(|c| c.elapsed().as_secs_f64() / CALIBRATION_STEPS as f64)
                    .unwrap_or(1.0);
                let left = options.budget.as_secs_f64() - start.elapsed().as_secs_f64();
                planned = Some(step + (left.max(0.0) / per_step).floor() as usize);
            }
        }
        let elapsed = start.elapsed();
        on_progress(&Progress {
            step,
            planned,
            loss: loss_value,
            tokens_per_s: (step as u64 * tokens_per_step) as f64 / elapsed.as_secs_f64(),
            elapsed,
            budget: options.budget,
        });
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let tokens = step as u64 * tokens_per_step;
    let val_bpb = evaluate(&model.valid(), data, context, options.eval_tokens, device)?;
    Ok(Outcome {
        val_bpb,
        steps: step,
        num_params: config.num_params(),
        tokens,
        train_seconds,
        tokens_per_s: tokens as f64 / train_seconds.max(1e-9),
        final_loss: loss_value,
    })
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
