//! Rotate-half RoPE on [batch, time, d_model] (heads side by side) as one op on the CPU backend:
//! `x · cos + swap(x) · sin`, `swap` exchanging the two halves of each head, with the flat
//! position-major tables of [`crate::model::Gpt`] (the sign of rotate-half is in `sin`). burn
//! composes it from a flip and reshapes whose strided copies (forward and backward) were 6 % of a
//! training step on the CPU. The backward pass is `dy · cos + swap(dy · sin)` (`swap` is its own
//! transpose); the tables are constants and get no gradient.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::simd::multiversion;
use super::{contiguous, from, fused, into, slice, tensor};

/// RoPE of `x` [batch, time, d] with tables [1, ≥ time × d] cut to `time × d`.
pub fn rope<B: Backend>(
    x: Tensor<B, 3>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
    n_head: usize,
) -> Tensor<B, 3> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<Flex>>() {
        let table = |t: &Tensor<B, 2>| -> FlexTensor {
            let t: FloatTensor<Autodiff<Flex>> = into(t.clone());
            contiguous(&t.primitive)
        };
        let tables = Tables {
            cos: table(cos),
            sin: table(sin),
            n_head,
        };
        let forward = |[x]: [&FlexTensor; 1], keep: bool| {
            (apply(x, &tables, false), keep.then(|| tables.clone()))
        };
        let grad = |tables: &Tables, dy: &FlexTensor| [apply(dy, tables, true)];
        return from(fused([&into(x)], forward, grad));
    }
    if backend == TypeId::of::<Flex>() {
        let table = |t: &Tensor<B, 2>| contiguous(&into::<B, FlexTensor, 2>(t.clone()));
        let tables = Tables {
            cos: table(cos),
            sin: table(sin),
            n_head,
        };
        return from(apply(&into(x), &tables, false));
    }
    generic(x, cos, sin, n_head)
}

/// The same with burn's ops.
fn generic<B: Backend>(
    x: Tensor<B, 3>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
    n_head: usize,
) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    let half = d / n_head / 2;
    let flat = x.reshape([b, t * d]);
    let swapped = flat
        .clone()
        .reshape([b * t * n_head, 2, half])
        .flip([1])
        .reshape([b, t * d]);
    (flat * cos.clone() + swapped * sin.clone()).reshape([b, t, d])
}

#[derive(Clone, Debug)]
struct Tables {
    cos: FlexTensor,
    sin: FlexTensor,
    n_head: usize,
}

multiversion! {
/// Forward (`x · cos + swap(x) · sin`) or, with `transposed`, backward
/// (`x · cos + swap(x · sin)`) over `x` [batch, time, d].
fn apply(x: &FlexTensor, tables: &Tables, transposed: bool) -> FlexTensor {
    let x = contiguous(x);
    let dims = x.layout().shape().to_vec();
    let (t, d) = (dims[1], dims[2]);
    let half = d / tables.n_head / 2;
    let (xs, cos, sin) = (slice(&x), slice(&tables.cos), slice(&tables.sin));
    let (cos, sin) = (&cos[..t * d], &sin[..t * d]);
    let mut out = vec![0.0f32; xs.len()];
    for (o, x) in out.chunks_exact_mut(t * d).zip(xs.chunks_exact(t * d)) {
        // One head at a time: the halves [a, b] become [a·c₁ + b·s₁, b·c₂ + a·s₂]
        // forward, [a·c₁ + b·s₂, b·c₂ + a·s₁] backward.
        for (((o, x), c), s) in o
            .chunks_exact_mut(2 * half)
            .zip(x.chunks_exact(2 * half))
            .zip(cos.chunks_exact(2 * half))
            .zip(sin.chunks_exact(2 * half))
        {
            let (oa, ob) = o.split_at_mut(half);
            let (xa, xb) = x.split_at(half);
            let (ca, cb) = c.split_at(half);
            let (sa, sb) = s.split_at(half);
            let (sa, sb) = if transposed { (sb, sa) } else { (sa, sb) };
            for r in 0..half {
                oa[r] = xa[r] * ca[r] + xb[r] * sa[r];
                ob[r] = xb[r] * cb[r] + xa[r] * sb[r];
            }
        }
    }
    tensor(out, &dims)
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn the_fused_rope_matches_burns_forward_and_backward() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let (b, t, d, n_head) = (3, 5, 24, 3);
        let x = Tensor::<Ad, 3>::random([b, t, d], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let w = Tensor::<Ad, 3>::random([b, t, d], Distribution::Normal(0.0, 1.0), &device);
        // Longer tables than the sequence, as in a model whose context exceeds the input.
        let cos = Tensor::<Ad, 2>::random([1, (t + 2) * d], Distribution::Default, &device);
        let sin = Tensor::<Ad, 2>::random([1, (t + 2) * d], Distribution::Default, &device);
        let (cos, sin) = (cos.narrow(1, 0, t * d), sin.narrow(1, 0, t * d));
        let fused = rope(x.clone(), &cos, &sin, n_head);
        let reference = generic(x.clone(), &cos, &sin, n_head);
        fused
            .to_data()
            .assert_approx_eq::<f32>(&reference.to_data(), Tolerance::absolute(1e-6));
        let g1 = (fused * w.clone()).sum().backward();
        let g2 = (reference * w).sum().backward();
        x.grad(&g1)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(&x.grad(&g2).unwrap().to_data(), Tolerance::absolute(1e-6));
    }
}
