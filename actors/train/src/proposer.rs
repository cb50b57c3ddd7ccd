//! The built-in proposer: a search over the config space that needs no LLM.
//!
//! Each proposal applies one or more named mutations to the parent config, each with the
//! hypothesis it tests. It never proposes a config already tried in the task (the caller says
//! which `code_cid`s exist), and widens its steps after a run of discards: one mutation at a
//! time normally, two after 5 discards in a row, three after 10.

use crate::config::{OptimizerKind, RunConfig, Schedule};
use crate::rng::SplitMix64;
use spore_spec::crypto::sha256_hex;

/// A candidate experiment.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub config: RunConfig,
    /// Its artifact bytes and their SHA-256 (the record's `code_cid`).
    pub bytes: Vec<u8>,
    pub cid: String,
    pub description: String,
    pub hypothesis: String,
}

impl Proposal {
    pub fn of(config: RunConfig, description: String, hypothesis: String) -> Proposal {
        let bytes = config.to_bytes();
        let cid = sha256_hex(&bytes);
        Proposal {
            config,
            bytes,
            cid,
            description,
            hypothesis,
        }
    }
}

/// How many mutations to combine after `discard_streak` discards in a row.
pub fn breadth(discard_streak: usize) -> usize {
    1 + (discard_streak / 5).min(2)
}

/// Propose a child of `parent` not yet tried (`tried(cid)` is false) that passes validation and
/// fits in `memory_limit` bytes. When the neighbourhood at the current breadth is used up, the
/// search widens by one mutation at a time (up to 6). `None` when nothing new was found.
pub fn propose(
    parent: &RunConfig,
    rng: &mut SplitMix64,
    discard_streak: usize,
    memory_limit: u64,
    tried: &dyn Fn(&str) -> bool,
) -> Option<Proposal> {
    for k in breadth(discard_streak)..=6 {
        if let Some(p) = draw(parent, rng, k, memory_limit, tried) {
            return Some(p);
        }
    }
    None
}

fn draw(
    parent: &RunConfig,
    rng: &mut SplitMix64,
    k: usize,
    memory_limit: u64,
    tried: &dyn Fn(&str) -> bool,
) -> Option<Proposal> {
    for _ in 0..200 {
        let mut config = parent.clone();
        let mut descriptions = Vec::new();
        let mut hypotheses = Vec::new();
        for _ in 0..k {
            let (d, h) = mutate(&mut config, rng);
            descriptions.push(d);
            hypotheses.push(h);
        }
        if config == *parent
            || config.validate().is_err()
            || config.memory_estimate() > memory_limit
        {
            continue;
        }
        let proposal = Proposal::of(config, descriptions.join("; "), hypotheses.join(" "));
        if !tried(&proposal.cid) {
            return Some(proposal);
        }
    }
    None
}

