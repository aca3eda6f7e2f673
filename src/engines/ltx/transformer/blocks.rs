//! LTX-Video's transformer block (diffusers' `LTXVideoTransformerBlock`): RMS-normed,
//! adaLN-modulated self-attention with queries and keys RMS-normed across all heads and rotated
//! by the 3D RoPE, cross-attention to the projected T5 states under their padding mask
//! (unmodulated, on the raw hidden states), modulated tanh-GELU feed-forward, gated residuals.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear_b as linear};

use crate::engines::nn::attention::{AttentionMode, Numerics, attend, attention_heads};
use crate::engines::nn::rotary::RopeTables;

/// How attention runs: query chunking and our kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionRun {
    pub mode: AttentionMode,
    pub fast: bool,
}

/// RMSNorm over the last dim, statistics in f32, an optional weight, out in `xs`' dtype.
pub fn rms_norm(xs: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let x = xs.to_dtype(DType::F32)?;
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let x = x.broadcast_div(&(var + eps)?.sqrt()?)?;
    let x = match weight {
        Some(w) => x.broadcast_mul(&w.to_dtype(DType::F32)?)?,
        None => x,
    };
    x.to_dtype(xs.dtype())
}

/// diffusers' `LTXAttention` (`norm_q` / `norm_k`: torch RMSNorm, eps 1e-5, over heads * d).
#[derive(Debug, Clone)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
    heads: usize,
}

const QK_EPS: f64 = 1e-5;

impl Attention {
    pub fn load(
        dim: usize,
        context: usize,
        heads: usize,
        bias: bool,
        out_bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            to_q: linear(dim, dim, bias, vb.pp("to_q"))?,
            to_k: linear(context, dim, bias, vb.pp("to_k"))?,
            to_v: linear(context, dim, bias, vb.pp("to_v"))?,
            to_out: linear(dim, dim, out_bias, vb.pp("to_out.0"))?,
            norm_q: vb.get(dim, "norm_q.weight")?,
            norm_k: vb.get(dim, "norm_k.weight")?,
            heads,
        })
    }

    /// `x` (b, n, dim) attending to `context` (b, m, c); `rope` on queries and keys (self-
    /// attention); `mask` an additive (b, 1, 1, m) bias.
    pub fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        rope: Option<&RopeTables>,
        mask: Option<&Tensor>,
        run: AttentionRun,
    ) -> Result<Tensor> {
        let (b, n, dim) = x.dims3()?;
        let d = dim / self.heads;
        let mut q = rms_norm(&self.to_q.forward(x)?, Some(&self.norm_q), QK_EPS)?;
        let mut k = rms_norm(&self.to_k.forward(context)?, Some(&self.norm_k), QK_EPS)?;
        let v = self.to_v.forward(context)?;
        if let Some(rope) = rope {
            q = rope.apply(&q.unsqueeze(1)?)?.squeeze(1)?;
            k = rope.apply(&k.unsqueeze(1)?)?.squeeze(1)?;
        }
        let m = k.dim(1)?;
        let split = |t: Tensor, len: usize| -> Result<Tensor> {
            t.reshape((b, len, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(q, n)?, split(k, m)?, split(v, m)?);
        let out = match mask {
            Some(mask) => attend(&q, &k, &v, Some(mask), &Numerics::default())?,
            None => {
                let rows = b * self.heads;
                let q = (q.reshape((rows, n, d))? * (d as f64).powf(-0.5))?;
                let out = attention_heads(
                    &q,
                    &k.reshape((rows, m, d))?,
                    &v.reshape((rows, m, d))?,
                    true,
                    run.mode,
                    run.fast,
                )?;
                out.reshape((b, self.heads, n, d))?
            }
        };
        let out = out.transpose(1, 2)?.contiguous()?.reshape((b, n, dim))?;
        self.to_out.forward(&out)
    }
}

/// One block's weights.
#[derive(Debug, Clone)]
pub struct Block {
    norm1: Option<Tensor>,
    norm2: Option<Tensor>,
    attn1: Attention,
    attn2: Attention,
    ff_in: Linear,
    ff_out: Linear,
    /// (6, dim): shift, scale, gate of the attention, then of the feed-forward.
    table: Tensor,
}

/// A block's shared inputs.
pub struct BlockInputs<'a> {
    /// (b, m, dim) the projected text.
    pub text: &'a Tensor,
    /// (b, 1, 1, m) additive text mask.
    pub mask: Option<&'a Tensor>,
    /// (b, n_t, 6 dim): the adaLN-single output, one row per timestep (1 or per token).
    pub temb: &'a Tensor,
    pub rope: &'a RopeTables,
    pub eps: f64,
    pub run: AttentionRun,
}

impl Block {
    pub fn load(cfg: &super::LtxTransformerConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        let heads = cfg.num_attention_heads;
        let (bias, out_bias) = (cfg.attention_bias, cfg.attention_out_bias);
        let norm = |name: &str| -> Result<Option<Tensor>> {
            if cfg.norm_elementwise_affine {
                Ok(Some(vb.get(dim, &format!("{name}.weight"))?))
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            norm1: norm("norm1")?,
            norm2: norm("norm2")?,
            attn1: Attention::load(dim, dim, heads, bias, out_bias, vb.pp("attn1"))?,
            attn2: Attention::load(
                dim,
                cfg.cross_attention_dim,
                heads,
                bias,
                out_bias,
                vb.pp("attn2"),
            )?,
            ff_in: candle_nn::linear(dim, 4 * dim, vb.pp("ff.net.0.proj"))?,
            ff_out: candle_nn::linear(4 * dim, dim, vb.pp("ff.net.2"))?,
            table: vb.get((6, dim), "scale_shift_table")?,
        })
    }

    /// `x` (b, n, dim).
    pub fn forward(&self, x: &Tensor, c: &BlockInputs) -> Result<Tensor> {
        let (b, nt, six_dim) = c.temb.dims3()?;
        let dim = six_dim / 6;
        let ada = c.temb.reshape((b, nt, 6, dim))?.broadcast_add(
            &self
                .table
                .to_dtype(c.temb.dtype())?
                .reshape((1, 1, 6, dim))?,
        )?;
        let m = |i: usize| ada.narrow(2, i, 1)?.squeeze(2);
        let (shift_msa, scale_msa, gate_msa) = (m(0)?, m(1)?, m(2)?);
        let (shift_mlp, scale_mlp, gate_mlp) = (m(3)?, m(4)?, m(5)?);
        let normed = rms_norm(x, self.norm1.as_ref(), c.eps)?
            .broadcast_mul(&(scale_msa + 1.0)?)?
            .broadcast_add(&shift_msa)?;
        let attn = self
            .attn1
            .forward(&normed, &normed, Some(c.rope), None, c.run)?;
        let x = (x + attn.broadcast_mul(&gate_msa)?)?;
        let attn = self.attn2.forward(&x, c.text, None, c.mask, c.run)?;
        let x = (x + attn)?;
        let normed = rms_norm(&x, self.norm2.as_ref(), c.eps)?
            .broadcast_mul(&(scale_mlp + 1.0)?)?
            .broadcast_add(&shift_mlp)?;
        let ff = self.ff_out.forward(&self.ff_in.forward(&normed)?.gelu()?)?;
        x + ff.broadcast_mul(&gate_mlp)?
    }
}
