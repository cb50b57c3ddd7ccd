//! Cross-entropy of each row of logits against its target (`−log softmax(logits)[target]`) as one
//! op on the CPU backend: one pass per row forward, `softmax − one_hot(target)` backward, where
//! burn runs log-softmax (max, subtract, exp, sum, log, subtract), a gather and their backward
//! passes as a dozen ops over the [tokens, vocab] logits.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn_flex::FlexTensor;

use super::simd::multiversion;
use super::{contiguous, exp, from, fused, into, slice, tensor};

/// Negative log-likelihood in nats of `targets` [rows] under `logits` [rows, vocab]: [rows].
/// A target outside the vocabulary scores NaN.
pub fn nll<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<Flex>>() {
        let targets = ids(targets);
        let forward = |[logits]: [&FlexTensor; 1], keep: bool| {
            let (nll, probs) = forward(logits, &targets, keep);
            (nll, probs.map(|p| (p, targets)))
        };
        return from(fused([&into(logits)], forward, |s, dy| [backward(s, dy)]));
    }
    if backend == TypeId::of::<Flex>() {
        return from(forward(&into(logits), &ids(targets), false).0);
    }
    let n = targets.dims()[0];
    log_softmax(logits, 1)
        .gather(1, targets.reshape([n, 1]))
        .reshape([n])
        .neg()
}

fn ids<B: Backend>(targets: Tensor<B, 1, Int>) -> Vec<usize> {
    targets
        .into_data()
        .iter::<i64>()
        .map(|t| usize::try_from(t).unwrap_or(usize::MAX))
        .collect()
}

multiversion! {
/// The nll of each row and, when `keep`, the softmax probabilities (for the backward pass).
fn forward(logits: &FlexTensor, targets: &[usize], keep: bool) -> (FlexTensor, Option<FlexTensor>) {
    let logits = contiguous(logits);
    let [rows, vocab] = logits.layout().shape().dims::<2>();
    let xs = slice(&logits);
    let mut nll = vec![0.0f32; rows];
    let mut probs = if keep {
        vec![0.0f32; rows * vocab]
    } else {
        Vec::new()
    };
    let mut exps = vec![0.0f32; vocab];
    for (r, (x, &target)) in xs.chunks_exact(vocab).zip(targets).enumerate() {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for (e, &v) in exps.iter_mut().zip(x) {
            *e = exp(v - max);
        }
        let sum: f32 = exps.iter().sum();
        nll[r] = max + sum.ln() - x.get(target).copied().unwrap_or(f32::NAN);
        if keep {
            let inv = 1.0 / sum;
            for (p, e) in probs[r * vocab..][..vocab].iter_mut().zip(&exps) {
                *p = e * inv;
            }
        }
    }
    let probs = keep.then(|| tensor(probs, &[rows, vocab]));
    (tensor(nll, &[rows]), probs)
}
}

multiversion! {
/// `dnll · (softmax − one_hot(target))` for each row, from the kept probabilities and targets.
fn backward(state: &(FlexTensor, Vec<usize>), dnll: &FlexTensor) -> FlexTensor {
    let (probs, targets) = state;
    let dnll = contiguous(dnll);
    let [rows, vocab] = probs.layout().shape().dims::<2>();
    let mut dlogits = slice(probs).to_vec();
    for ((row, &g), &target) in dlogits
        .chunks_exact_mut(vocab)
        .zip(slice(&dnll))
        .zip(targets)
    {
        if let Some(t) = row.get_mut(target) {
            *t -= 1.0;
        }
        for d in row.iter_mut() {
            *d *= g;
        }
    }
    tensor(dlogits, &[rows, vocab])
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    #[test]
    fn the_fused_nll_matches_burns_forward_and_backward() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let logits = Tensor::<Ad, 2>::random([6, 11], Distribution::Normal(0.0, 4.0), &device)
            .require_grad();
        let targets =
            Tensor::<Ad, 1, Int>::from_data(TensorData::from([0, 10, 3, 3, 7, 1]), &device);
        let w = Tensor::<Ad, 1>::random([6], Distribution::Normal(0.0, 1.0), &device);
        let fused = nll(logits.clone(), targets.clone());
        let n = 6;
        let reference = log_softmax(logits.clone(), 1)
            .gather(1, targets.reshape([n, 1]))
            .reshape([n])
            .neg();
        fused
            .to_data()
            .assert_approx_eq::<f32>(&reference.to_data(), Tolerance::absolute(1e-5));
        let g1 = (fused * w.clone()).sum().backward();
        let g2 = (reference * w).sum().backward();
        logits.grad(&g1).unwrap().to_data().assert_approx_eq::<f32>(
            &logits.grad(&g2).unwrap().to_data(),
            Tolerance::absolute(1e-5),
        );
    }

    #[test]
    fn a_target_outside_the_vocabulary_scores_nan() {
        let logits = Tensor::<Flex, 2>::zeros([2, 4], &Default::default());
        let targets =
            Tensor::<Flex, 1, Int>::from_data(TensorData::from([1, 9]), &Default::default());
        let out: Vec<f32> = nll(logits, targets).into_data().to_vec().unwrap();
        assert!(
            (out[0] - 4f32.ln()).abs() < 1e-6 && out[1].is_nan(),
            "{out:?}"
        );
    }
}
