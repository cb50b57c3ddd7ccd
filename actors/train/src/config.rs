//! The native artifact: a declarative training config (`spore_gpt_config`).
//!
//! Its TOML bytes are the artifact (`code_cid` = SHA-256 of them). Running one runs only our code;
//! every value is range-checked before training, so a peer's config can waste at most one time
//! budget, never execute anything.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The artifact type name used in task manifests.
pub const ARTIFACT_TYPE: &str = "spore_gpt_config";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Must equal the dataset's vocabulary (256 for byte-level tokens).
    pub vocab_size: usize,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_head: usize,
    /// Hidden width of the MLP as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// Context length in tokens.
    pub context: usize,
    pub rope_theta: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_ratio: f64,
    pub warmup_steps: usize,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Per-parameter gradient-norm clip; 0 switches clipping off.
    pub grad_clip: f64,
    pub seed: u64,
    /// Number format of the matrix products. Absent means `f32`, so configs written before this
    /// field keep their bytes and their `code_cid`.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Optimiser of the hidden weight matrices; absent means `adamw` (configs written before
    /// this field keep their bytes).
    #[serde(default, skip_serializing_if = "OptimizerKind::is_adamw")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate of Muon (matrices; the rest keeps `lr`), on the same schedule.
    #[serde(
        default = "default_muon_lr",
        skip_serializing_if = "is_default_muon_lr"
    )]
    pub muon_lr: f64,
}

/// Which optimiser updates the hidden weight matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// AdamW for every parameter.
    #[default]
    Adamw,
    /// Muon (orthogonalised momentum) for the attention and MLP matrices, AdamW for the
    /// embedding, the output head and the norms.
    Muon,
}

impl OptimizerKind {
    pub fn is_adamw(&self) -> bool {
        *self == OptimizerKind::Adamw
    }
}

pub const DEFAULT_MUON_LR: f64 = 0.02;

fn default_muon_lr() -> f64 {
    DEFAULT_MUON_LR
}

fn is_default_muon_lr(x: &f64) -> bool {
    *x == DEFAULT_MUON_LR
}

/// How the matrix products of a run are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Mixed precision: parameters, optimiser state, norms, softmax and the loss stay f32; the
    /// inputs of every linear layer and of attention are cast to bf16 (GPU tensor cores). CUDA
    /// only: the CPU backend refuses it before training.
    Bf16,
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup, then cosine decay to `min_lr_ratio` at the end of the time budget.
    Cosine,
    /// Linear warmup, constant, then linear decay over the last 30 % of the budget.
    Warmdown,
    /// Linear warmup, then constant.
    Constant,
}

impl Schedule {
    pub const ALL: [Schedule; 3] = [Schedule::Cosine, Schedule::Warmdown, Schedule::Constant];
}

/// Why a config was refused before training.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("config is not valid TOML for spore_gpt_config: {0}")]
    Parse(String),
    #[error("{field} = {value} is out of range ({rule})")]
    Range {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("model.vocab_size = {config} but the dataset has {dataset} tokens")]
    Vocab { config: usize, dataset: usize },
    #[error("model cannot fit: needs about {need_mib} MiB, the limit is {limit_mib} MiB")]
    TooBig { need_mib: u64, limit_mib: u64 },
}

impl RunConfig {
    /// The default task's baseline: small enough to learn something in a minute on two cores.
    pub fn baseline() -> RunConfig {
        RunConfig {
            model: ModelConfig {
                vocab_size: 256,
                n_layer: 2,
                d_model: 64,
                n_head: 4,
                mlp_ratio: 4,
                context: 64,
                rope_theta: 10000.0,
            },
            train: TrainConfig {
                batch_size: 16,
                grad_accum: 1,
                lr: 0.003,
                min_lr_ratio: 0.1,
                warmup_steps: 20,
                schedule: Schedule::Cosine,
                weight_decay: 0.01,
                beta1: 0.9,
                beta2: 0.95,
                grad_clip: 1.0,
                seed: 42,
                precision: Precision::F32,
                optimizer: OptimizerKind::Adamw,
                muon_lr: DEFAULT_MUON_LR,
            },
        }
    }

    /// Parse artifact bytes and range-check every value.
    pub fn from_bytes(bytes: &[u8]) -> Result<RunConfig, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config: RunConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The artifact bytes: the canonical TOML rendering (field order as declared).
    pub fn to_bytes(&self) -> Vec<u8> {
        toml::to_string(self)
            .expect("a RunConfig always renders as TOML")
            .into_bytes()
    }

