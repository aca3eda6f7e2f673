//! The conditional UNet (diffusers' UNet2DConditionModel) for SD 1.x, 2.x and XL, including
//! SDXL's added conditioning and 9-channel inpainting inputs. Owned rather than candle's
//! because that one lacks `add_embedding` and materialises whole attention score matrices.

pub mod blocks;
pub mod cross_attention;
pub mod embeddings;
pub mod encoder;
#[cfg(all(test, feature = "cuda"))]
#[allow(clippy::unwrap_used)]
mod gpu_parity;
pub mod probe;
pub mod resnet;
pub mod transformer;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use self::blocks::{BlockInputs, UpBlock, UpSpec};
use self::encoder::Encoder;
use self::resnet::{conv, norm_silu};
use super::config::UNetConfig;
use crate::engines::EngineSwitches;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::kernels::{Conv2d, GroupNorm};
use crate::engines::nn::norm;
use crate::engines::nn::weights::Weights;
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

/// SDXL's extra conditioning: pooled text embeddings of text_encoder_2 and the six size/crop ids
/// (original h, w, crop top, left, target h, w).
#[derive(Debug, Clone)]
pub struct AddedConditioning {
    /// (batch, projection dim), e.g. (b, 1280).
    pub text_embeds: Tensor,
    /// (batch, 6).
    pub time_ids: Tensor,
}

/// One evaluation's inputs besides the sample.
pub struct UNetStep<'a> {
    pub timestep: f64,
    /// (b, tokens, cross_attention_dim).
    pub context: &'a Tensor,
    pub added: Option<&'a AddedConditioning>,
    pub attn: AttentionMode,
    pub cancel: &'a CancelToken,
}

impl<'a> UNetStep<'a> {
    /// What each block's forward needs, with the step's time embedding and text states.
    pub fn block_inputs(
        &self,
        temb_silu: &'a Tensor,
        context: &'a Tensor,
        probe: &'a probe::Probe,
    ) -> BlockInputs<'a> {
        BlockInputs {
            temb_silu,
            context,
            mode: self.attn,
            probe,
            cancel: self.cancel,
        }
    }
}

/// A ControlNet's additions to the UNet's skips (one per skip, conv_in's first) and to the mid
/// block's output, already scaled.
#[derive(Debug, Clone)]
pub struct ControlResiduals {
    pub down: Vec<Tensor>,
    pub mid: Tensor,
}

#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    encoder: Encoder,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    dtype: DType,
    probe: probe::Probe,
}

