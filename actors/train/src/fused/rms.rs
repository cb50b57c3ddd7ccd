//! RMSNorm, `x / √(mean(x²) + ε) · γ` over the last dimension, as one op on the CPU backend.
//! burn's `RmsNorm` is six ops forward (square, mean, add, sqrt, divide, scale) and a dozen
//! backward, each a pass over the activations with a broadcast copy; the model runs five norms per
//! step. Backward: with g = dy·γ and r = 1/√(mean(x²) + ε), dx = r·g − x·r³·mean(g·x) and
//! dγ = Σ_rows dy·x·r.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::nn::RmsNorm;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::simd::multiversion;
use super::{contiguous, from, fused, into, slice, tensor};

/// `norm` applied to `x` [.., .., d].
pub fn rms_norm<B: Backend>(norm: &RmsNorm<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let backend = TypeId::of::<B>();
    let eps = norm.epsilon as f32;
    if backend == TypeId::of::<Autodiff<Flex>>() {
        return from(tracked(into(x), into(norm.gamma.val()), eps));
    }
    if backend == TypeId::of::<Flex>() {
        let gamma: FlexTensor = into(norm.gamma.val());
        return from(forward(&contiguous(&into(x)), &contiguous(&gamma), eps).0);
    }
    norm.forward(x)
}

multiversion! {
/// The output and 1/rms of each row; `x` and `gamma` contiguous.
fn forward(x: &FlexTensor, gamma: &FlexTensor, eps: f32) -> (FlexTensor, Vec<f32>) {
    let dims = x.layout().shape().to_vec();
    let (xs, gamma) = (slice(x), slice(gamma));
    let d = gamma.len();
    let mut y = vec![0.0f32; xs.len()];
    let mut inv = Vec::with_capacity(xs.len() / d);
    for (y, x) in y.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
        let r = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
        for ((y, x), g) in y.iter_mut().zip(x).zip(gamma) {
            *y = x * r * g;
        }
        inv.push(r);
    }
    (tensor(y, &dims), inv)
}
}

multiversion! {
/// The gradients of x and γ.
fn backward(x: &FlexTensor, gamma: &FlexTensor, inv: &[f32], dy: &FlexTensor) -> [FlexTensor; 2] {
    let dy = contiguous(dy);
    let dims = x.layout().shape().to_vec();
    let (xs, gamma, dys) = (slice(x), slice(gamma), slice(&dy));
    let d = gamma.len();
    let mut dx = vec![0.0f32; xs.len()];
    let mut dgamma = vec![0.0f32; d];
    let rows = dx
        .chunks_exact_mut(d)
        .zip(xs.chunks_exact(d))
        .zip(dys.chunks_exact(d));
    for (((dx, x), dy), &r) in rows.zip(inv) {
        let gx: f32 = dy
            .iter()
            .zip(gamma)
            .zip(x)
            .map(|((dy, g), x)| dy * g * x)
            .sum();
        let k = r * r * r * gx / d as f32;
        for (((dx, &x), &dy), &g) in dx.iter_mut().zip(x).zip(dy).zip(gamma) {
            *dx = r * dy * g - x * k;
        }
        for ((dg, &x), &dy) in dgamma.iter_mut().zip(x).zip(dy) {
            *dg += dy * x * r;
        }
    }
    [tensor(dx, &dims), tensor(dgamma, &[d])]
}
}

/// x and γ (contiguous) and 1/rms of each row, for the backward pass.
type State = (FlexTensor, FlexTensor, Vec<f32>);

fn tracked(
    x: FloatTensor<Autodiff<Flex>>,
    gamma: FloatTensor<Autodiff<Flex>>,
    eps: f32,
) -> FloatTensor<Autodiff<Flex>> {
    let forward = |[x, gamma]: [&FlexTensor; 2], keep: bool| {
        let (x, gamma) = (contiguous(x), contiguous(gamma));
        let (y, inv) = forward(&x, &gamma, eps);
        (y, keep.then_some((x, gamma, inv)))
    };
    let grad = |(x, gamma, inv): &State, dy: &FlexTensor| backward(x, gamma, inv, dy);
    fused([&x, &gamma], forward, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::RmsNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn the_fused_rms_norm_matches_burns_forward_and_backward() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let mut norm = RmsNormConfig::new(12).init::<Ad>(&device);
        // A gamma other than ones, so its gradient and its use both show.
        norm.gamma = Param::from_tensor(Tensor::random(
            [12],
            Distribution::Uniform(0.5, 1.5),
            &device,
        ));
        let x = Tensor::<Ad, 3>::random([3, 5, 12], Distribution::Normal(0.5, 2.0), &device)
            .require_grad();
        let w = Tensor::<Ad, 3>::random([3, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let fused = rms_norm(&norm, x.clone());
        let reference = norm.forward(x.clone());
        fused
            .to_data()
            .assert_approx_eq::<f32>(&reference.to_data(), Tolerance::absolute(1e-5));
        let g1 = (fused * w.clone()).sum().backward();
        let g2 = (reference * w).sum().backward();
        let close = |a: Tensor<Flex, 1>, b: Tensor<Flex, 1>| {
            a.to_data()
                .assert_approx_eq::<f32>(&b.to_data(), Tolerance::absolute(1e-4))
        };
        close(
            x.grad(&g1).unwrap().flatten(0, 2),
            x.grad(&g2).unwrap().flatten(0, 2),
        );
        let gamma = norm.gamma.val();
        close(gamma.grad(&g1).unwrap(), gamma.grad(&g2).unwrap());
    }
}
