//! diffusers' ResnetBlock2D, Downsample2D and Upsample2D, shared by the UNet and the VAE.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, Linear, VarBuilder};

use crate::engines::nn::kernels::{self, Conv2d, GroupNorm, Kernels};
use crate::engines::nn::norm;

pub fn conv(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    kernels: Kernels,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    kernels::conv2d(in_c, out_c, kernel, cfg, vb, kernels)
}

/// GroupNorm then SiLU, the pair every block starts with.
pub fn norm_silu(norm: &GroupNorm, xs: &Tensor) -> Result<Tensor> {
    norm.forward_silu(xs)
}

#[derive(Debug)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
    kernels: Kernels,
}

#[derive(Debug, Clone, Copy)]
pub struct ResnetConfig {
    pub groups: usize,
    pub eps: f64,
    /// Channels of the time embedding; None in the VAE.
    pub temb_channels: Option<usize>,
    pub output_scale_factor: f64,
    /// Ours or candle's layers (`Kernels`).
    pub kernels: Kernels,
}

impl ResnetBlock2D {
    pub fn new(vb: VarBuilder, in_c: usize, out_c: usize, c: ResnetConfig) -> Result<Self> {
        let time_emb_proj = match c.temb_channels {
            Some(t) => Some(candle_nn::linear(t, out_c, vb.pp("time_emb_proj"))?),
            None => None,
        };
        let conv_shortcut = if in_c != out_c {
            Some(conv(
                vb.pp("conv_shortcut"),
                in_c,
                out_c,
                1,
                1,
                0,
                c.kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            norm1: norm::group_norm(c.groups, in_c, c.eps, vb.pp("norm1"), c.kernels)?,
            conv1: conv(vb.pp("conv1"), in_c, out_c, 3, 1, 1, c.kernels)?,
            time_emb_proj,
            norm2: norm::group_norm(c.groups, out_c, c.eps, vb.pp("norm2"), c.kernels)?,
            conv2: conv(vb.pp("conv2"), out_c, out_c, 3, 1, 1, c.kernels)?,
            conv_shortcut,
            output_scale_factor: c.output_scale_factor,
            kernels: c.kernels,
        })
    }

    /// `temb` is the already-SiLU'd time embedding (b, temb_channels), shared by every block.
    pub fn forward(&self, xs: &Tensor, temb_silu: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&norm_silu(&self.norm1, xs)?)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb_silu) {
            h = kernels::add_per_channel(&h, &proj.forward(t)?, self.kernels.fast())?;
        }
        let shortcut = match &self.conv_shortcut {
            Some(c) => c.forward(xs)?,
            None => xs.clone(),
        };
        // shortcut + conv2(..), the add in the convolution's pass on the CPU.
        let out = self
            .conv2
            .forward_add(&norm_silu(&self.norm2, &h)?, &shortcut)?;
        if self.output_scale_factor == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale_factor
        }
    }
}

/// Stride-2 3x3 conv. `padding` 1 in the UNet; 0 in the VAE encoder, which pads right/bottom
/// by one first (diffusers' Downsample2D with padding=0).
#[derive(Debug)]
pub struct Downsample2D {
    conv: Conv2d,
    pad_right_bottom: bool,
}

impl Downsample2D {
    pub fn new(vb: VarBuilder, channels: usize, padding: usize, kernels: Kernels) -> Result<Self> {
        Ok(Self {
            conv: conv(vb.pp("conv"), channels, channels, 3, 2, padding, kernels)?,
            pad_right_bottom: padding == 0,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.pad_right_bottom {
            let xs = xs.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            self.conv.forward(&xs)
        } else {
            self.conv.forward(xs)
        }
    }
}

/// Nearest-neighbour upsampling to a target size (2x unless the skip connection says otherwise,
/// as diffusers' `upsample_size`), then a 3x3 conv.
#[derive(Debug)]
pub struct Upsample2D {
    conv: Conv2d,
    kernels: Kernels,
}

impl Upsample2D {
    pub fn new(vb: VarBuilder, channels: usize, kernels: Kernels) -> Result<Self> {
        Ok(Self {
            conv: conv(vb.pp("conv"), channels, channels, 3, 1, 1, kernels)?,
            kernels,
        })
    }

    pub fn forward(&self, xs: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        let up = kernels::upsample_nearest2d(xs, th, tw, self.kernels.fast())?;
        self.conv.forward(&up)
    }
}
