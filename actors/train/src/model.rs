//! A small GPT, generic over the burn backend: token embedding, rotary positions, RMSNorm,
//! causal self-attention, GELU MLP, untied output head. No biases.

use crate::config::ModelConfig;
use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig,
};
use burn::tensor::activation::{gelu, log_softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
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
    /// RoPE tables [1, 1, context, head_dim / 2]; constants, not trained.
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
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
        let mut cos = Vec::with_capacity(c.context * half);
        let mut sin = Vec::with_capacity(c.context * half);
        for pos in 0..c.context {
            for i in 0..half {
                let freq = 1.0 / c.rope_theta.powf(2.0 * i as f64 / head_dim as f64);
                let angle = pos as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table = |v: Vec<f32>| {
            Tensor::<B, 4>::from_data(TensorData::new(v, [1, 1, c.context, half]), device)
        };
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
        let w = layer.weight.val().cast(FloatDType::BF16);
        x.cast(FloatDType::BF16)
            .matmul(w.unsqueeze())
            .cast(FloatDType::F32)
    }

    /// Logits [batch, time, vocab] for input tokens [batch, time].
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, t] = tokens.dims();
        let cos = self.cos.clone().narrow(2, 0, t);
        let sin = self.sin.clone().narrow(2, 0, t);
        let mut x = self.wte.forward(tokens);
        for block in &self.blocks {
            x = x.clone() + self.attend(block, block.norm1.forward(x), &cos, &sin);
            let h = gelu(self.dense(&block.fc, block.norm2.forward(x.clone())));
            x = x + self.dense(&block.fc2, h);
        }
        self.dense(&self.head, self.norm.forward(x))
    }

    /// Negative log-likelihood in nats of each target token: [batch * time].
    pub fn token_nll(&self, inputs: Tensor<B, 2, Int>, targets: Tensor<B, 2, Int>) -> Tensor<B, 1> {
        let [b, t] = inputs.dims();
        let logits = self.forward(inputs);
        let v = logits.dims()[2];
        let logp = log_softmax(logits.reshape([b * t, v]), 1);
        logp.gather(1, targets.reshape([b * t, 1]))
            .reshape([b * t])
            .neg()
    }

    fn attend(
        &self,
        block: &Block<B>,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let n_head = self.n_head;
        let hd = d / n_head;
        let heads = |x: Tensor<B, 3>| x.reshape([b, t, n_head, hd]).swap_dims(1, 2);
        let mut qkv = self.dense(&block.qkv, x).chunk(3, 2).into_iter();
        let (q, k, v) = (
            qkv.next().expect("3 chunks"),
            qkv.next().expect("3 chunks"),
            qkv.next().expect("3 chunks"),
        );
        let q = rope(heads(q), cos, sin);
        let k = rope(heads(k), cos, sin);
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let y = if self.bf16 {
            let half = |x: Tensor<B, 4>| x.cast(FloatDType::BF16);
            attention(half(q), half(k), half(heads(v)), None, None, options).cast(FloatDType::F32)
        } else {
            attention(q, k, heads(v), None, None, options)
        };
        self.dense(&block.proj, y.swap_dims(1, 2).reshape([b, t, d]))
    }
}

/// Rotate-half RoPE on [batch, heads, time, head_dim].
fn rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let hd = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, hd / 2);
    let x2 = x.narrow(3, hd / 2, hd / 2);
    Tensor::cat(
        vec![
            x1.clone() * cos.clone() - x2.clone() * sin.clone(),
            x2 * cos.clone() + x1 * sin.clone(),
        ],
        3,
    )
}
