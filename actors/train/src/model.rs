//! A small GPT, generic over the burn backend: token embedding, rotary positions, RMSNorm,
//! causal self-attention, GELU MLP, untied output head. No biases.

use crate::config::ModelConfig;
use crate::fused::gelu::gelu;
use crate::fused::rms::rms_norm;
use crate::fused::rope::rope;
use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    norm1: RmsNorm<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    norm2: RmsNorm<B>,
    fc: Linear<B>,
    fc2: Linear<B>,
}

#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    wte: Embedding<B>,
    blocks: Vec<Block<B>>,
    norm: RmsNorm<B>,
    head: Linear<B>,
    /// RoPE tables [1, context × d_model] (position-major): per head, cos of each frequency
    /// twice (both halves), and sin with the sign of rotate-half (−sin on the first half);
    /// constants, not trained. Flat, so multiplying a [batch, time × d_model] tensor is a
    /// one-row broadcast, the CPU backend's fast path.
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    n_head: usize,
    /// Matrix products in bf16 (see `Precision::Bf16`).
    bf16: bool,
}

fn linear<B: Backend>(i: usize, o: usize, std: f64, device: &B::Device) -> Linear<B> {
    LinearConfig::new(i, o)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

impl<B: Backend> Gpt<B> {
    /// The model with f32 matrix products; see `with_bf16`.
    pub fn new(c: &ModelConfig, device: &B::Device) -> Gpt<B> {
        let d = c.d_model;
        let hidden = d * c.mlp_ratio;
        // GPT-2 style: 0.02 everywhere, residual projections scaled by depth.
        let std = 0.02;
        let resid = 0.02 / (2.0 * c.n_layer as f64).sqrt();
        let blocks = (0..c.n_layer)
            .map(|_| Block {
                norm1: RmsNormConfig::new(d).init(device),
                qkv: linear(d, 3 * d, std, device),
                proj: linear(d, d, resid, device),
                norm2: RmsNormConfig::new(d).init(device),
                fc: linear(d, hidden, std, device),
                fc2: linear(hidden, d, resid, device),
            })
            .collect();
        let head_dim = d / c.n_head;
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(c.context * d);
        let mut sin = Vec::with_capacity(c.context * d);
        for pos in 0..c.context {
            for _head in 0..c.n_head {
                for j in 0..head_dim {
                    let i = j % half;
                    let freq = 1.0 / c.rope_theta.powf(2.0 * i as f64 / head_dim as f64);
                    let angle = pos as f64 * freq;
                    cos.push(angle.cos() as f32);
                    let sign = if j < half { -1.0 } else { 1.0 };
                    sin.push((sign * angle.sin()) as f32);
                }
            }
        }
        let table =
            |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [1, c.context * d]), device);
        Gpt {
            wte: EmbeddingConfig::new(c.vocab_size, d)
                .with_initializer(Initializer::Normal { mean: 0.0, std })
                .init(device),
            blocks,
            norm: RmsNormConfig::new(d).init(device),
            head: linear(d, c.vocab_size, std, device),
            cos: table(cos),
            sin: table(sin),
            n_head: c.n_head,
            bf16: false,
        }
    }

    /// The hidden weight matrices (attention and MLP of every block): what Muon updates.
    pub fn matrix_ids(&self) -> Vec<burn::module::ParamId> {
        self.blocks
            .iter()
            .flat_map(|b| [&b.qkv, &b.proj, &b.fc, &b.fc2])
            .map(|layer| layer.weight.id)
            .collect()
    }

    /// Compute the matrix products in bf16 (mixed precision: the parameters stay f32).
    pub fn with_bf16(mut self, bf16: bool) -> Gpt<B> {
        self.bf16 = bf16;
        self
    }

    /// `x · W` of a bias-free linear layer, in bf16 when the model asks for it.
    fn dense(&self, layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if !self.bf16 {
            return layer.forward(x);
        }
        self.times(x, layer.weight.val())
    }

    /// `x · W[:, first..first + n]`: one slice of a layer's outputs, computed contiguous (the
    /// matmul reads the weight's columns in place; chunking the whole output would leave
    /// strided views that every later elementwise op walks element by element on the CPU).
    fn dense_cols(
        &self,
        layer: &Linear<B>,
        x: Tensor<B, 3>,
        first: usize,
        n: usize,
    ) -> Tensor<B, 3> {
        self.times(x, layer.weight.val().narrow(1, first, n))
    }

    fn times(&self, x: Tensor<B, 3>, w: Tensor<B, 2>) -> Tensor<B, 3> {
        if !self.bf16 {
            return x.matmul(w.unsqueeze());
        }
        x.cast(FloatDType::BF16)
            .matmul(w.cast(FloatDType::BF16).unsqueeze())
            .cast(FloatDType::F32)
    }

    /// Logits [batch, time, vocab] for input tokens [batch, time].
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let mut x = self.wte.forward(tokens);
        let [_, t, d] = x.dims();
        let cos = self.cos.clone().narrow(1, 0, t * d);
        let sin = self.sin.clone().narrow(1, 0, t * d);
        for block in &self.blocks {
            x = x.clone() + self.attend(block, rms_norm(&block.norm1, x), &cos, &sin);
            let h = gelu(self.dense(&block.fc, rms_norm(&block.norm2, x.clone())));
            x = x + self.dense(&block.fc2, h);
        }
        self.dense(&self.head, rms_norm(&self.norm, x))
    }

    /// Negative log-likelihood in nats of each target token: [batch * time].
    pub fn token_nll(&self, inputs: Tensor<B, 2, Int>, targets: Tensor<B, 2, Int>) -> Tensor<B, 1> {
        let [b, t] = inputs.dims();
        let logits = self.forward(inputs);
        let v = logits.dims()[2];
        crate::fused::nll::nll(logits.reshape([b * t, v]), targets.reshape([b * t]))
    }

    fn attend(
        &self,
        block: &Block<B>,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 2>,
        sin: &Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        let d = x.dims()[2];
        let n_head = self.n_head;
        let q = self.dense_cols(&block.qkv, x.clone(), 0, d);
        let k = self.dense_cols(&block.qkv, x.clone(), d, d);
        let v = self.dense_cols(&block.qkv, x, 2 * d, d);
        let q = rope(q, cos, sin, n_head);
        let k = rope(k, cos, sin, n_head);
        let y = if self.bf16 {
            let half = |x: Tensor<B, 3>| x.cast(FloatDType::BF16);
            crate::fused::attention::causal(half(q), half(k), half(v), n_head).cast(FloatDType::F32)
        } else {
            crate::fused::attention::causal(q, k, v, n_head)
        };
        self.dense(&block.proj, y)
    }
}