    pub fn head_dim(&self) -> usize {
        self.model.d_model / self.model.n_head.max(1)
    }

    /// Tokens consumed per optimiser step.
    pub fn tokens_per_step(&self) -> usize {
        self.train.batch_size * self.train.grad_accum * self.model.context
    }

    /// Trainable parameters (embedding, blocks, final norm, untied head).
    pub fn num_params(&self) -> u64 {
        let m = &self.model;
        let (v, d, l) = (m.vocab_size as u64, m.d_model as u64, m.n_layer as u64);
        let hidden = d * m.mlp_ratio as u64;
        let block = 2 * d + 3 * d * d + d * d + 2 * d * hidden;
        v * d + l * block + d + d * v
    }

    /// A rough upper bound of training memory in bytes: weights, gradients, two AdamW moments,
    /// and the activations autodiff keeps for one micro-batch (attention scores included).
    pub fn memory_estimate(&self) -> u64 {
        let m = &self.model;
        let (b, t, d) = (
            self.train.batch_size as u64,
            m.context as u64,
            m.d_model as u64,
        );
        let per_layer = b * t * d * (16 + 4 * m.mlp_ratio as u64) + 4 * b * m.n_head as u64 * t * t;
        let logits = 4 * b * t * m.vocab_size as u64;
        let activations = 4 * (m.n_layer as u64 * per_layer + logits);
        16 * self.num_params() + activations
    }

    /// Range checks that make a config safe to run; a clear reason for the first failure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        let t = &self.train;
        range("model.vocab_size", m.vocab_size, 2, 65_536)?;
        range("model.n_layer", m.n_layer, 1, 48)?;
        range("model.d_model", m.d_model, 8, 4096)?;
        range("model.n_head", m.n_head, 1, 64)?;
        range("model.mlp_ratio", m.mlp_ratio, 1, 8)?;
        range("model.context", m.context, 4, 4096)?;
        if !m.d_model.is_multiple_of(m.n_head) || !self.head_dim().is_multiple_of(2) {
            return Err(ConfigError::Range {
                field: "model.n_head",
                value: m.n_head.to_string(),
                rule: "d_model / n_head must be a whole, even head size".into(),
            });
        }
        frange("model.rope_theta", m.rope_theta, 1.0, 1e7)?;
        range("train.batch_size", t.batch_size, 1, 1024)?;
        range("train.grad_accum", t.grad_accum, 1, 64)?;
        frange("train.lr", t.lr, 1e-6, 1.0)?;
        frange("train.min_lr_ratio", t.min_lr_ratio, 0.0, 1.0)?;
        range("train.warmup_steps", t.warmup_steps, 0, 100_000)?;
        frange("train.weight_decay", t.weight_decay, 0.0, 1.0)?;
        frange("train.beta1", t.beta1, 0.0, 0.999_999)?;
        frange("train.beta2", t.beta2, 0.0, 0.999_999)?;
        frange("train.grad_clip", t.grad_clip, 0.0, 1e3)?;
        frange("train.muon_lr", t.muon_lr, 1e-5, 1.0)?;
        Ok(())
    }

    /// `validate` plus the checks that depend on the machine and the data.
    pub fn check_runnable(
        &self,
        dataset_vocab: usize,
        limit_bytes: u64,
    ) -> Result<(), ConfigError> {
        self.validate()?;
        if self.model.vocab_size != dataset_vocab {
            return Err(ConfigError::Vocab {
                config: self.model.vocab_size,
                dataset: dataset_vocab,
            });
        }
        let need = self.memory_estimate();
        if need > limit_bytes {
            return Err(ConfigError::TooBig {
                need_mib: need >> 20,
                limit_mib: limit_bytes >> 20,
            });
        }
        Ok(())
    }

    /// Learning rate at `progress` ∈ [0, 1] of the budget, after `step` optimiser steps.
    pub fn lr_at(&self, step: usize, progress: f64) -> f64 {
        let t = &self.train;
        if step < t.warmup_steps {
            return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
        }
        let p = progress.clamp(0.0, 1.0);
        let min = t.lr * t.min_lr_ratio;
        match t.schedule {
            Schedule::Constant => t.lr,
            Schedule::Cosine => min + 0.5 * (t.lr - min) * (1.0 + (std::f64::consts::PI * p).cos()),
            Schedule::Warmdown => {
                if p < 0.7 {
                    t.lr
                } else {
                    min + (t.lr - min) * (1.0 - p) / 0.3
                }
            }
        }
    }
}

