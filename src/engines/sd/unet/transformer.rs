//! diffusers' Transformer2DModel (the "spatial transformer") with BasicTransformerBlocks:
//! self-attention, cross-attention on the text embeddings, and a GEGLU feed-forward.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::blocks::BlockInputs;
use super::cross_attention::CrossAttention;
use super::resnet::conv;
use crate::engines::nn::kernels::{self, Conv2d, GroupNorm, Kernels};
use crate::engines::nn::mlp::Geglu;
use crate::engines::nn::norm;

#[derive(Debug)]
struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: CrossAttention,
    norm2: LayerNorm,
    attn2: CrossAttention,
    norm3: LayerNorm,
    ff: Geglu,
}

impl BasicTransformerBlock {
    fn new(vb: VarBuilder, dim: usize, c: &TransformerConfig) -> Result<Self> {
        let dim_head = dim / c.heads;
        Ok(Self {
            norm1: norm::layer_norm(dim, norm::TORCH_NORM_EPS, vb.pp("norm1"))?,
            attn1: CrossAttention::new(
                vb.pp("attn1"),
                dim,
                None,
                c.heads,
                dim_head,
                c.upcast,
                c.kernels,
            )?,
            norm2: norm::layer_norm(dim, norm::TORCH_NORM_EPS, vb.pp("norm2"))?,
            attn2: CrossAttention::new(
                vb.pp("attn2"),
                dim,
                Some(c.cross_attention_dim),
                c.heads,
                dim_head,
                c.upcast,
                c.kernels,
            )?,
            norm3: norm::layer_norm(dim, norm::TORCH_NORM_EPS, vb.pp("norm3"))?,
            ff: Geglu::load(vb.pp("ff"), dim, dim * 4, c.kernels)?,
        })
    }

    fn forward(&self, xs: &Tensor, inp: &BlockInputs) -> Result<Tensor> {
        let (mode, p, cancel) = (inp.mode, inp.probe, inp.cancel);
        let xs = p.time("attn_self", || {
            self.attn1
                .forward(&self.norm1.forward(xs)?, None, mode, cancel)?
                + xs
        })?;
        let xs = p.time("attn_cross", || {
            self.attn2
                .forward(&self.norm2.forward(&xs)?, Some(inp.context), mode, cancel)?
                + &xs
        })?;
        p.time("feed_forward", || {
            self.ff.forward(&self.norm3.forward(&xs)?)? + &xs
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TransformerConfig {
    pub heads: usize,
    pub depth: usize,
    pub cross_attention_dim: usize,
    pub groups: usize,
    pub use_linear_projection: bool,
    pub upcast: bool,
    /// Ours or candle's layers (`Kernels`).
    pub kernels: Kernels,
}

#[derive(Debug)]
enum Projection {
    Linear(Linear),
    Conv(Conv2d),
}

#[derive(Debug)]
pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
    kernels: Kernels,
}

impl Transformer2D {
    pub fn new(vb: VarBuilder, channels: usize, c: &TransformerConfig) -> Result<Self> {
        let proj = |name: &str| -> Result<Projection> {
            Ok(if c.use_linear_projection {
                Projection::Linear(candle_nn::linear(channels, channels, vb.pp(name))?)
            } else {
                Projection::Conv(conv(vb.pp(name), channels, channels, 1, 1, 0, c.kernels)?)
            })
        };
        let blocks = (0..c.depth)
            .map(|i| {
                BasicTransformerBlock::new(vb.pp(format!("transformer_blocks.{i}")), channels, c)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: norm::group_norm(c.groups, channels, 1e-6, vb.pp("norm"), c.kernels)?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
            kernels: c.kernels,
        })
    }

    pub fn forward(&self, xs: &Tensor, inp: &BlockInputs) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let p = inp.probe;
        // (b, c, h, w) -> (b, h*w, c), projecting before or after as the weights dictate.
        let fast = self.kernels.fast();
        let to_tokens = |t: &Tensor| -> Result<Tensor> {
            kernels::transpose_last2(&t.reshape((b, c, h * w))?, fast)
        };
        let mut tokens = p.time("transformer_in", || {
            let normed = self.norm.forward(xs)?;
            match &self.proj_in {
                Projection::Linear(l) => kernels::linear(l, &to_tokens(&normed)?, fast),
                Projection::Conv(cv) => to_tokens(&cv.forward(&normed)?),
            }
        })?;
        for block in &self.blocks {
            inp.cancel.check()?;
            tokens = block.forward(&tokens, inp)?;
        }
        let to_image = |t: &Tensor| -> Result<Tensor> {
            kernels::transpose_last2(t, fast)?.reshape((b, c, h, w))
        };
        p.time("transformer_out", || {
            let out = match &self.proj_out {
                Projection::Linear(l) => to_image(&kernels::linear(l, &tokens, fast)?)?,
                Projection::Conv(cv) => cv.forward(&to_image(&tokens)?)?,
            };
            out + xs
        })
    }
}
