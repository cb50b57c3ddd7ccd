//! Causal self-attention with the heads side by side: q, k, v and the output are
//! [batch, time, d_model], head `h` in columns `h·hd .. (h+1)·hd`.
//!
//! On the CPU backend (`flex`, with or without autodiff) it is one fused operation with its own
//! backward pass, written over the raw `f32` rows: no head split and merge (each a strided copy
//! forward and backward), no causal mask built per call, the softmax probabilities kept from the
//! forward pass for the backward one. burn's generic attention did all of these as separate ops;
//! they were a third of a training step on the 2-core machine of docs/benchmarks.md. Other
//! backends (CUDA) use burn's attention.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::simd::multiversion;
use super::{axpy, contiguous, dot, exp, from, fused, into, slice, tensor};

/// `softmax(q·kᵀ/√hd + causal mask) · v` per head, [batch, time, d_model] in and out.
pub fn causal<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    n_head: usize,
) -> Tensor<B, 3> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<Flex>>() {
        return from(tracked(into(q), into(k), into(v), n_head));
    }
    if backend == TypeId::of::<Flex>() {
        let (q, k, v): (FlexTensor, FlexTensor, FlexTensor) = (into(q), into(k), into(v));
        return from(forward(&q, &k, &v, n_head, false).0);
    }
    generic(q, k, v, n_head)
}

/// burn's attention: split the heads, attend, merge.
fn generic<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    n_head: usize,
) -> Tensor<B, 3> {
    let [b, t, d] = q.dims();
    let heads = |x: Tensor<B, 3>| x.reshape([b, t, n_head, d / n_head]).swap_dims(1, 2);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    attention(heads(q), heads(k), heads(v), None, None, options)
        .swap_dims(1, 2)
        .reshape([b, t, d])
}

/// The sizes of one call.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    time: usize,
    d: usize,
    head_dim: usize,
}

impl Dims {
    fn of(x: &FlexTensor, n_head: usize) -> Dims {
        let dims = x.layout().shape().dims::<3>();
        Dims {
            batch: dims[0],
            time: dims[1],
            d: dims[2],
            head_dim: dims[2] / n_head,
        }
    }

    fn heads(&self) -> usize {
        self.d / self.head_dim
    }

    /// Offset of head `h` of token `i` in sequence `b`.
    fn at(&self, b: usize, i: usize, h: usize) -> usize {
        (b * self.time + i) * self.d + h * self.head_dim
    }

    /// Offset of row `i` of the probabilities of sequence `b`, head `h` ([batch, head, t, t]).
    fn p_row(&self, b: usize, h: usize, i: usize) -> usize {
        ((b * self.heads() + h) * self.time + i) * self.time
    }
}

/// Copies head `h` of sequence `b` out of `x` as rows ([t, hd]) or as columns ([hd, t]) (either
/// may be empty: not wanted), so that the loops below run over contiguous slices.
fn gather(x: &[f32], s: &Dims, b: usize, h: usize, rows: &mut [f32], cols: &mut [f32]) {
    let (t, hd) = (s.time, s.head_dim);
    for i in 0..t {
        let src = &x[s.at(b, i, h)..][..hd];
        if !rows.is_empty() {
            rows[i * hd..][..hd].copy_from_slice(src);
        }
        if !cols.is_empty() {
            for (c, x) in src.iter().enumerate() {
                cols[c * t + i] = *x;
            }
        }
    }
}

multiversion! {
/// Forward pass: the output and, when `keep` (for the backward pass), the probabilities.
fn forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    n_head: usize,
    keep: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let s = Dims::of(q, n_head);
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (q, k, v) = (slice(&q), slice(&k), slice(&v));
    let (t, hd) = (s.time, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut y = vec![0.0f32; s.batch * t * s.d];
    let mut probs = vec![0.0f32; if keep { s.batch * n_head * t * t } else { 0 }];
    let (mut qr, mut kc, mut vr) = (vec![0.0; t * hd], vec![0.0; t * hd], vec![0.0; t * hd]);
    let mut row = vec![0.0f32; t];
    for b in 0..s.batch {
        for h in 0..n_head {
            gather(q, &s, b, h, &mut qr, &mut []);
            gather(k, &s, b, h, &mut [], &mut kc);
            gather(v, &s, b, h, &mut vr, &mut []);
            for i in 0..t {
                // Scores of token i against tokens 0..=i, a column of k at a time.
                let row = &mut row[..=i];
                row.fill(0.0);
                for (c, &qc) in qr[i * hd..][..hd].iter().enumerate() {
                    axpy(row, qc * scale, &kc[c * t..][..=i]);
                }
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                for p in row.iter_mut() {
                    *p = exp(*p - max);
                }
                let inv = 1.0 / row.iter().sum::<f32>();
                let yi = &mut y[s.at(b, i, h)..][..hd];
                for (p, vj) in row.iter_mut().zip(vr.chunks_exact(hd)) {
                    *p *= inv;
                    axpy(yi, *p, vj);
                }
                if keep {
                    probs[s.p_row(b, h, i)..][..=i].copy_from_slice(row);
                }
            }
        }
    }
    let y = tensor(y, &[s.batch, t, s.d]);
    let probs = keep.then(|| tensor(probs, &[s.batch, n_head, t, t]));
    (y, probs)
}
}

