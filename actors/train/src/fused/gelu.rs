//! GELU, `x · Φ(x)` with the exact (erf) Φ, as one op on the CPU backend. burn's CPU GELU calls
//! a scalar `erff` per element forward and again backward (a tenth of a training step on the
//! 2-core machine); here erf is a rational approximation the compiler vectorises (the one Eigen
//! and XLA use for f32: within 5e-7 of erf, a few units in the last place), and the backward
//! pass reuses it.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::simd::multiversion;
use super::{contiguous, exp, from, fused, into, slice, tensor};

/// GELU of every element.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<Flex>>() {
        let forward = |[x]: [&FlexTensor; 1], keep: bool| {
            let x = contiguous(x);
            (forward(&x), keep.then_some(x))
        };
        return from(fused([&into(x)], forward, |x, dy| [backward(x, dy)]));
    }
    if backend == TypeId::of::<Flex>() {
        return from(forward(&into(x)));
    }
    activation::gelu(x)
}

/// erf(x) for f32: x·P(x²)/Q(x²) on x clamped to [−4, 4] (erf is ±1 in f32 beyond).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

multiversion! {
fn forward(x: &FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let dims = x.layout().shape().to_vec();
    let xs = slice(&x);
    let y = xs
        .iter()
        .map(|&x| x * 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)))
        .collect();
    tensor(y, &dims)
}
}

multiversion! {
/// `dy · (Φ(x) + x·φ(x))`.
fn backward(x: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    let dy = contiguous(dy);
    let dims = x.layout().shape().to_vec();
    let (xs, dys) = (slice(x), slice(&dy));
    let dx = xs
        .iter()
        .zip(dys)
        .map(|(&x, &dy)| {
            let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            let pdf = exp(-0.5 * x * x) * FRAC_1_SQRT_2PI;
            dy * (cdf + x * pdf)
        })
        .collect();
    tensor(dx, &dims)
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn erf_is_within_5e7_of_the_exact_value() {
        let mut worst = 0.0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) - libm_erf(x)).abs());
        }
        assert!(worst < 5e-7, "max error {worst}");
        // Saturated outside [−4, 4], as erf is in f32.
        assert!((erf(9.0) - 1.0).abs() < 2e-7 && (erf(-1e30) + 1.0).abs() < 2e-7);
    }

    fn libm_erf(x: f32) -> f32 {
        libm::erf(x as f64) as f32
    }

    #[test]
    fn the_fused_gelu_matches_burns_forward_and_backward() {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<Ad, 2>::random([7, 33], Distribution::Normal(0.0, 3.0), &device)
            .require_grad();
        let w = Tensor::<Ad, 2>::random([7, 33], Distribution::Normal(0.0, 1.0), &device);
        let fused = gelu(x.clone());
        let reference = activation::gelu(x.clone());
        fused
            .to_data()
            .assert_approx_eq::<f32>(&reference.to_data(), Tolerance::absolute(1e-5));
        let g1 = (fused * w.clone()).sum().backward();
        let g2 = (reference * w).sum().backward();
        x.grad(&g1)
            .unwrap()
            .to_data()
            .assert_approx_eq::<f32>(&x.grad(&g2).unwrap().to_data(), Tolerance::absolute(1e-5));
    }
}
