//! Z-Image's transformer blocks (diffusers' ZImageTransformerBlock): RMSNorms before and after
//! attention and the feed-forward ("sandwich" norms), self-attention with per-head RMSNorm on
//! queries and keys and 3-axis RoPE, a SwiGLU feed-forward; the noise refiner and main layers
//! scale the norms' outputs and gate the residuals from the timestep (`adaLN_modulation`: scale
//! and tanh'd gate for each half, no shift), the context refiner does not. And the final layer.

use candle_core::{D, DType, Module, Result, Tensor};

use crate::engines::flux::transformer::linear::Linear;
use crate::engines::nn::attention::{AttentionMode, attention_heads};
use crate::engines::nn::rotary::RopeTables;

/// The q/k RMSNorms' eps: diffusers builds the Attention with a fixed 1e-5, whatever norm_eps.
pub const QK_NORM_EPS: f64 = 1e-5;
/// The final LayerNorm's eps.
const FINAL_NORM_EPS: f64 = 1e-6;

/// How attention runs: query chunking and our kernels.
#[derive(Debug, Clone, Copy)]
pub struct AttentionRun {
    pub mode: AttentionMode,
    pub fast: bool,
}

/// diffusers' RMSNorm over the last dim: normalised in f32, then (a half-precision weight)
/// rounded to the weight's dtype before the scale, as diffusers orders it.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        return candle_nn::ops::rms_norm(&x, weight, eps as f32);
    }
    let ones = Tensor::ones(weight.dims1()?, DType::F32, x.device())?;
    let normed = candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, &ones, eps as f32)?;
    normed.to_dtype(weight.dtype())?.broadcast_mul(weight)
}

/// LayerNorm without affine over the last dim, in f32 for half inputs, mean removed before the
/// variance is taken (torch's arithmetic; E[x²] - mean² loses digits on a large residual).
fn layer_norm(xs: &Tensor) -> Result<Tensor> {
    let dtype = xs.dtype();
    let x = xs.to_dtype(DType::F32)?;
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + FINAL_NORM_EPS)?.sqrt()?)?
        .to_dtype(dtype)
}

/// Per-head RMSNorm scales of queries and keys (`attention.q_norm`, `attention.k_norm`).
#[derive(Debug, Clone)]
pub struct QkNorm {
    pub query: Tensor,
    pub key: Tensor,
}

/// One ZImageTransformerBlock on the original checkpoint's fused q/k/v.
#[derive(Debug, Clone)]
pub struct Block {
    /// `attention.qkv`: q, k, v (no bias).
    pub qkv: Linear,
    pub qk_norm: Option<QkNorm>,
    /// `attention.out` (no bias).
    pub out: Linear,
    /// `feed_forward.w1`, `w2`, `w3`: `w2(silu(w1 x) * w3 x)`.
    pub w1: Linear,
    pub w2: Linear,
    pub w3: Linear,
    /// `attention_norm1`, `attention_norm2`, `ffn_norm1`, `ffn_norm2` scales.
    pub norms: [Tensor; 4],
    /// `adaLN_modulation.0`: scale and gate for attention, then for the feed-forward. None in
    /// the context refiner.
    pub modulation: Option<Linear>,
    pub heads: usize,
    pub eps: f64,
}

