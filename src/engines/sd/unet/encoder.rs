//! The UNet's encoding half, shared by the UNet and the ControlNet (diffusers' ControlNetModel
//! copies it): conv_in, the time (and SDXL's added) embedding, the down blocks and the mid block,
//! under the same weight names in both.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::AddedConditioning;
use super::blocks::{BlockInputs, DownBlock, DownSpec, MidBlock};
use super::embeddings::{TimestepEmbedding, host_f32, sinusoidal};
use super::resnet::{ResnetConfig, conv};
use super::transformer::TransformerConfig;
use crate::engines::EngineSwitches;
use crate::engines::nn::kernels::Conv2d;
use crate::engines::sd::config::UNetConfig;
use crate::error::{Error, Result};

#[derive(Debug)]
struct AddEmbedding {
    time_dim: usize,
    embedding: TimestepEmbedding,
}

/// conv_in, embeddings, down blocks and mid block of a UNet-shaped network.
#[derive(Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    add_embedding: Option<AddEmbedding>,
    down_blocks: Vec<DownBlock>,
    mid_block: Option<MidBlock>,
    time_channels: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: Device,
    dtype: DType,
}

/// The resnet settings of a UNet config's blocks.
pub fn resnet_config(c: &UNetConfig, switches: EngineSwitches) -> ResnetConfig {
    ResnetConfig {
        groups: c.norm_num_groups,
        eps: c.norm_eps,
        temb_channels: Some(c.time_embedding_dim),
        output_scale_factor: c.resnet_out_scale_factor,
        kernels: switches.kernels(),
    }
}

/// The spatial transformer settings of block `i` with `depth` layers.
pub fn transformer_config(
    c: &UNetConfig,
    switches: EngineSwitches,
    i: usize,
    depth: usize,
) -> TransformerConfig {
    TransformerConfig {
        heads: c.num_attention_heads[i],
        depth,
        cross_attention_dim: c.cross_attention_dim[i],
        groups: c.norm_num_groups,
        use_linear_projection: c.use_linear_projection,
        upcast: c.upcast_attention,
        kernels: switches.kernels(),
    }
}

impl Encoder {
    pub fn new(
        vb: VarBuilder,
        c: &UNetConfig,
        switches: EngineSwitches,
    ) -> candle_core::Result<Self> {
        let kernels = switches.kernels();
        let ch = &c.block_out_channels;
        let blocks = ch.len();
        let temb_dim = c.time_embedding_dim;
        let resnet = resnet_config(c, switches);
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
                    .then(|| transformer_config(c, switches, i, c.transformer_layers_per_block[i])),
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
                &transformer_config(c, switches, last, c.transformer_layers_per_block[last]),
            )?),
            None => None,
        };
        Ok(Self {
            conv_in,
            time_embedding,
            add_embedding,
            down_blocks,
            mid_block,
            time_channels: ch[0],
            flip_sin_to_cos: c.flip_sin_to_cos,
            freq_shift: c.freq_shift,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn conv_in(&self, sample: &Tensor) -> candle_core::Result<Tensor> {
        self.conv_in.forward(sample)
    }

    /// SiLU of the time embedding (plus SDXL's added embedding) for a batch of `b`.
    pub fn embed(
        &self,
        timestep: f64,
        b: usize,
        added: Option<&AddedConditioning>,
    ) -> Result<Tensor> {
        let t_emb = sinusoidal(
            &vec![timestep as f32; b],
            self.time_channels,
            self.flip_sin_to_cos,
            self.freq_shift,
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
        Ok(candle_nn::ops::silu(&emb)?)
    }

    /// The down blocks from conv_in's output: the last state and every skip (conv_in's output
    /// first), as diffusers' `down_block_res_samples`.
    pub fn down(&self, xs: Tensor, inp: &BlockInputs<'_>) -> Result<(Tensor, Vec<Tensor>)> {
        let mut xs = xs;
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(&xs, inp)?;
            xs = out;
            skips.extend(states);
        }
        Ok((xs, skips))
    }

    pub fn mid(&self, xs: Tensor, inp: &BlockInputs<'_>) -> Result<Tensor> {
        Ok(match &self.mid_block {
            Some(mid) => mid.forward(&xs, inp)?,
            None => xs,
        })
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
            self.flip_sin_to_cos,
            self.freq_shift,
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
