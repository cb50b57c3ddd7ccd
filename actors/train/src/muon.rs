//! Muon for the hidden weight matrices (`train.optimizer = "muon"`): SGD with Nesterov momentum
//! whose update is orthogonalised by five Newton–Schulz iterations, scaled by
//! √max(1, rows / cols). Embeddings, the output head and the norms stay with AdamW, as in the
//! reference's train.py (Muon + AdamW).

use burn::module::ParamId;
use burn::optim::{GradientsParams, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

/// Momentum of one matrix.
#[derive(Record, Clone)]
pub struct MuonState<B: Backend, const D: usize> {
    momentum: Tensor<B, D>,
}

#[derive(Clone, Debug)]
pub struct Muon {
    /// Momentum coefficient.
    pub beta: f64,
}

/// The quintic Newton–Schulz coefficients of Keller Jordan's Muon.
const NS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);
const NS_STEPS: usize = 5;

/// An approximately orthogonal matrix with the singular vectors of `g` [rows, cols].
pub fn orthogonalise<B: Backend>(g: Tensor<B, 2>) -> Tensor<B, 2> {
    let [rows, cols] = g.dims();
    let tall = rows > cols;
    let mut x = if tall { g.transpose() } else { g };
    let norm = x.clone().powi_scalar(2).sum().sqrt().add_scalar(1e-7);
    x = x / norm.unsqueeze();
    let (a, b, c) = NS;
    for _ in 0..NS_STEPS {
        let gram = x.clone().matmul(x.clone().transpose());
        let poly = gram.clone() * b + gram.clone().matmul(gram) * c;
        x = x.clone() * a + poly.matmul(x);
    }
    if tall {
        x.transpose()
    } else {
        x
    }
}

impl<B: Backend> SimpleOptimizer<B> for Muon {
    type State<const D: usize> = MuonState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let momentum = match state {
            Some(s) => s.momentum * self.beta + grad.clone(),
            None => grad.clone(),
        };
        let nesterov = grad + momentum.clone() * self.beta;
        let shape = tensor.dims();
        let rows = shape[0];
        let cols = shape.iter().skip(1).product::<usize>().max(1);
        let update = orthogonalise(nesterov.reshape([rows, cols])).reshape(shape);
        let scale = (rows as f64 / cols as f64).max(1.0).sqrt();
        (tensor - update * (lr * scale), Some(MuonState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        MuonState {
            momentum: state.momentum.to_device(device),
        }
    }
}

/// Moves the gradients of the 2-D parameters `ids` out of `grads` into their own set.
pub fn split_matrices<B: AutodiffBackend>(
    grads: &mut GradientsParams,
    ids: &[ParamId],
) -> GradientsParams {
    let mut matrices = GradientsParams::new();
    for id in ids {
        if let Some(g) = grads.remove::<B::InnerBackend, 2>(*id) {
            matrices.register::<B::InnerBackend, 2>(*id, g);
        }
    }
    matrices
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type F = burn::backend::Flex;

    #[test]
    fn newton_schulz_makes_the_singular_values_near_one() {
        let device = Default::default();
        for (rows, cols) in [(16, 48), (48, 16), (32, 32)] {
            let g = Tensor::<F, 2>::random([rows, cols], Distribution::Normal(0.0, 1.0), &device);
            let x = orthogonalise(g);
            assert_eq!(x.dims(), [rows, cols]);
            // X Xᵀ (the smaller side) is close to the identity: Muon's iteration leaves the
            // singular values in roughly 0.7..1.2
            let small = rows.min(cols);
            let gram = if rows <= cols {
                x.clone().matmul(x.transpose())
            } else {
                x.clone().transpose().matmul(x)
            };
            let diag: Vec<f32> = gram
                .clone()
                .mul(Tensor::<F, 2>::eye(small, &device))
                .sum_dim(1)
                .into_data()
                .to_vec()
                .unwrap();
            for d in &diag {
                assert!((0.4..1.5).contains(d), "{rows}x{cols}: diagonal {d}");
            }
            let off: f32 = (gram - Tensor::<F, 2>::eye(small, &device).mul_scalar(1.0))
                .mul(Tensor::<F, 2>::ones([small, small], &device) - Tensor::eye(small, &device))
                .abs()
                .max()
                .into_scalar();
            assert!(off < 0.3, "{rows}x{cols}: off-diagonal {off}");
        }
    }
}