impl Block {
    /// `x` (b, s, dim) with its rotary tables (s positions); `adaln` (b, adaln_dim), the
    /// timestep embedding, for a modulated block.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        adaln: Option<&Tensor>,
        run: AttentionRun,
    ) -> Result<Tensor> {
        let [n1, n2, f1, f2] = &self.norms;
        let norm = |t: &Tensor, w: &Tensor| rms_norm(t, w, self.eps);
        let (Some(lin), Some(adaln)) = (&self.modulation, adaln) else {
            let x = (x + norm(&self.attention(&norm(x, n1)?, rope, run)?, n2)?)?;
            return &x + norm(&self.feed_forward(&norm(&x, f1)?)?, f2)?;
        };
        // scale_msa, gate_msa, scale_mlp, gate_mlp: (b, 1, dim) each.
        let m = lin.forward(adaln)?.unsqueeze(1)?.chunk(4, D::Minus1)?;
        let (scale_msa, gate_msa) = ((&m[0] + 1.0)?, m[1].tanh()?);
        let (scale_mlp, gate_mlp) = ((&m[2] + 1.0)?, m[3].tanh()?);
        let attn = self.attention(&norm(x, n1)?.broadcast_mul(&scale_msa)?, rope, run)?;
        let x = (x + gate_msa.broadcast_mul(&norm(&attn, n2)?)?)?;
        let ff = self.feed_forward(&norm(&x, f1)?.broadcast_mul(&scale_mlp)?)?;
        &x + gate_mlp.broadcast_mul(&norm(&ff, f2)?)?
    }

    fn feed_forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = (self.w1.forward(x)?.silu()? * self.w3.forward(x)?)?;
        self.w2.forward(&gated)
    }

    /// ZSingleStreamAttnProcessor: q/k/v, q/k RMSNorm per head, RoPE (in f32), scaled
    /// dot-product attention over the whole sequence, the output projection.
    fn attention(&self, x: &Tensor, rope: &RopeTables, run: AttentionRun) -> Result<Tensor> {
        let (b, s, width) = x.dims3()?;
        let h = self.heads;
        let d = width / h;
        let qkv = self.qkv.forward(x)?.reshape((b, s, 3, h, d))?;
        let part = |i: usize, scale: Option<&Tensor>| -> Result<Tensor> {
            let t = qkv.narrow(2, i, 1)?.squeeze(2)?;
            let t = match scale {
                Some(w) => rms_norm(&t, w, QK_NORM_EPS)?,
                None => t,
            };
            t.transpose(1, 2)?.contiguous()
        };
        let norm = self.qk_norm.as_ref();
        let q = rope.apply(&part(0, norm.map(|n| &n.query))?)?;
        let k = rope.apply(&part(1, norm.map(|n| &n.key))?)?;
        let v = part(2, None)?;
        let rows = |t: &Tensor| t.reshape((b * h, s, d));
        let q = (rows(&q)? * (d as f64).powf(-0.5))?;
        let out = attention_heads(&q, &rows(&k)?, &rows(&v)?, false, run.mode, run.fast)?;
        let out = out
            .reshape((b, h, s, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h * d))?;
        self.out.forward(&out)
    }
}

/// FinalLayer: LayerNorm (no affine) scaled by `1 + linear(silu(adaln))`, then the projection
/// to patch values.
#[derive(Debug, Clone)]
pub struct FinalLayer {
    /// `final_layer.adaLN_modulation.1`.
    pub modulation: Linear,
    /// `final_layer.linear`.
    pub linear: Linear,
}

impl FinalLayer {
    pub fn forward(&self, x: &Tensor, adaln: &Tensor) -> Result<Tensor> {
        let scale = (self.modulation.forward(&adaln.silu()?)? + 1.0)?.unsqueeze(1)?;
        self.linear.forward(&layer_norm(x)?.broadcast_mul(&scale)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rms_norm_follows_diffusers_in_every_dtype() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0, 4.0, -3.0]], &dev).unwrap();
        let w = Tensor::new(&[1f32, 0.5, 2.0, -1.0], &dev).unwrap();
        let ms = (1.0 + 4.0 + 16.0 + 9.0) / 4.0;
        let want: Vec<f32> = [1f32, 1.0, 8.0, 3.0]
            .iter()
            .map(|v| v / (ms + 1e-5f32).sqrt())
            .collect();
        for dtype in [DType::F32, DType::BF16] {
            let (xd, wd) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
            let y = rms_norm(&xd, &wd, 1e-5).unwrap();
            assert_eq!(y.dtype(), dtype);
            let y = y.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
            let tol = if dtype == DType::F32 { 1e-6 } else { 2e-2 };
            for (a, b) in y[0].iter().zip(&want) {
                assert!(
                    (a - b).abs() <= tol * b.abs().max(1.0),
                    "{dtype:?}: {a} {b}"
                );
            }
        }
    }

    #[test]
    fn layer_norm_centres_before_the_variance() {
        let x = Tensor::new(&[[10_000f32, 10_001.0, 10_002.0, 10_003.0]], &Device::Cpu).unwrap();
        let y = layer_norm(&x).unwrap().to_vec2::<f32>().unwrap();
        let want = [-1.5f32, -0.5, 0.5, 1.5].map(|v| v / (1.25f32 + 1e-6).sqrt());
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }
}
