//! Fused operations for the CPU backend (`flex`): causal attention, GELU, RoPE and the
//! cross-entropy of the output, each one op with its
//! own backward pass over raw `f32` rows, where burn composes several ops (each with a copy or a
//! strided walk on the CPU). Other backends use burn's own ops.
//!
//! burn has no specialisation, so the CPU path is picked by the backend's type id: the model stays
//! generic and nothing else needs to know. (Compiling the kernels a second time for AVX2, picked
//! at run time, was tried: no measurable gain at these sizes.)

pub mod attention;
pub mod gelu;
pub mod nll;
pub mod rope;

use std::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
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
