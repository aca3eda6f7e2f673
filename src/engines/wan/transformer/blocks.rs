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

/// Wan 2.1 I2V's image keys and values in the cross-attention.
#[derive(Debug, Clone)]
pub struct AddedKv {
    pub add_k_proj: Linear,
    pub add_v_proj: Linear,
    /// RMSNorm weight of the image keys, over heads * d (f32).
    pub norm_added_k: Tensor,
}

/// diffusers' WanAttention.
#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
    /// RMSNorm weights over heads * d (f32), when `qk_norm`.
    pub norm_q: Option<Tensor>,
    pub norm_k: Option<Tensor>,
    /// The image keys/values (cross-attention of an I2V model).
    pub added: Option<AddedKv>,
}

/// Scaled dot-product attention per head: `q` (b, heads, n, d) over `k`, `v` (b, heads, m, d);
/// (b, n, heads * d) out.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, run: AttentionRun) -> Result<Tensor> {
    let (b, heads, n, d) = q.dims4()?;
    let m = k.dim(2)?;
    let q = (q.reshape((b * heads, n, d))? * (d as f64).powf(-0.5))?;
    let k = k.reshape((b * heads, m, d))?;
    let v = v.reshape((b * heads, m, d))?;
    let out = attention_heads(&q, &k, &v, true, run.mode, run.fast)?;
    out.reshape((b, heads, n, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, n, heads * d))
}

impl Attention {
    /// `x` (b, n, dim) attending to `context` (b, m, dim) (itself for self-attention), rotary
    /// positions on queries and keys when `rope` is given; the image tokens (b, k, dim) too
    /// when the layer has image keys/values.
    fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        image: Option<&Tensor>,
        rope: Option<&RopeTables>,
        c: &BlockInputs,
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        let inner = self.to_q.out_dim()?;
        let d = inner / c.heads;
        // (b, len, heads * d) -> (b, heads, len, d), RMS-normed across heads first when given.
        let heads = |t: Tensor, norm: Option<&Tensor>| -> Result<Tensor> {
            let t = match norm {
                Some(w) => rms_norm(&t, w, c.eps)?,
                None => t,
            };
            let len = t.dim(1)?;
            t.reshape((b, len, c.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let mut q = heads(self.to_q.forward(x)?, self.norm_q.as_ref())?;
        let mut k = heads(self.to_k.forward(context)?, self.norm_k.as_ref())?;
        let v = heads(self.to_v.forward(context)?, None)?;
        if let Some(rope) = rope {
            q = rope.apply(&q)?;
            k = rope.apply(&k)?;
        }
        let mut out = attend(&q, &k, &v, c.run)?;
        match (&self.added, image) {
            (Some(added), Some(image)) => {
                let k_img = heads(added.add_k_proj.forward(image)?, Some(&added.norm_added_k))?;
                let v_img = heads(added.add_v_proj.forward(image)?, None)?;
                out = (out + attend(&q, &k_img, &v_img, c.run)?)?;
            }
            (Some(_), None) => candle_core::bail!(
                "this Wan transformer attends to image features (Wan 2.1 image-to-video) but \
                 none were given"
            ),
            (None, _) => {}
        }
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
    /// (b, k, dim) the embedded image features (Wan 2.1 I2V).
    pub image: Option<&'a Tensor>,
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
            .forward(&normed, &normed, None, Some(c.rope), c)?;
        let x = gated(x, &attn, &m[2])?;
        let normed = match &self.norm2 {
            Some(affine) => layer_norm(&x, c.eps, Some(affine))?.to_dtype(dtype)?,
            None => x.clone(),
        };
        let attn = self.attn2.forward(&normed, c.text, c.image, None, c)?;
        let x = (x + attn)?;
        let normed = modulate(&x, &m[3], &m[4])?;
        let ff = self
            .ffn_out
            .forward(&self.ffn_in.forward(&normed)?.gelu()?)?;
        gated(&x, &ff, &m[5])
    }
}
