//! The LTX VAE's layers: its causal conv3d (time padded by repeating the first frame, or the
//! first and last when not causal), the ResNet block (channel RMSNorm, optional timestep
//! scale/shift and noise injection, LayerNorm + 1x1x1 conv shortcut), the timestep embedder
//! (diffusers' PixArtAlphaCombinedTimestepSizeEmbeddings without size conditions) and the
//! depth-to-space / space-to-depth reshapes the up and down samplers use.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use crate::engines::flux::transformer::embeddings::sinusoidal;
use crate::engines::nn::conv3d::{Conv3d, Conv3dConfig};
use crate::engines::nn::kernels::Kernels;
use crate::engines::nn::norm::layer_norm;

/// diffusers' `LTXVideoCausalConv3d` (weights under `conv`).
#[derive(Debug, Clone)]
pub struct LtxConv {
    conv: Conv3d,
    kt: usize,
    causal: bool,
}

impl LtxConv {
    pub fn load(
        in_c: usize,
        out_c: usize,
        k: usize,
        causal: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        Self::load_strided(in_c, out_c, k, [1; 3], causal, vb, kernels)
    }

    /// With a stride (the 0.9.0 encoder's (2, 2, 2) downsampling conv).
    pub fn load_strided(
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: [usize; 3],
        causal: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let cfg = Conv3dConfig {
            padding: [0, k / 2, k / 2],
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: Conv3d::load(in_c, out_c, [k; 3], cfg, true, vb.pp("conv"), kernels)?,
            kt: k,
            causal,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(2)?;
        let rep = |start: usize, n: usize| x.narrow(2, start, 1)?.repeat((1, 1, n, 1, 1));
        let x = if self.kt <= 1 {
            x.clone()
        } else if self.causal {
            Tensor::cat(&[&rep(0, self.kt - 1)?, x], 2)?
        } else {
            let n = (self.kt - 1) / 2;
            Tensor::cat(&[&rep(0, n)?, x, &rep(t - 1, n)?], 2)?
        };
        self.conv.forward(&x)
    }
}

/// diffusers' `RMSNorm(C, eps=1e-8, elementwise_affine=False)` over the channels (dim 1).
pub fn rms_channels(x: &Tensor) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(1)?;
    x.broadcast_div(&(ms + 1e-8)?.sqrt()?)
}