impl UNet {
    /// `load_with` with no PALLAIDIUM_* switches set (parity tests, tools); jobs pass theirs.
    pub fn load(dir: &Path, device: &Device, dtype: DType, fp16_variant: bool) -> Result<Self> {
        Self::load_with(dir, device, dtype, fp16_variant, Default::default())
    }

    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: EngineSwitches,
    ) -> Result<Self> {
        Self::load_patched(dir, device, dtype, fp16_variant, switches, None)
    }

    /// `load_with` with LoRA deltas merged into the weights.
    pub fn load_patched(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: EngineSwitches,
        patch: Option<&std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_unet", dir = %dir.display()).entered();
        let config = UNetConfig::load(&dir.join("config.json"))?;
        let weights = Weights::open_patched(dir, device, dtype, fp16_variant, switches, patch)?;
        weights.build("UNet", |vb| Self::new(vb, config, switches))
    }

    /// `switches`: the layers' kernels and whether the probe times them.
    pub fn new(
        vb: VarBuilder,
        config: UNetConfig,
        switches: EngineSwitches,
    ) -> candle_core::Result<Self> {
        let kernels = switches.kernels();
        let c = &config;
        let ch = &c.block_out_channels;
        let blocks = ch.len();
        let resnet = encoder::resnet_config(c, switches);
        let encoder = Encoder::new(vb.clone(), c, switches)?;
        let last = blocks - 1;
        let mut up_blocks = Vec::with_capacity(blocks);
        let mut prev_out_c = ch[last];
        for i in 0..blocks {
            let rev = last - i; // the down block this up block mirrors
            let out_c = ch[rev];
            let in_c = ch[rev.saturating_sub(1)];
            let spec = UpSpec {
                out_c,
                prev_out_c,
                in_c,
                layers: c.layers_per_block[rev] + 1,
                resnet,
                transformer: (c.up_block_types[i] == "CrossAttnUpBlock2D").then(|| {
                    encoder::transformer_config(
                        c,
                        switches,
                        rev,
                        c.reverse_transformer_layers_per_block[i],
                    )
                }),
                add_upsample: i + 1 < blocks,
            };
            up_blocks.push(UpBlock::new(vb.pp(format!("up_blocks.{i}")), &spec)?);
            prev_out_c = out_c;
        }

        let pad_out = (c.conv_out_kernel - 1) / 2;
        Ok(Self {
            conv_norm_out: norm::group_norm(
                c.norm_num_groups,
                ch[0],
                c.norm_eps,
                vb.pp("conv_norm_out"),
                kernels,
            )?,
            conv_out: conv(
                vb.pp("conv_out"),
                ch[0],
                c.out_channels,
                c.conv_out_kernel,
                1,
                pad_out,
                kernels,
            )?,
            probe: probe::Probe::new(vb.device(), switches.profile),
            dtype: vb.dtype(),
            config,
            encoder,
            up_blocks,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// One denoising evaluation. `sample` (b, in_channels, h, w); `encoder_hidden_states`
    /// (b, tokens, cross_attention_dim); `added` is required exactly when the config has
    /// `addition_embed_type = "text_time"` (SDXL).
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f64,
        encoder_hidden_states: &Tensor,
        added: Option<&AddedConditioning>,
        attn: AttentionMode,
    ) -> Result<Tensor> {
        let unwatched = CancelToken::new();
        self.forward_watched(
            sample,
            timestep,
            encoder_hidden_states,
            added,
            attn,
            &unwatched,
        )
    }

    /// `forward`, stopping with `Error::Cancelled` soon after `cancel` is set (checked before
    /// every block and between attention chunks).
    pub fn forward_watched(
        &self,
        sample: &Tensor,
        timestep: f64,
        encoder_hidden_states: &Tensor,
        added: Option<&AddedConditioning>,
        attn: AttentionMode,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let step = UNetStep {
            timestep,
            context: encoder_hidden_states,
            added,
            attn,
            cancel,
        };
        self.forward_controlled(sample, &step, None)
    }

    /// `forward_watched` with a ControlNet's residuals added to the skips and the mid block's
    /// output (diffusers' `down_block_additional_residuals`, `mid_block_additional_residual`).
    pub fn forward_controlled(
        &self,
        sample: &Tensor,
        step: &UNetStep<'_>,
        control: Option<&ControlResiduals>,
    ) -> Result<Tensor> {
        let (b, in_c, _, _) = sample.dims4()?;
        if in_c != self.config.in_channels {
            return Err(Error::bad_input(format!(
                "the UNet takes {} input channels, got {in_c}",
                self.config.in_channels
            )));
        }
        if step.context.dim(0)? != b {
            return Err(Error::bad_input(format!(
                "UNet batch {b} but {} text embeddings",
                step.context.dim(0)?
            )));
        }
        let sample = sample.to_dtype(self.dtype)?;
        let context = step.context.to_dtype(self.dtype)?;
        let sample = if self.config.center_input_sample {
            ((sample * 2.0)? - 1.0)?
        } else {
            sample
        };
        let temb_silu = self.encoder.embed(step.timestep, b, step.added)?;
        let inp = step.block_inputs(&temb_silu, &context, &self.probe);
        let xs = self
            .probe
            .time("conv_in", || self.encoder.conv_in(&sample))?;
        let (xs, mut skips) = self.encoder.down(xs, &inp)?;
        if let Some(c) = control {
            if c.down.len() != skips.len() {
                return Err(Error::bad_input(format!(
                    "the ControlNet gives {} down residuals but the UNet has {} skips; it was \
                     made for another UNet",
                    c.down.len(),
                    skips.len()
                )));
            }
            for (skip, r) in skips.iter_mut().zip(&c.down) {
                *skip = (&*skip + r.to_dtype(self.dtype)?)?;
            }
        }
        let mut xs = self.encoder.mid(xs, &inp)?;
        if let Some(c) = control {
            xs = (xs + c.mid.to_dtype(self.dtype)?)?;
        }
        for block in &self.up_blocks {
            let n = block.num_resnets();
            let own = skips.split_off(skips.len() - n);
            // Upsample to the size of the skips the next block consumes (diffusers'
            // upsample_size), so latents that are not multiples of 8 still line up.
            let size = match skips.last() {
                Some(next) => {
                    let (_, _, sh, sw) = next.dims4()?;
                    Some((sh, sw))
                }
                None => None,
            };
            xs = block.forward(&xs, &own, &inp, size)?;
        }
        Ok(self.probe.time("conv_out", || {
            self.conv_out.forward(&norm_silu(&self.conv_norm_out, &xs)?)
        })?)
    }

    /// Device time per kind of layer since the last call (`PALLAIDIUM_PROFILE=1` at load; empty
    /// otherwise): (kind, seconds, calls).
    pub fn take_profile(&self) -> Vec<(&'static str, f64, u64)> {
        self.probe.take()
    }
}
