//! Fused operations for the CPU backend (`flex`): causal attention, GELU, RoPE, RMSNorm and the
//! cross-entropy of the output, each one op with its own backward pass over raw `f32` rows, where
//! burn composes several ops (each with a copy or a strided walk on the CPU). Other backends use
//! burn's own ops.
//!
//! burn has no specialisation, so the CPU path is picked by the backend's type id: the model stays
//! generic and nothing else needs to know. Each kernel is compiled for AVX-512, AVX2 and the
//! baseline, picked at run time ([`simd`]).

pub mod attention;
pub mod gelu;
pub mod nll;
pub mod rms;
pub mod rope;
pub mod simd;

use std::any::Any;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{FlexTensor, Layout};

fn into<B: Backend, T: 'static, const D: usize>(x: Tensor<B, D>) -> T {
    same_type(x.into_primitive().tensor())
}

fn from<B: Backend, T: 'static, const D: usize>(x: T) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(same_type(x)))
}

/// `x` as the type it is: for a generic `T` the caller has checked to be `U`.
fn same_type<T: 'static, U: 'static>(x: T) -> U {
    let boxed: Box<dyn Any> = Box::new(x);
    *boxed.downcast::<U>().expect("the type id was checked")
}

fn contiguous(x: &FlexTensor) -> FlexTensor {
    x.to_contiguous()
}

fn slice(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor(data: Vec<f32>, dims: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(dims.to_vec())),
        DType::F32,
    )
}

/// The backward pass of a fused op with `N` inputs: their gradients from the state kept by the
/// forward pass and the output's gradient.
struct Fused<S, const N: usize> {
    grad: fn(&S, &FlexTensor) -> [FlexTensor; N],
}

impl<S, const N: usize> std::fmt::Debug for Fused<S, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fused op of {N} inputs")
    }
}

impl<S: Clone + Send + std::fmt::Debug + 'static, const N: usize> Backward<Flex, N>
    for Fused<S, N>
{
    type State = S;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let grad = (self.grad)(&ops.state, &dy);
        for (parent, grad) in ops.parents.iter().zip(grad) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// A fused op as one node of the autodiff graph. `forward(inputs, keep)` gives the output and,
/// when `keep` (an input is tracked), the state `grad` needs.
fn fused<S: Clone + Send + std::fmt::Debug + 'static, const N: usize>(
    inputs: [&FloatTensor<Autodiff<Flex>>; N],
    forward: impl FnOnce([&FlexTensor; N], bool) -> (FlexTensor, Option<S>),
    grad: fn(&S, &FlexTensor) -> [FlexTensor; N],
) -> FloatTensor<Autodiff<Flex>> {
    let nodes = inputs.map(|x| x.node.clone());
    let primitives = inputs.map(|x| &x.primitive);
    match (Fused { grad })
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, state) = forward(primitives, true);
            prep.finish(state.expect("kept for the backward pass"), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(primitives, false).0),
    }
}

/// Dot product in eight independent sums (so the compiler can keep them in SIMD lanes).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// e^x for f32 without a call into libm, so that loops over it vectorise: 2^k · P(r) with
/// x = k·ln 2 + r, |r| ≤ ln 2 / 2, P the degree-6 Taylor polynomial (within 3e-7 relative of e^x,
/// 2 units in the last place). Inputs are clamped to [−87.3, 88.3], where e^x is a normal f32.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so that k · LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 · 2^23 rounds to an integer (no SSE4.1 `roundps` on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_3e7_relative_of_the_exact_value() {
        let mut worst = 0.0f64;
        for i in -873_000..=883_000 {
            let x = i as f32 * 1e-4;
            let exact = (x as f64).exp();
            worst = worst.max(((super::exp(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-200.0) < 1e-37 && super::exp(200.0) > 1e38);
    }
}
