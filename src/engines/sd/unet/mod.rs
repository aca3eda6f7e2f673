//! The conditional UNet (diffusers' UNet2DConditionModel) for SD 1.x, 2.x and XL, including
//! SDXL's added conditioning and 9-channel inpainting inputs. Owned rather than candle's
//! because that one lacks `add_embedding` and materialises whole attention score matrices.

pub mod blocks;
pub mod cross_attention;
pub mod embeddings;
#[cfg(all(test, feature = "cuda"))]
#[allow(clippy::unwrap_used)]
mod gpu_parity;
pub mod probe;
pub mod resnet;
pub mod transformer;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use self::blocks::{BlockInputs, DownBlock, DownSpec, MidBlock, UpBlock, UpSpec};
use self::embeddings::{TimestepEmbedding, host_f32, sinusoidal};
use self::resnet::{ResnetConfig, conv, norm_silu};
use self::transformer::TransformerConfig;
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

#[derive(Debug)]
struct AddEmbedding {
    time_dim: usize,
    embedding: TimestepEmbedding,
}

#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    add_embedding: Option<AddEmbedding>,
    down_blocks: Vec<DownBlock>,
    mid_block: Option<MidBlock>,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    device: Device,
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
        let temb_dim = c.time_embedding_dim;
        let resnet = ResnetConfig {
            groups: c.norm_num_groups,
            eps: c.norm_eps,
            temb_channels: Some(temb_dim),
            output_scale_factor: c.resnet_out_scale_factor,
            kernels,
        };
        let transformer = |i: usize, depth: usize| TransformerConfig {
            heads: c.num_attention_heads[i],
            depth,
            cross_attention_dim: c.cross_attention_dim[i],
            groups: c.norm_num_groups,
            use_linear_projection: c.use_linear_projection,
            upcast: c.upcast_attention,
            kernels,
        };
        let pad_in = (c.conv_in_kernel - 1) / 2;
        let conv_in = conv(
            vb.pp("conv_in"),
            c.in_channels,
            ch[0],
            c.conv_in_kernel,
            1,
            pad_in,
            kernels,
        )?;
        let time_embedding = TimestepEmbedding::new(vb.pp("time_embedding"), ch[0], temb_dim)?;
        let add_embedding = match (
            c.addition_time_embed_dim,
            c.projection_class_embeddings_input_dim,
        ) {
            (Some(time_dim), Some(in_dim)) if c.needs_added_conditioning() => Some(AddEmbedding {
                time_dim,
                embedding: TimestepEmbedding::new(vb.pp("add_embedding"), in_dim, temb_dim)?,
            }),
            _ => None,
        };

        let mut down_blocks = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let spec = DownSpec {
                in_c: if i == 0 { ch[0] } else { ch[i - 1] },
                out_c: ch[i],
                layers: c.layers_per_block[i],
                resnet,
                transformer: (c.down_block_types[i] == "CrossAttnDownBlock2D")
                    .then(|| transformer(i, c.transformer_layers_per_block[i])),
                add_downsample: i + 1 < blocks,
                downsample_padding: c.downsample_padding,
            };
            down_blocks.push(DownBlock::new(vb.pp(format!("down_blocks.{i}")), &spec)?);
        }

        let last = blocks - 1;
        let mid_block = match c.mid_block_type {
            Some(_) => Some(MidBlock::new(
                vb.pp("mid_block"),
                ch[last],
                ResnetConfig {
                    output_scale_factor: c.mid_block_scale_factor,
                    ..resnet
                },
                &transformer(last, c.transformer_layers_per_block[last]),
            )?),
            None => None,
        };

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
                transformer: (c.up_block_types[i] == "CrossAttnUpBlock2D")
                    .then(|| transformer(rev, c.reverse_transformer_layers_per_block[i])),
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
            device: vb.device().clone(),
            dtype: vb.dtype(),
            config,
            conv_in,
            time_embedding,
            add_embedding,
            down_blocks,
            mid_block,
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
        let (b, in_c, _, _) = sample.dims4()?;
        if in_c != self.config.in_channels {
            return Err(Error::bad_input(format!(
                "the UNet takes {} input channels, got {in_c}",
                self.config.in_channels
            )));
        }
        if encoder_hidden_states.dim(0)? != b {
            return Err(Error::bad_input(format!(
                "UNet batch {b} but {} text embeddings",
                encoder_hidden_states.dim(0)?
            )));
        }
        let sample = sample.to_dtype(self.dtype)?;
        let context = encoder_hidden_states.to_dtype(self.dtype)?;
        let sample = if self.config.center_input_sample {
            ((sample * 2.0)? - 1.0)?
        } else {
            sample
        };

        let t_emb = sinusoidal(
            &vec![timestep as f32; b],
            self.config.block_out_channels[0],
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
            &self.device,
        )?
        .to_dtype(self.dtype)?;
        let mut emb = self.time_embedding.forward(&t_emb)?;
        match (&self.add_embedding, added) {
            (Some(add), Some(cond)) => emb = (emb + self.added_embedding(add, cond, b)?)?,
            (Some(_), None) => {
                return Err(Error::bad_input(
                    "this UNet (SDXL) needs added conditioning: pooled text embeddings and time ids",
                ));
            }
            (None, _) => {}
        }
        let temb_silu = candle_nn::ops::silu(&emb)?;
        let inp = BlockInputs {
            temb_silu: &temb_silu,
            context: &context,
            mode: attn,
            probe: &self.probe,
            cancel,
        };

        let mut xs = self
            .probe
            .time("conv_in", || self.conv_in.forward(&sample))?;
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(&xs, &inp)?;
            xs = out;
            skips.extend(states);
        }
        if let Some(mid) = &self.mid_block {
            xs = mid.forward(&xs, &inp)?;
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

    fn added_embedding(
        &self,
        add: &AddEmbedding,
        cond: &AddedConditioning,
        b: usize,
    ) -> Result<Tensor> {
        let ids = host_f32(&cond.time_ids)?;
        if ids.is_empty() || ids.len() % b != 0 || cond.text_embeds.dim(0)? != b {
            return Err(Error::bad_input(format!(
                "added conditioning for batch {b}: time ids of shape {:?}, text embeds of shape {:?}",
                cond.time_ids.dims(),
                cond.text_embeds.dims()
            )));
        }
        let time = sinusoidal(
            &ids,
            add.time_dim,
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
            &self.device,
        )?
        .reshape((b, ()))?;
        let text = cond
            .text_embeds
            .to_dtype(DType::F32)?
            .to_device(&self.device)?;
        let joined = Tensor::cat(&[&text, &time], 1)?.to_dtype(self.dtype)?;
        Ok(add.embedding.forward(&joined)?)
    }
}