fn range(field: &'static str, value: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        return Err(ConfigError::Range {
            field,
            value: value.to_string(),
            rule: format!("{lo}..={hi}"),
        });
    }
    Ok(())
}

fn frange(field: &'static str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value < lo || value > hi {
        return Err(ConfigError::Range {
            field,
            value: value.to_string(),
            rule: format!("a finite number in {lo}..={hi}"),
        });
    }
    Ok(())
}

impl fmt::Display for RunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.model;
        write!(
            f,
            "{}L d{} h{} ctx{} batch{}x{} lr{} {:?}",
            m.n_layer,
            m.d_model,
            m.n_head,
            m.context,
            self.train.batch_size,
            self.train.grad_accum,
            self.train.lr,
            self.train.schedule
        )?;
        if self.train.optimizer == OptimizerKind::Muon {
            write!(f, " muon{}", self.train.muon_lr)?;
        }
        if self.train.precision == Precision::Bf16 {
            write!(f, " bf16")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_round_trips_through_its_bytes() {
        let base = RunConfig::baseline();
        let bytes = base.to_bytes();
        assert_eq!(RunConfig::from_bytes(&bytes).unwrap(), base);
        assert_eq!(RunConfig::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn precision_is_f32_unless_written_and_bf16_round_trips() {
        let base = RunConfig::baseline();
        assert!(!String::from_utf8(base.to_bytes())
            .unwrap()
            .contains("precision"));
        let mut half = base.clone();
        half.train.precision = Precision::Bf16;
        let bytes = half.to_bytes();
        assert!(String::from_utf8(bytes.clone())
            .unwrap()
            .contains("precision = \"bf16\""));
        assert_eq!(RunConfig::from_bytes(&bytes).unwrap(), half);
        let wrong = String::from_utf8(bytes).unwrap().replace("bf16", "fp8");
        assert!(RunConfig::from_bytes(wrong.as_bytes()).is_err());
    }

    #[test]
    fn the_optimizer_is_adamw_unless_written_and_muon_lr_is_range_checked() {
        let base = String::from_utf8(RunConfig::baseline().to_bytes()).unwrap();
        assert!(!base.contains("optimizer") && !base.contains("muon_lr"));
        let mut muon = RunConfig::baseline();
        muon.train.optimizer = OptimizerKind::Muon;
        let text = String::from_utf8(muon.to_bytes()).unwrap();
        assert!(text.contains("optimizer = \"muon\""), "{text}");
        assert_eq!(RunConfig::from_bytes(text.as_bytes()).unwrap(), muon);
        muon.train.muon_lr = 5.0;
        assert!(muon
            .validate()
            .unwrap_err()
            .to_string()
            .contains("train.muon_lr"));
    }

    #[test]
    fn the_shipped_baseline_file_is_the_baseline() {
        let file = include_bytes!("../configs/baseline.toml");
        assert_eq!(RunConfig::baseline().to_bytes(), file.to_vec());
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_field_named() {
        let mut c = RunConfig::baseline();
        c.train.lr = -0.1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("train.lr"), "{err}");
        let mut c = RunConfig::baseline();
        c.model.n_head = 3;
        assert!(c.validate().unwrap_err().to_string().contains("n_head"));
        let mut c = RunConfig::baseline();
        c.model.d_model = 4096;
        c.model.n_layer = 48;
        let err = c.check_runnable(256, 1 << 30).unwrap_err();
        assert!(matches!(err, ConfigError::TooBig { .. }), "{err}");
        assert!(err.to_string().starts_with("model cannot fit"));
    }

    #[test]
    fn unknown_keys_and_garbage_are_parse_errors() {
        let mut text = String::from_utf8(RunConfig::baseline().to_bytes()).unwrap();
        text.push_str("\n[extra]\nx = 1\n");
        assert!(matches!(
            RunConfig::from_bytes(text.as_bytes()),
            Err(ConfigError::Parse(_))
        ));
        assert!(RunConfig::from_bytes(b"\xff\xfe").is_err());
        assert!(RunConfig::from_bytes(b"import os").is_err());
    }

    #[test]
    fn schedules_warm_up_then_decay() {
        let c = RunConfig::baseline();
        assert!(c.lr_at(0, 0.0) < c.lr_at(10, 0.0));
        assert!((c.lr_at(100, 0.0) - c.train.lr).abs() < 1e-12);
        assert!((c.lr_at(100, 1.0) - c.train.lr * c.train.min_lr_ratio).abs() < 1e-12);
    }
}