/// `Timesteps(256, flip_sin_to_cos=True, 0)` then linear, SiLU, linear (under
/// `timestep_embedder`).
#[derive(Debug, Clone)]
pub struct TimeEmbedder {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimeEmbedder {
    pub fn load(dim: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("timestep_embedder");
        Ok(Self {
            linear_1: candle_nn::linear(256, dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    /// t (b,) → (b, dim, 1, 1, 1).
    pub fn forward(&self, t: &Tensor, dtype: candle_core::DType) -> Result<Tensor> {
        let p = sinusoidal(t, 256)?.to_dtype(dtype)?;
        let e = self.linear_2.forward(&self.linear_1.forward(&p)?.silu()?)?;
        let (b, d) = e.dims2()?;
        e.reshape((b, d, 1, 1, 1))
    }
}

/// `LTXVideoResnetBlock3d`.
#[derive(Debug, Clone)]
pub struct Resnet {
    conv1: LtxConv,
    conv2: LtxConv,
    shortcut: Option<(LayerNorm, LtxConv)>,
    /// `per_channel_scale1`, `per_channel_scale2` (inject_noise).
    noise: Option<(Tensor, Tensor)>,
    /// `scale_shift_table` (4, in) (timestep_conditioning).
    table: Option<Tensor>,
}

pub struct ResnetOpts {
    pub causal: bool,
    pub eps: f64,
    pub noise: bool,
    pub timestep: bool,
}

impl Resnet {
    pub fn load(
        in_c: usize,
        out_c: usize,
        o: &ResnetOpts,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let shortcut = if in_c != out_c {
            Some((
                layer_norm(in_c, o.eps, vb.pp("norm3"))?,
                LtxConv::load(in_c, out_c, 1, o.causal, vb.pp("conv_shortcut"), kernels)?,
            ))
        } else {
            None
        };
        let noise = if o.noise {
            Some((
                vb.get((in_c, 1, 1), "per_channel_scale1")?,
                vb.get((in_c, 1, 1), "per_channel_scale2")?,
            ))
        } else {
            None
        };
        let table = if o.timestep {
            Some(vb.get((4, in_c), "scale_shift_table")?)
        } else {
            None
        };
        Ok(Self {
            conv1: LtxConv::load(in_c, out_c, 3, o.causal, vb.pp("conv1"), kernels)?,
            conv2: LtxConv::load(out_c, out_c, 3, o.causal, vb.pp("conv2"), kernels)?,
            shortcut,
            noise,
            table,
        })
    }

    /// `temb` (b, 4 in, 1, 1, 1): the block's embedded timestep, for a conditioned block.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let mut h = rms_channels(x)?;
        let mods = match (&self.table, temb) {
            (Some(table), Some(temb)) => {
                let (b, c4, ..) = temb.dims5()?;
                let c = c4 / 4;
                let t = temb
                    .reshape((b, 4, c, 1, 1, 1))?
                    .broadcast_add(&table.reshape((1, 4, c, 1, 1, 1))?)?;
                let part = |i: usize| t.narrow(1, i, 1)?.squeeze(1);
                Some([part(0)?, part(1)?, part(2)?, part(3)?])
            }
            (Some(_), None) => {
                candle_core::bail!("this LTX VAE is timestep-conditioned but no timestep was given")
            }
            (None, _) => None,
        };
        if let Some([shift1, scale1, ..]) = &mods {
            h = h.broadcast_mul(&(scale1 + 1.0)?)?.broadcast_add(shift1)?;
        }
        h = self.conv1.forward(&h.silu()?)?;
        if let Some((s1, _)) = &self.noise {
            h = add_spatial_noise(&h, s1)?;
        }
        h = rms_channels(&h)?;
        if let Some([_, _, shift2, scale2]) = &mods {
            h = h.broadcast_mul(&(scale2 + 1.0)?)?.broadcast_add(shift2)?;
        }
        h = self.conv2.forward(&h.silu()?)?;
        if let Some((_, s2)) = &self.noise {
            h = add_spatial_noise(&h, s2)?;
        }
        let skip = match &self.shortcut {
            Some((norm, conv)) => {
                let n = norm.forward(&x.permute((0, 2, 3, 4, 1))?.contiguous()?)?;
                conv.forward(&n.permute((0, 4, 1, 2, 3))?.contiguous()?)?
            }
            None => x.clone(),
        };
        h + skip
    }
}

/// One (h, w) plane of standard normal noise, times a per-channel scale, added to every frame
/// (diffusers' inject_noise; torch's generator is not reproduced).
fn add_spatial_noise(h: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (_, c, _, hh, ww) = h.dims5()?;
    let noise = Tensor::randn(0f32, 1.0, (1, 1, 1, hh, ww), h.device())?.to_dtype(h.dtype())?;
    let scale = scale.reshape((1, c, 1, 1, 1))?.to_dtype(h.dtype())?;
    h.broadcast_add(&noise.broadcast_mul(&scale)?)
}

/// (b, c s0 s1 s2, t, h, w) → (b, c, t s0, h s1, w s2), channels ordered (c, s0, s1, s2).
pub fn depth_to_space(x: &Tensor, s: [usize; 3]) -> Result<Tensor> {
    let (b, cs, t, h, w) = x.dims5()?;
    let c = cs / (s[0] * s[1] * s[2]);
    x.reshape(vec![b, c, s[0], s[1], s[2], t, h, w])?
        .permute([0, 1, 5, 2, 6, 3, 7, 4])?
        .contiguous()?
        .reshape((b, c, t * s[0], h * s[1], w * s[2]))
}

/// The inverse of [`depth_to_space`].
pub fn space_to_depth(x: &Tensor, s: [usize; 3]) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let (t2, h2, w2) = (t / s[0], h / s[1], w / s[2]);
    x.reshape(vec![b, c, t2, s[0], h2, s[1], w2, s[2]])?
        .permute([0, 1, 3, 5, 7, 2, 4, 6])?
        .contiguous()?
        .reshape((b, c * s[0] * s[1] * s[2], t2, h2, w2))
}

/// `LTXVideoUpsampler3d`: conv to `in * 8 / factor` channels, depth-to-space, the first frame
/// dropped; with `residual`, the input's own depth-to-space (channels tiled) added.
#[derive(Debug, Clone)]
pub struct Upsampler {
    conv: LtxConv,
    residual: bool,
    factor: usize,
}

const UP: [usize; 3] = [2, 2, 2];

impl Upsampler {
    pub fn load(
        in_c: usize,
        causal: bool,
        residual: bool,
        factor: usize,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        Ok(Self {
            conv: LtxConv::load(in_c, in_c * 8 / factor, 3, causal, vb.pp("conv"), kernels)?,
            residual,
            factor,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let drop_first = |t: &Tensor| -> Result<Tensor> {
            let n = t.dim(2)?;
            t.narrow(2, UP[0] - 1, n - (UP[0] - 1))
        };
        let h = drop_first(&depth_to_space(&self.conv.forward(x)?, UP)?)?;
        if !self.residual {
            return Ok(h);
        }
        let r = depth_to_space(x, UP)?.repeat((1, 8 / self.factor, 1, 1, 1))?;
        h + drop_first(&r)?
    }
}

/// `LTXVideoDownsampler3d` (0.9.5's encoder): first frames repeated in front, space-to-depth
/// of a conv plus the channel-group mean of the input's own space-to-depth.
#[derive(Debug, Clone)]
pub struct Downsampler {
    conv: LtxConv,
    stride: [usize; 3],
    group: usize,
}

impl Downsampler {
    pub fn load(
        in_c: usize,
        out_c: usize,
        stride: [usize; 3],
        causal: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let prod = stride.iter().product::<usize>();
        Ok(Self {
            conv: LtxConv::load(in_c, out_c / prod, 3, causal, vb.pp("conv"), kernels)?,
            stride,
            group: in_c * prod / out_c,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.stride[0] > 1 {
            Tensor::cat(&[&x.narrow(2, 0, self.stride[0] - 1)?, x], 2)?
        } else {
            x.clone()
        };
        let r = space_to_depth(&x, self.stride)?;
        let (b, c, t, h, w) = r.dims5()?;
        let r = r
            .reshape(vec![b, c / self.group, self.group, t, h, w])?
            .mean(2)?;
        space_to_depth(&self.conv.forward(&x)?, self.stride)? + r
    }
}
