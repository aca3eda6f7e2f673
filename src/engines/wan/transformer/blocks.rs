//! Wan's transformer block (diffusers' WanTransformerBlock): modulated self-attention with
//! RMS-normed queries and keys (across all heads) and 3D rotary positions, cross-attention to the
//! text, modulated tanh-GELU feed-forward. The norms and the modulation run in f32 as diffusers
//! keeps them (`_keep_in_fp32_modules`); the rest in the model's dtype.

use candle_core::{D, DType, Module, Result, Tensor};

use super::embed::modulation;
use crate::engines::flux::transformer::linear::Linear;
use crate::engines::nn::attention::{AttentionMode, attention_heads};
use crate::engines::nn::rotary::RopeTables;

/// How attention runs: query chunking and our kernels.
#[derive(Debug, Clone, Copy)]
pub struct AttentionRun {
    pub mode: AttentionMode,
    pub fast: bool,
}

/// LayerNorm over the last dim in f32 (torch's: mean removed before the variance), with an
/// optional affine (weight, bias); f32 out.
pub fn layer_norm(xs: &Tensor, eps: f64, affine: Option<&(Tensor, Tensor)>) -> Result<Tensor> {
    let x = xs.to_dtype(DType::F32)?;
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    match affine {
        Some((w, b)) => normed.broadcast_mul(w)?.broadcast_add(b),
        None => Ok(normed),
    }
}

/// RMSNorm over the last dim (all heads together), statistics in f32, out in `xs`' dtype.
fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let x = xs.to_dtype(DType::F32)?;
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?
        .to_dtype(xs.dtype())
}

/// diffusers' WanAttention (no image keys/values).
#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
    /// RMSNorm weights over heads * d (f32), when `qk_norm`.
    pub norm_q: Option<Tensor>,
    pub norm_k: Option<Tensor>,
}

impl Attention {
    /// `x` (b, n, dim) attending to `context` (b, m, dim) (itself for self-attention), rotary
    /// positions on queries and keys when `rope` is given.
    fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        rope: Option<&RopeTables>,
        heads: usize,
        eps: f64,
        run: AttentionRun,
    ) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let m = context.dim(1)?;
        let norm = |t: Tensor, w: &Option<Tensor>| match w {
            Some(w) => rms_norm(&t, w, eps),
            None => Ok(t),
        };
        let q = norm(self.to_q.forward(x)?, &self.norm_q)?;
        let k = norm(self.to_k.forward(context)?, &self.norm_k)?;
        let v = self.to_v.forward(context)?;
        let inner = q.dim(2)?;
        let d = inner / heads;
        let split = |t: &Tensor, len: usize| -> Result<Tensor> {
            t.reshape((b, len, heads, d))?.transpose(1, 2)?.contiguous()
        };
        let (mut q, mut k, v) = (split(&q, n)?, split(&k, m)?, split(&v, m)?);
        if let Some(rope) = rope {
            q = rope.apply(&q)?;
            k = rope.apply(&k)?;
        }
        let rows = |t: &Tensor, len: usize| t.reshape((b * heads, len, d));
        let q = (rows(&q, n)? * (d as f64).powf(-0.5))?;
        let out = attention_heads(&q, &rows(&k, m)?, &rows(&v, m)?, true, run.mode, run.fast)?;
        let out = out
            .reshape((b, heads, n, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, inner))?;
        self.to_out.forward(&out)
    }
}

/// One block's weights.
#[derive(Debug, Clone)]
pub struct Block {
    pub attn1: Attention,
    pub attn2: Attention,
    /// norm2's (weight, bias) in f32 when `cross_attn_norm`.
    pub norm2: Option<(Tensor, Tensor)>,
    /// `ffn.net.0.proj` (tanh-GELU after it) and `ffn.net.2`.
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    /// (1, 6, dim) f32: shift, scale, gate of the attention, then of the feed-forward.
    pub scale_shift_table: Tensor,
}

/// A block's shared inputs.
pub struct BlockInputs<'a> {
    /// (b, m, dim) the embedded text.
    pub text: &'a Tensor,
    /// (b, t, 6, dim) f32: the condition embedder's `timestep_proj`.
    pub proj: &'a Tensor,
    pub rope: &'a RopeTables,
    pub heads: usize,
    pub eps: f64,
    pub run: AttentionRun,
}

impl Block {
    /// `x` (b, n, dim) in the model's dtype.
    pub fn forward(&self, x: &Tensor, c: &BlockInputs) -> Result<Tensor> {
        let dtype = x.dtype();
        let m = modulation(&self.scale_shift_table, c.proj)?;
        let modulate = |x: &Tensor, shift: &Tensor, scale: &Tensor| -> Result<Tensor> {
            layer_norm(x, c.eps, None)?
                .broadcast_mul(&(scale + 1.0)?)?
                .broadcast_add(shift)?
                .to_dtype(dtype)
        };
        let gated = |x: &Tensor, y: &Tensor, gate: &Tensor| -> Result<Tensor> {
            x.to_dtype(DType::F32)?
                .add(&y.to_dtype(DType::F32)?.broadcast_mul(gate)?)?
                .to_dtype(dtype)
        };
        let normed = modulate(x, &m[0], &m[1])?;
        let attn = self
            .attn1
            .forward(&normed, &normed, Some(c.rope), c.heads, c.eps, c.run)?;
        let x = gated(x, &attn, &m[2])?;
        let normed = match &self.norm2 {
            Some(affine) => layer_norm(&x, c.eps, Some(affine))?.to_dtype(dtype)?,
            None => x.clone(),
        };
        let attn = self
            .attn2
            .forward(&normed, c.text, None, c.heads, c.eps, c.run)?;
        let x = (x + attn)?;
        let normed = modulate(&x, &m[3], &m[4])?;
        let ff = self
            .ffn_out
            .forward(&self.ffn_in.forward(&normed)?.gelu()?)?;
        gated(&x, &ff, &m[5])
    }
}