multiversion! {
/// Backward pass: the gradients of q, k and v for the output's gradient `dy`.
fn backward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    probs: &FlexTensor,
    dy: &FlexTensor,
    n_head: usize,
) -> [FlexTensor; 3] {
    let s = Dims::of(q, n_head);
    let dy = contiguous(dy);
    let (q, k, v, probs, dy) = (slice(q), slice(k), slice(v), slice(probs), slice(&dy));
    let (t, hd) = (s.time, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let n = s.batch * t * s.d;
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    let scratch = || vec![0.0f32; t * hd];
    let (mut qr, mut kc, mut vc, mut dyr) = (scratch(), scratch(), scratch(), scratch());
    // The head's dK and dV as columns ([hd, t]).
    let (mut dkc, mut dvc) = (scratch(), scratch());
    let mut ds = vec![0.0f32; t];
    for b in 0..s.batch {
        for h in 0..n_head {
            gather(q, &s, b, h, &mut qr, &mut []);
            gather(k, &s, b, h, &mut [], &mut kc);
            gather(v, &s, b, h, &mut [], &mut vc);
            gather(dy, &s, b, h, &mut dyr, &mut []);
            dkc.fill(0.0);
            dvc.fill(0.0);
            for i in 0..t {
                let p = &probs[s.p_row(b, h, i)..][..=i];
                let dyi = &dyr[i * hd..][..hd];
                // dP[i, j] = dy_i · v_j; dS = P ⊙ (dP − Σ_j P dP), times the scale.
                let ds = &mut ds[..=i];
                ds.fill(0.0);
                for (c, &g) in dyi.iter().enumerate() {
                    axpy(ds, g, &vc[c * t..][..=i]);
                }
                let weighted = dot(p, ds);
                for (d, &pj) in ds.iter_mut().zip(p) {
                    *d = pj * (*d - weighted) * scale;
                }
                let dqi = &mut dq[s.at(b, i, h)..][..hd];
                for c in 0..hd {
                    dqi[c] = dot(ds, &kc[c * t..][..=i]);
                    axpy(&mut dkc[c * t..][..=i], qr[i * hd + c], ds);
                    axpy(&mut dvc[c * t..][..=i], dyi[c], p);
                }
            }
            for j in 0..t {
                let at = s.at(b, j, h);
                for c in 0..hd {
                    dk[at + c] = dkc[c * t + j];
                    dv[at + c] = dvc[c * t + j];
                }
            }
        }
    }
    let dims = [s.batch, t, s.d];
    [tensor(dq, &dims), tensor(dk, &dims), tensor(dv, &dims)]
}
}

/// q, k, v (contiguous), the probabilities and the head count, for the backward pass.
type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, usize);

fn tracked(
    q: FloatTensor<Autodiff<Flex>>,
    k: FloatTensor<Autodiff<Flex>>,
    v: FloatTensor<Autodiff<Flex>>,
    n_head: usize,
) -> FloatTensor<Autodiff<Flex>> {
    let forward = |[q, k, v]: [&FlexTensor; 3], keep: bool| {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let (y, probs) = forward(&q, &k, &v, n_head, keep);
        (y, probs.map(|p| (q, k, v, p, n_head)))
    };
    let grad =
        |(q, k, v, probs, n_head): &State, dy: &FlexTensor| backward(q, k, v, probs, dy, *n_head);
    fused([&q, &k, &v], forward, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    type Ad = Autodiff<Flex>;

    fn inputs<B: Backend>(device: &B::Device) -> [Tensor<B, 3>; 3] {
        <Flex as Backend>::seed(&Default::default(), 7);
        let shape = [3, 9, 24];
        let data = |i| {
            Tensor::<Flex, 3>::random(
                shape,
                Distribution::Normal(0.0, 1.0 + i as f64),
                &Default::default(),
            )
            .into_data()
        };
        [0, 1, 2].map(|i| Tensor::<B, 3>::from_data(data(i), device))
    }

    #[test]
    fn the_fused_attention_matches_burns_forward_and_backward() {
        let device = Default::default();
        for n_head in [1, 3] {
            let [q, k, v] = inputs::<Ad>(&device);
            let (q, k, v) = (q.require_grad(), k.require_grad(), v.require_grad());
            let weights = inputs::<Ad>(&device)[0].clone();
            let fused = causal(q.clone(), k.clone(), v.clone(), n_head);
            let reference = generic(q.clone(), k.clone(), v.clone(), n_head);
            fused
                .to_data()
                .assert_approx_eq::<f32>(&reference.to_data(), Tolerance::absolute(1e-5));
            let g1 = (fused * weights.clone()).sum().backward();
            let g2 = (reference * weights).sum().backward();
            for x in [&q, &k, &v] {
                x.grad(&g1).unwrap().to_data().assert_approx_eq::<f32>(
                    &x.grad(&g2).unwrap().to_data(),
                    Tolerance::absolute(1e-4),
                );
            }
        }
    }

    #[test]
    fn without_autodiff_it_is_the_same_forward() {
        let [q, k, v] = inputs::<Flex>(&Default::default());
        causal(q.clone(), k.clone(), v.clone(), 3)
            .to_data()
            .assert_approx_eq::<f32>(&generic(q, k, v, 3).to_data(), Tolerance::absolute(1e-5));
    }
}
