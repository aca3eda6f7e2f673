//! The Wan VAE's layers shared by its encoder and decoder: the channel-first RMS norm, the causal
//! residual block, the per-frame attention block and the middle block (diffusers' `WanRMS_norm`,
//! `WanResidualBlock`, `WanAttentionBlock`, `WanMidBlock`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::engines::nn::attention::{AttentionMode, attention_with};
use crate::engines::nn::conv3d_causal::{CausalConv3d, FeatCache};
use crate::engines::nn::kernels::{Conv2d, Kernels};

/// `WanRMS_norm`: x / max(‖x‖₂ over channels, 1e-12) · √dim · γ, in f32 for half inputs.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    gamma: Tensor,
    scale: f64,
}

impl RmsNorm {
    /// `images`: γ is (dim, 1, 1) for 4-D inputs, else (dim, 1, 1, 1) for 5-D ones.
    pub fn load(dim: usize, images: bool, vb: VarBuilder) -> Result<Self> {
        let gamma = if images {
            vb.get((dim, 1, 1), "gamma")?
        } else {
            vb.get((dim, 1, 1, 1), "gamma")?
        };
        Ok(Self {
            gamma,
            scale: (dim as f64).sqrt(),
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let norm = xf.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        let y = xf.broadcast_div(&norm)?.to_dtype(dtype)?;
        (y * self.scale)?.broadcast_mul(&self.gamma.to_dtype(dtype)?)
    }
}

/// A causal conv with `k`³ kernel and padding `k / 2` (the blocks' 3x3x3 and 1x1x1 convs).
pub fn causal_conv(
    in_c: usize,
    out_c: usize,
    k: usize,
    vb: VarBuilder,
    kernels: Kernels,
) -> Result<CausalConv3d> {
    let p = k / 2;
    CausalConv3d::load(in_c, out_c, [k; 3], [1; 3], [p; 3], vb, kernels)
}

/// `WanResidualBlock`: norm-SiLU-conv twice, plus a 1x1x1 shortcut when channels change.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    norm1: RmsNorm,
    conv1: CausalConv3d,
    norm2: RmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    pub fn load(in_c: usize, out_c: usize, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let shortcut = if in_c != out_c {
            Some(causal_conv(
                in_c,
                out_c,
                1,
                vb.pp("conv_shortcut"),
                kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            norm1: RmsNorm::load(in_c, false, vb.pp("norm1"))?,
            conv1: causal_conv(in_c, out_c, 3, vb.pp("conv1"), kernels)?,
            norm2: RmsNorm::load(out_c, false, vb.pp("norm2"))?,
            conv2: causal_conv(out_c, out_c, 3, vb.pp("conv2"), kernels)?,
            shortcut,
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x, None)?,
            None => x.clone(),
        };
        let x = self.norm1.forward(x)?.silu()?;
        let x = self.conv1.forward_cached(&x, cache)?;
        let x = self.norm2.forward(&x)?.silu()?;
        let x = self.conv2.forward_cached(&x, cache)?;
        x + h
    }
}

/// `count` residual blocks under `vb.resnets.{j}`, the first from `in_c` channels.
pub fn resnets(
    in_c: usize,
    out_c: usize,
    count: usize,
    vb: VarBuilder,
    kernels: Kernels,
) -> Result<Vec<ResidualBlock>> {
    (0..count)
        .map(|j| {
            let c = if j == 0 { in_c } else { out_c };
            ResidualBlock::load(c, out_c, vb.pp("resnets").pp(j), kernels)
        })
        .collect()
}

/// Runs `blocks` in order.
pub fn run_resnets(blocks: &[ResidualBlock], x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
    let mut x = x.clone();
    for r in blocks {
        x = r.forward(&x, cache)?;
    }
    Ok(x)
}

/// `WanAttentionBlock`: single-head self-attention over each frame's pixels.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    norm: RmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
    kernels: Kernels,
}

impl AttentionBlock {
    pub fn load(dim: usize, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let conv1x1 = |out: usize, vb: VarBuilder| -> Result<Conv2d> {
            let c = candle_nn::conv2d(dim, out, 1, Default::default(), vb)?;
            Ok(Conv2d::from_candle(c, kernels))
        };
        Ok(Self {
            norm: RmsNorm::load(dim, true, vb.pp("norm"))?,
            to_qkv: conv1x1(3 * dim, vb.pp("to_qkv"))?,
            proj: conv1x1(dim, vb.pp("proj"))?,
            kernels,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let fast = self.kernels.fast();
        let (b, c, t, h, w) = x.dims5()?;
        let frames = x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?;
        let y = self.norm.forward(&frames)?;
        // (bt, 3c, hw) → (bt, hw, 3c): the three thirds of the channels are q, k and v.
        let qkv = self
            .to_qkv
            .forward_with(&y, fast)?
            .reshape((b * t, 3 * c, h * w))?
            .transpose(1, 2)?;
        let part = |i: usize| qkv.narrow(2, i * c, c)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let o = attention_with(&q, &k, &v, 1, true, AttentionMode::Auto, fast)?;
        let o = o.transpose(1, 2)?.reshape((b * t, c, h, w))?;
        let o = self.proj.forward_with(&o, fast)?;
        let o = o.reshape((b, t, c, h, w))?.permute((0, 2, 1, 3, 4))?;
        o + x
    }
}

/// `WanMidBlock` with one attention: residual, attention, residual.
#[derive(Debug, Clone)]
pub struct MidBlock {
    res0: ResidualBlock,
    attn: AttentionBlock,
    res1: ResidualBlock,
}

impl MidBlock {
    pub fn load(dim: usize, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        Ok(Self {
            res0: ResidualBlock::load(dim, dim, vb.pp("resnets.0"), kernels)?,
            attn: AttentionBlock::load(dim, vb.pp("attentions.0"), kernels)?,
            res1: ResidualBlock::load(dim, dim, vb.pp("resnets.1"), kernels)?,
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let x = self.res0.forward(x, cache)?;
        let x = self.attn.forward(&x)?;
        self.res1.forward(&x, cache)
    }
}
