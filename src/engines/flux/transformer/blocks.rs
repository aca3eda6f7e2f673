//! FLUX's transformer blocks, as diffusers' FluxTransformerBlock (double-stream: text and image
//! each with their own weights, one joint attention) and FluxSingleTransformerBlock (one stream
//! over text + image, attention and MLP in parallel), on BFL's fused weights.

use candle_core::{D, DType, Module, Result, Tensor};

use super::linear::Linear;
use crate::engines::nn::attention::{AttentionMode, attention_heads};
use crate::engines::nn::kernels;
use crate::engines::nn::rotary::RopeTables;

/// The LayerNorms' and RMSNorms' eps (diffusers hard-codes 1e-6 for FLUX).
pub const NORM_EPS: f64 = 1e-6;

/// How attention runs: query chunking and our kernels.
#[derive(Debug, Clone, Copy)]
pub struct AttentionRun {
    pub mode: AttentionMode,
    pub fast: bool,
}

/// LayerNorm without affine over the last dim, in f32 for half inputs, mean removed before the
/// variance is taken (torch's arithmetic; candle's fused kernel takes E[x²] - mean², which
/// loses digits on FLUX's large residual stream).
pub fn layer_norm(xs: &Tensor) -> Result<Tensor> {
    let dtype = xs.dtype();
    let x = xs.to_dtype(DType::F32)?;
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
        .to_dtype(dtype)
}

/// `norm * (1 + scale) + shift` with (b, dim) modulation broadcast over the tokens.
pub(crate) fn modulate(normed: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    normed
        .broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
        .broadcast_add(&shift.unsqueeze(1)?)
}

/// `modulate(&layer_norm(x)?, shift, scale)`: one kernel on CUDA with our kernels on (`fast`),
/// rounded where the op-by-op chain rounds.
pub(crate) fn ln_modulate(
    x: &Tensor,
    shift: &Tensor,
    scale: &Tensor,
    fast: bool,
) -> Result<Tensor> {
    match kernels::layer_norm_modulate(x, shift, scale, NORM_EPS, fast) {
        Some(y) => y,
        None => modulate(&layer_norm(x)?, shift, scale),
    }
}

/// `x + gate * y` with a (b, dim) gate; one kernel on CUDA with our kernels on (`fast`).
pub(crate) fn gated_add(x: &Tensor, gate: &Tensor, y: &Tensor, fast: bool) -> Result<Tensor> {
    match kernels::gated_residual(x, gate, y, fast) {
        Some(out) => out,
        None => x + y.broadcast_mul(&gate.unsqueeze(1)?)?,
    }
}

/// f16 activations clipped to its range, as diffusers does after each block.
pub(crate) fn clip_f16(xs: Tensor) -> Result<Tensor> {
    if xs.dtype() == DType::F16 {
        xs.clamp(-65504f32, 65504f32)
    } else {
        Ok(xs)
    }
}

/// A modulation linear applied to `silu(temb)`, cut into `n` (b, dim) chunks.
pub(crate) fn modulation(lin: &Linear, temb: &Tensor, n: usize) -> Result<Vec<Tensor>> {
    lin.forward(&temb.silu()?)?.chunk(n, D::Minus1)
}

/// RMSNorm scales of the queries and keys (per head).
#[derive(Debug, Clone)]
pub struct QkNorm {
    pub query: Tensor,
    pub key: Tensor,
}

/// The fused q/k/v projection's output (b, s, 3 * heads * d) as per-head q, k, v
/// (b, heads, s, d), queries and keys RMS-normed when `norm` is given (SD 3 has none).
pub(crate) fn split_qkv(qkv: &Tensor, heads: usize, norm: Option<&QkNorm>) -> Result<[Tensor; 3]> {
    let (b, s, width) = qkv.dims3()?;
    let d = width / (3 * heads);
    let qkv = qkv.reshape((b, s, 3, heads, d))?;
    let part = |i: usize, scale: Option<&Tensor>| -> Result<Tensor> {
        let x = qkv.narrow(2, i, 1)?.squeeze(2)?.contiguous()?;
        let x = match scale {
            Some(w) => candle_nn::ops::rms_norm(&x, &w.to_dtype(x.dtype())?, NORM_EPS as f32)?,
            None => x,
        };
        x.transpose(1, 2)?.contiguous()
    };
    Ok([
        part(0, norm.map(|n| &n.query))?,
        part(1, norm.map(|n| &n.key))?,
        part(2, None)?,
    ])
}

/// Rotary embedding on q and k, scaled dot-product attention; (b, heads, s, d) in,
/// (b, s, heads * d) out.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rope: &RopeTables,
    run: AttentionRun,
) -> Result<Tensor> {
    let (b, heads, s, d) = q.dims4()?;
    let q = rope.apply(q)?;
    let k = rope.apply(k)?;
    let rows = |t: &Tensor| t.reshape((b * heads, s, d));
    let q = (rows(&q)? * (d as f64).powf(-0.5))?;
    let out = attention_heads(&q, &rows(&k)?, &rows(v)?, false, run.mode, run.fast)?;
    out.reshape((b, heads, s, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, s, heads * d))
}

