//! diffusers' `Attention` as the UNet's transformer blocks use it: the projections on this
//! crate's kernels (`kernels::linear`) around the shared packed attention
//! (`nn::attention::attention_watched`), checking the cancel token between query chunks.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::engines::nn::attention::{AttentionMode, attention_watched};
use crate::engines::nn::kernels::{Kernels, linear};
use crate::engines::progress::CancelToken;

/// diffusers' `Attention` as the UNet uses it: to_q/to_k/to_v (no bias) and to_out.0.
#[derive(Debug)]
pub struct CrossAttention {
    to_q: candle_nn::Linear,
    to_k: candle_nn::Linear,
    to_v: candle_nn::Linear,
    to_out: candle_nn::Linear,
    heads: usize,
    upcast: bool,
    kernels: Kernels,
}

impl CrossAttention {
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
        upcast: bool,
        kernels: Kernels,
    ) -> Result<Self> {
        let inner = heads * dim_head;
        let context_dim = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: candle_nn::linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_k: candle_nn::linear_no_bias(context_dim, inner, vb.pp("to_k"))?,
            to_v: candle_nn::linear_no_bias(context_dim, inner, vb.pp("to_v"))?,
            to_out: candle_nn::linear(inner, query_dim, vb.pp("to_out.0"))?,
            heads,
            upcast,
            kernels,
        })
    }

    /// `xs` (b, n, query_dim); `context` (b, m, context_dim) or None for self-attention.
    pub fn forward(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        mode: AttentionMode,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let context = context.unwrap_or(xs);
        let fast = self.kernels.fast();
        let q = linear(&self.to_q, xs, fast)?;
        let k = linear(&self.to_k, context, fast)?;
        let v = linear(&self.to_v, context, fast)?;
        let (heads, upcast) = (self.heads, self.upcast);
        let out = attention_watched(&q, &k, &v, heads, upcast, mode, fast, cancel)?;
        linear(&self.to_out, &out, fast)
    }
}