fn scale(x: f64, factor: f64) -> f64 {
    // Keep configs readable: 4 significant digits.
    let v = x * factor;
    if v == 0.0 {
        return 0.0;
    }
    let mag = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

/// Apply one random mutation; its description and hypothesis.
fn mutate(c: &mut RunConfig, rng: &mut SplitMix64) -> (String, String) {
    let up = rng.next_u64() & 1 == 0;
    match rng.below(14) {
        0 => {
            let f = if up { 1.5 } else { 1.0 / 1.5 };
            let old = c.train.lr;
            c.train.lr = scale(old, f);
            (
                format!("learning rate {old} -> {}", c.train.lr),
                if up {
                    "A higher peak LR makes more progress in a short fixed budget.".into()
                } else {
                    "A lower peak LR trains more stably and ends at a lower loss.".into()
                },
            )
        }
        1 => {
            let old = c.model.d_model;
            let head = c.head_dim();
            c.model.d_model = if up { old + 16 } else { old.saturating_sub(16) };
            // keep the head size when it still divides, else keep the head count
            if c.model.d_model.is_multiple_of(head) && c.model.d_model / head > 0 {
                c.model.n_head = c.model.d_model / head;
            }
            (
                format!("width d_model {old} -> {}", c.model.d_model),
                if up {
                    "A wider model fits the data better and the budget still allows enough steps."
                        .into()
                } else {
                    "A narrower model takes more steps in the budget, which matters more now."
                        .into()
                },
            )
        }
        2 => {
            let old = c.model.n_layer;
            c.model.n_layer = if up { old + 1 } else { old.saturating_sub(1) };
            (
                format!("depth {old} -> {} layers", c.model.n_layer),
                if up {
                    "Another layer adds capacity for longer-range structure.".into()
                } else {
                    "A shallower model trains faster per step, so it sees more tokens.".into()
                },
            )
        }
        3 => {
            let old = c.model.n_head;
            c.model.n_head = if up { old * 2 } else { (old / 2).max(1) };
            (
                format!("attention heads {old} -> {}", c.model.n_head),
                "The head count trades head size against the number of attention patterns.".into(),
            )
        }
        4 => {
            let old = c.model.context;
            c.model.context = if up { old * 2 } else { old / 2 };
            (
                format!("context {old} -> {} tokens", c.model.context),
                if up {
                    "Longer context lets the model use more of each verse.".into()
                } else {
                    "Shorter context is cheaper per token, so more tokens fit in the budget.".into()
                },
            )
        }
        5 => {
            let old = c.train.batch_size;
            c.train.batch_size = if up { old * 2 } else { (old / 2).max(1) };
            (
                format!("batch size {old} -> {}", c.train.batch_size),
                if up {
                    "Larger batches give less noisy gradients and better use of the cores.".into()
                } else {
                    "Smaller batches give more optimiser steps within the budget.".into()
                },
            )
        }
        6 => {
            let old = c.train.warmup_steps;
            c.train.warmup_steps = if up { old * 2 + 10 } else { old / 2 };
            (
                format!("warmup {old} -> {} steps", c.train.warmup_steps),
                "The warmup length changes early stability against time at the peak LR.".into(),
            )
        }
        7 => {
            let old = c.train.weight_decay;
            c.train.weight_decay = if up {
                scale(old.max(0.005), 2.0).min(0.5)
            } else {
                scale(old, 0.5)
            };
            (
                format!("weight decay {old} -> {}", c.train.weight_decay),
                "Weight decay regularises; in a short run less may be better, or more may generalise.".into(),
            )
        }
        8 => {
            let old = c.model.mlp_ratio;
            c.model.mlp_ratio = if up { old + 1 } else { old.saturating_sub(1) };
            (
                format!("MLP ratio {old} -> {}", c.model.mlp_ratio),
                "The MLP width moves compute between attention and the feed-forward part.".into(),
            )
        }
        9 => {
            let old = c.train.schedule;
            let others: Vec<Schedule> = Schedule::ALL.into_iter().filter(|s| *s != old).collect();
            c.train.schedule = others[rng.below(others.len())];
            (
                format!("LR schedule {old:?} -> {:?}", c.train.schedule),
                "The decay shape decides how much of the budget is spent at a high LR.".into(),
            )
        }
        10 => {
            let old = c.train.beta2;
            c.train.beta2 = if (old - 0.95).abs() < 1e-9 {
                0.99
            } else {
                0.95
            };
            (
                format!("Adam beta2 {old} -> {}", c.train.beta2),
                "beta2 sets how fast the second-moment estimate adapts in a short run.".into(),
            )
        }
        12 | 13 if c.train.optimizer == OptimizerKind::Adamw => {
            c.train.optimizer = OptimizerKind::Muon;
            (
                "hidden matrices on Muon (AdamW keeps embeddings, head, norms)".into(),
                "Orthogonalised updates train the attention and MLP matrices faster per step."
                    .into(),
            )
        }
        12 => {
            c.train.optimizer = OptimizerKind::Adamw;
            (
                "hidden matrices back on AdamW".into(),
                "Muon's large orthogonal steps may not suit this model size.".into(),
            )
        }
        13 => {
            let old = c.train.muon_lr;
            c.train.muon_lr = scale(old, if up { 1.5 } else { 1.0 / 1.5 }).clamp(1e-5, 1.0);
            (
                format!("Muon learning rate {old} -> {}", c.train.muon_lr),
                "Muon's step size sets how far each orthogonal update moves the matrices.".into(),
            )
        }
        _ => {
            let old = c.train.min_lr_ratio;
            c.train.min_lr_ratio = if up {
                (old * 2.0).min(1.0)
            } else {
                scale(old, 0.5)
            };
            (
                format!("final LR ratio {old} -> {}", c.train.min_lr_ratio),
                "The final LR decides how much the run anneals at the end.".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn proposals_are_valid_new_and_explained() {
        let parent = RunConfig::baseline();
        let mut rng = SplitMix64::new(7);
        let mut tried: HashSet<String> = HashSet::new();
        tried.insert(sha256_hex(&parent.to_bytes()));
        for _ in 0..40 {
            let p = {
                let seen = &tried;
                propose(&parent, &mut rng, 0, 1 << 30, &|cid| seen.contains(cid)).unwrap()
            };
            p.config.validate().unwrap();
            assert!(!p.description.is_empty() && !p.hypothesis.is_empty());
            assert_eq!(p.cid, sha256_hex(&p.bytes));
            assert!(tried.insert(p.cid), "a config was proposed twice");
        }
    }

    #[test]
    fn discards_widen_the_search() {
        assert_eq!(breadth(0), 1);
        assert_eq!(breadth(5), 2);
        assert_eq!(breadth(50), 3);
        let parent = RunConfig::baseline();
        let mut rng = SplitMix64::new(1);
        let p = propose(&parent, &mut rng, 12, 1 << 30, &|_| false).unwrap();
        assert!(
            p.description.matches("; ").count() >= 1,
            "{}",
            p.description
        );
    }

    #[test]
    fn memory_limit_is_respected() {
        let parent = RunConfig::baseline();
        let mut rng = SplitMix64::new(3);
        let limit = parent.memory_estimate();
        for _ in 0..20 {
            if let Some(p) = propose(&parent, &mut rng, 0, limit, &|_| false) {
                assert!(p.config.memory_estimate() <= limit);
            }
        }
    }
}
