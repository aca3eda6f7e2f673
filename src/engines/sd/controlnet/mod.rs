//! diffusers' ControlNetModel for SD 1.x/2.x and SDXL: the UNet's encoding half (shared code:
//! `unet::encoder`), the control image's conditioning embedding added after conv_in, and 1x1
//! "zero" convolutions turning each skip and the mid block's output into the residuals the UNet
//! adds (`unet::ControlResiduals`). `steer` runs several at once with diffusers' scale and
//! start/end window; `canny` makes edge maps as OpenCV does.

pub mod canny;
pub mod config;
pub mod embedding;
pub mod loaded;
pub mod steer;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use self::config::ControlNetConfig;
use self::embedding::CondEmbedding;
use super::unet::encoder::Encoder;
use super::unet::probe::Probe;
use super::unet::resnet::conv;
use super::unet::{ControlResiduals, UNetStep};
use crate::engines::EngineSwitches;
use crate::engines::nn::kernels::Conv2d;
use crate::engines::nn::weights::Weights;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct ControlNet {
    config: ControlNetConfig,
    encoder: Encoder,
    cond_embedding: CondEmbedding,
    down_zero: Vec<Conv2d>,
    mid_zero: Conv2d,
    probe: Probe,
}

/// The channels of each skip of a UNet config, conv_in's first (one zero convolution each).
fn skip_channels(c: &super::config::UNetConfig) -> Vec<usize> {
    let ch = &c.block_out_channels;
    let mut out = vec![ch[0]];
    for (i, &w) in ch.iter().enumerate() {
        out.extend(std::iter::repeat_n(w, c.layers_per_block[i]));
        if i + 1 < ch.len() {
            out.push(w);
        }
    }
    out
}

impl ControlNet {
    /// A diffusers ControlNet folder (config.json + diffusion_pytorch_model.safetensors).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_controlnet", dir = %dir.display()).entered();
        let config = ControlNetConfig::load(&dir.join("config.json"))?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        weights.build("ControlNet", |vb| Self::new(vb, config, switches))
    }

    pub fn new(
        vb: VarBuilder,
        config: ControlNetConfig,
        switches: EngineSwitches,
    ) -> candle_core::Result<Self> {
        let kernels = switches.kernels();
        let c = &config.unet;
        let encoder = Encoder::new(vb.clone(), c, switches)?;
        let cond_embedding = CondEmbedding::new(
            vb.pp("controlnet_cond_embedding"),
            config.conditioning_channels,
            &config.conditioning_embedding_out_channels,
            c.block_out_channels[0],
            kernels,
        )?;
        let down_zero = skip_channels(c)
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                conv(
                    vb.pp(format!("controlnet_down_blocks.{i}")),
                    w,
                    w,
                    1,
                    1,
                    0,
                    kernels,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let last = c.block_out_channels[c.block_out_channels.len() - 1];
        let mid_zero = conv(vb.pp("controlnet_mid_block"), last, last, 1, 1, 0, kernels)?;
        Ok(Self {
            probe: Probe::new(vb.device(), false),
            config,
            encoder,
            cond_embedding,
            down_zero,
            mid_zero,
        })
    }

    /// The UNet config of its encoding half.
    pub fn unet_config(&self) -> &super::config::UNetConfig {
        &self.config.unet
    }

    /// The residuals for `sample` (the UNet's latent input, 4 channels, CFG batch included)
    /// steered by `image` ((b, 3, H, W) in [0, 1], RGB, batch matching), times `scale`.
    pub fn forward(
        &self,
        sample: &Tensor,
        image: &Tensor,
        step: &UNetStep<'_>,
        scale: f64,
    ) -> Result<ControlResiduals> {
        let dtype = self.encoder.dtype();
        let (b, _, _, _) = sample.dims4()?;
        if image.dim(0)? != b || step.context.dim(0)? != b {
            return Err(Error::bad_input(format!(
                "ControlNet batch {b} but {} control images and {} text embeddings",
                image.dim(0)?,
                step.context.dim(0)?
            )));
        }
        let image = if self.config.bgr {
            image.flip(&[1])?
        } else {
            image.clone()
        };
        let context = step.context.to_dtype(dtype)?;
        let temb_silu = self.encoder.embed(step.timestep, b, step.added)?;
        let inp = step.block_inputs(&temb_silu, &context, &self.probe);
        let xs = self.encoder.conv_in(&sample.to_dtype(dtype)?)?;
        let cond = self.cond_embedding.forward(&image.to_dtype(dtype)?)?;
        let (xs, skips) = self.encoder.down((xs + cond)?, &inp)?;
        let xs = self.encoder.mid(xs, &inp)?;
        let down = skips
            .iter()
            .zip(&self.down_zero)
            .map(|(s, z)| Ok((z.forward(s)? * scale)?))
            .collect::<Result<Vec<_>>>()?;
        let mid = (self.mid_zero.forward(&xs)? * scale)?;
        Ok(ControlResiduals { down, mid })
    }
}
