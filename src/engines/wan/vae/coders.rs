//! `WanEncoder3d` and `WanDecoder3d`: Wan 2.1's plain residual stages (the decoder's stages
//! after the first take half the previous stage's channels, as its upsamplers halve them) or
//! Wan 2.2's residual ones (`residual.rs`). Both run one chunk of frames per call, with the
//! chunk-to-chunk state in a `FeatCache`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{
    AttentionBlock, MidBlock, ResidualBlock, RmsNorm, causal_conv, resnets, run_resnets,
};
use super::config::WanVaeConfig;
use super::resample::{Mode, Resample};
use super::residual;
use crate::engines::nn::conv3d_causal::{CausalConv3d, FeatCache};
use crate::engines::nn::kernels::Kernels;

#[derive(Debug, Clone)]
enum Layer {
    Res(Box<ResidualBlock>),
    Attn(AttentionBlock),
    Resample(Resample),
    ResDown(residual::DownBlock),
}

impl Layer {
    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        match self {
            Self::Res(r) => r.forward(x, cache),
            Self::Attn(a) => a.forward(x),
            Self::Resample(r) => r.forward(x, cache),
            Self::ResDown(r) => r.forward(x, cache),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: CausalConv3d,
    layers: Vec<Layer>,
    mid: MidBlock,
    norm_out: RmsNorm,
    conv_out: CausalConv3d,
}

impl Encoder {
    pub fn load(cfg: &WanVaeConfig, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        // Wan 2.2's config counts the patchified channels already (in_channels 12).
        let in_c = cfg.in_channels;
        let dims: Vec<usize> = std::iter::once(1)
            .chain(cfg.dim_mult.iter().copied())
            .map(|m| m * cfg.base_dim)
            .collect();
        let stages = cfg.dim_mult.len();
        let mut layers = Vec::new();
        let mut scale = 1.0;
        let lvb = vb.pp("down_blocks");
        for i in 0..stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if cfg.is_residual {
                let last = i + 1 == stages;
                layers.push(Layer::ResDown(residual::DownBlock::load(
                    in_dim,
                    out_dim,
                    cfg.num_res_blocks,
                    !last && cfg.temperal_downsample[i],
                    !last,
                    lvb.pp(i),
                    kernels,
                )?));
                continue;
            }
            for _ in 0..cfg.num_res_blocks {
                let k = layers.len();
                layers.push(Layer::Res(Box::new(ResidualBlock::load(
                    in_dim,
                    out_dim,
                    lvb.pp(k),
                    kernels,
                )?)));
                if cfg.attn_scales.contains(&scale) {
                    let k = layers.len();
                    layers.push(Layer::Attn(AttentionBlock::load(
                        out_dim,
                        lvb.pp(k),
                        kernels,
                    )?));
                }
                in_dim = out_dim;
            }
            if i + 1 != stages {
                let mode = if cfg.temperal_downsample[i] {
                    Mode::Down3d
                } else {
                    Mode::Down2d
                };
                let k = layers.len();
                layers.push(Layer::Resample(Resample::load(
                    out_dim,
                    mode,
                    out_dim / 2,
                    lvb.pp(k),
                    kernels,
                )?));
                scale /= 2.0;
            }
        }
        let top = dims[stages];
        Ok(Self {
            conv_in: causal_conv(in_c, dims[0], 3, vb.pp("conv_in"), kernels)?,
            layers,
            mid: MidBlock::load(top, vb.pp("mid_block"), kernels)?,
            norm_out: RmsNorm::load(top, false, vb.pp("norm_out"))?,
            conv_out: causal_conv(top, 2 * cfg.z_dim, 3, vb.pp("conv_out"), kernels)?,
        })
    }

    /// One chunk of frames (1 first, then 4 at a time) → its latent moments (mean, logvar).
    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut x = self.conv_in.forward_cached(x, cache)?;
        for layer in &self.layers {
            x = layer.forward(&x, cache)?;
        }
        let x = self.mid.forward(&x, cache)?;
        let x = self.norm_out.forward(&x)?.silu()?;
        self.conv_out.forward_cached(&x, cache)
    }
}

#[derive(Debug, Clone)]
enum UpBlock {
    Plain {
        resnets: Vec<ResidualBlock>,
        upsampler: Option<Resample>,
    },
    Residual(residual::UpBlock),
}

impl UpBlock {
    fn forward(&self, x: &Tensor, cache: &mut FeatCache, first_chunk: bool) -> Result<Tensor> {
        match self {
            Self::Plain { resnets, upsampler } => {
                let x = run_resnets(resnets, x, cache)?;
                match upsampler {
                    Some(up) => up.forward(&x, cache),
                    None => Ok(x),
                }
            }
            Self::Residual(r) => r.forward(x, cache, first_chunk),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: CausalConv3d,
    mid: MidBlock,
    up_blocks: Vec<UpBlock>,
    norm_out: RmsNorm,
    conv_out: CausalConv3d,
}

impl Decoder {
    pub fn load(cfg: &WanVaeConfig, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let base = cfg.decoder_dim();
        let stages = cfg.dim_mult.len();
        let last = cfg.dim_mult[stages - 1];
        let dims: Vec<usize> = std::iter::once(last)
            .chain(cfg.dim_mult.iter().rev().copied())
            .map(|m| m * base)
            .collect();
        let up_t = cfg.temporal_upsample();
        let mut up_blocks = Vec::with_capacity(stages);
        for i in 0..stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            let bvb = vb.pp("up_blocks").pp(i);
            let up = i + 1 != stages;
            if cfg.is_residual {
                up_blocks.push(UpBlock::Residual(residual::UpBlock::load(
                    in_dim,
                    out_dim,
                    cfg.num_res_blocks,
                    up && up_t[i],
                    up,
                    bvb,
                    kernels,
                )?));
                continue;
            }
            if i > 0 {
                in_dim /= 2;
            }
            let resnets = resnets(
                in_dim,
                out_dim,
                cfg.num_res_blocks + 1,
                bvb.clone(),
                kernels,
            )?;
            let upsampler = if up {
                let mode = if up_t[i] { Mode::Up3d } else { Mode::Up2d };
                Some(Resample::load(
                    out_dim,
                    mode,
                    out_dim / 2,
                    bvb.pp("upsamplers.0"),
                    kernels,
                )?)
            } else {
                None
            };
            up_blocks.push(UpBlock::Plain { resnets, upsampler });
        }
        let out_dim = dims[stages];
        Ok(Self {
            conv_in: causal_conv(cfg.z_dim, dims[0], 3, vb.pp("conv_in"), kernels)?,
            mid: MidBlock::load(dims[0], vb.pp("mid_block"), kernels)?,
            up_blocks,
            norm_out: RmsNorm::load(out_dim, false, vb.pp("norm_out"))?,
            conv_out: causal_conv(out_dim, cfg.out_channels, 3, vb.pp("conv_out"), kernels)?,
        })
    }

    /// One latent frame → its video frames (1 for the first chunk, then 4).
    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache, first_chunk: bool) -> Result<Tensor> {
        let x = self.conv_in.forward_cached(x, cache)?;
        let mut x = self.mid.forward(&x, cache)?;
        for block in &self.up_blocks {
            x = block.forward(&x, cache, first_chunk)?;
        }
        let x = self.norm_out.forward(&x)?.silu()?;
        self.conv_out.forward_cached(&x, cache)
    }
}