/// One stream's weights in a double block (BFL's `img_*` or `txt_*`).
#[derive(Debug, Clone)]
pub struct StreamWeights {
    /// `*_mod.lin`: shift, scale, gate for attention, then for the MLP.
    pub modulation: Linear,
    /// `*_attn.qkv`.
    pub qkv: Linear,
    pub norm: QkNorm,
    /// `*_attn.proj`.
    pub proj: Linear,
    /// `*_mlp.0`, `*_mlp.2` (GELU, tanh approximation, between).
    pub mlp_in: Linear,
    pub mlp_out: Linear,
}

/// A stream's state between the attention and the rest of its block.
struct Prepared {
    gates: Vec<Tensor>,
    q: Tensor,
    k: Tensor,
    v: Tensor,
}

impl StreamWeights {
    fn prepare(&self, x: &Tensor, temb: &Tensor, heads: usize, fast: bool) -> Result<Prepared> {
        let m = modulation(&self.modulation, temb, 6)?;
        let normed = ln_modulate(x, &m[0], &m[1], fast)?;
        let [q, k, v] = split_qkv(&self.qkv.forward(&normed)?, heads, Some(&self.norm))?;
        Ok(Prepared { gates: m, q, k, v })
    }

    /// The attention output through the projection and gate, then the modulated MLP.
    fn finish(&self, x: &Tensor, attn: &Tensor, m: &[Tensor], fast: bool) -> Result<Tensor> {
        let x = gated_add(x, &m[2], &self.proj.forward(attn)?, fast)?;
        let normed = ln_modulate(&x, &m[3], &m[4], fast)?;
        let ff = self
            .mlp_out
            .forward(&self.mlp_in.forward(&normed)?.gelu()?)?;
        gated_add(&x, &m[5], &ff, fast)
    }
}

/// diffusers' FluxTransformerBlock (BFL's DoubleStreamBlock).
#[derive(Debug, Clone)]
pub struct DoubleBlock {
    pub img: StreamWeights,
    pub txt: StreamWeights,
    pub heads: usize,
}

impl DoubleBlock {
    /// (txt, img) -> (txt, img); attention over text then image tokens.
    pub fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        temb: &Tensor,
        rope: &RopeTables,
        run: AttentionRun,
    ) -> Result<(Tensor, Tensor)> {
        let i = self.img.prepare(img, temb, self.heads, run.fast)?;
        let t = self.txt.prepare(txt, temb, self.heads, run.fast)?;
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 2);
        let attn = attend(
            &cat(&t.q, &i.q)?,
            &cat(&t.k, &i.k)?,
            &cat(&t.v, &i.v)?,
            rope,
            run,
        )?;
        let n_txt = txt.dim(1)?;
        let txt_attn = attn.narrow(1, 0, n_txt)?;
        let img_attn = attn.narrow(1, n_txt, img.dim(1)?)?;
        let img = self.img.finish(img, &img_attn, &i.gates, run.fast)?;
        let txt = clip_f16(self.txt.finish(txt, &txt_attn, &t.gates, run.fast)?)?;
        Ok((txt, img))
    }
}

/// diffusers' FluxSingleTransformerBlock (BFL's SingleStreamBlock).
#[derive(Debug, Clone)]
pub struct SingleBlock {
    /// `modulation.lin`: shift, scale, gate.
    pub modulation: Linear,
    /// `linear1`: q, k, v and the MLP's input in one.
    pub linear1: Linear,
    pub norm: QkNorm,
    /// `linear2`: attention output and MLP hidden in, one projection out.
    pub linear2: Linear,
    pub heads: usize,
    pub inner_dim: usize,
}

impl SingleBlock {
    /// `x` = text then image tokens (b, s, dim).
    pub fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        rope: &RopeTables,
        run: AttentionRun,
    ) -> Result<Tensor> {
        let m = modulation(&self.modulation, temb, 3)?;
        let normed = ln_modulate(x, &m[0], &m[1], run.fast)?;
        let fused = self.linear1.forward(&normed)?;
        let width = fused.dim(D::Minus1)?;
        let qkv = fused.narrow(D::Minus1, 0, 3 * self.inner_dim)?;
        let mlp = fused
            .narrow(D::Minus1, 3 * self.inner_dim, width - 3 * self.inner_dim)?
            .gelu()?;
        let [q, k, v] = split_qkv(&qkv, self.heads, Some(&self.norm))?;
        let attn = attend(&q, &k, &v, rope, run)?;
        let out = self
            .linear2
            .forward(&Tensor::cat(&[attn, mlp], D::Minus1)?)?;
        clip_f16(gated_add(x, &m[2], &out, run.fast)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layer_norm_centres_before_the_variance() {
        // A large offset with a small spread: E[x²] - mean² in f32 would lose it all.
        let x = Tensor::new(&[[10_000f32, 10_001.0, 10_002.0, 10_003.0]], &Device::Cpu).unwrap();
        let y = layer_norm(&x).unwrap().to_vec2::<f32>().unwrap();
        let want = [-1.5f32, -0.5, 0.5, 1.5].map(|v| v / (1.25f32 + 1e-6).sqrt());
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }

    #[test]
    fn modulate_and_gate_follow_diffusers() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[1f32, 2.0], [3.0, 4.0]]], &dev).unwrap();
        let shift = Tensor::new(&[[0.5f32, -1.0]], &dev).unwrap();
        let scale = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let y = modulate(&x, &shift, &scale)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        assert_eq!(y[0], vec![vec![2.5, 1.0], vec![6.5, 3.0]]);
        let g = gated_add(&x, &scale, &x, true)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        assert_eq!(g[0], vec![vec![2.0, 2.0], vec![6.0, 4.0]]);
    }
}
