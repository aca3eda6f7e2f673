//! The VAE's encoder and decoder (diffusers' `Encoder` / `Decoder` with DownEncoderBlock2D,
//! UpDecoderBlock2D and UNetMidBlock2D), built on the UNet's resnets and resamplers.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::engines::nn::kernels::{Conv2d, GroupNorm, Kernels};

use crate::engines::nn::attention::{AttentionMode, attention_watched};
use crate::engines::nn::norm;
use crate::engines::progress::CancelToken;
use crate::engines::sd::config::VaeConfig;
use crate::engines::sd::unet::resnet::{
    Downsample2D, ResnetBlock2D, ResnetConfig, Upsample2D, conv, norm_silu,
};

/// diffusers builds every VAE resnet and norm with eps 1e-6.
const EPS: f64 = 1e-6;

fn resnet_config(c: &VaeConfig, kernels: Kernels) -> ResnetConfig {
    ResnetConfig {
        groups: c.norm_num_groups,
        eps: EPS,
        temb_channels: None,
        output_scale_factor: 1.0,
        kernels,
    }
}

/// Single-head self-attention over all pixels, with a residual (the mid block's attention).
#[derive(Debug)]
struct SpatialSelfAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    kernels: Kernels,
}

impl SpatialSelfAttention {
    fn new(vb: VarBuilder, channels: usize, groups: usize, kernels: Kernels) -> Result<Self> {
        // Checkpoints saved before diffusers 0.14 name these query/key/value/proj_attn.
        let legacy = !vb.contains_tensor("to_q.weight") && vb.contains_tensor("query.weight");
        let name = |new: &'static str, old: &'static str| if legacy { old } else { new };
        let lin = |n: &str| candle_nn::linear(channels, channels, vb.pp(n));
        Ok(Self {
            group_norm: norm::group_norm(groups, channels, EPS, vb.pp("group_norm"), kernels)?,
            to_q: lin(name("to_q", "query"))?,
            to_k: lin(name("to_k", "key"))?,
            to_v: lin(name("to_v", "value"))?,
            to_out: lin(name("to_out.0", "proj_attn"))?,
            kernels,
        })
    }

    fn forward(&self, xs: &Tensor, mode: AttentionMode, cancel: &CancelToken) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let tokens = self
            .group_norm
            .forward(xs)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.to_q.forward(&tokens)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        // diffusers sets upcast_softmax for the VAE's attention.
        let fast = self.kernels.fast();
        let out = self
            .to_out
            .forward(&attention_watched(&q, &k, &v, 1, true, mode, fast, cancel)?)?;
        let out = out.transpose(1, 2)?.contiguous()?.reshape((b, c, h, w))?;
        out + xs
    }
}

#[derive(Debug)]
struct MidBlock {
    resnet_in: ResnetBlock2D,
    attention: Option<SpatialSelfAttention>,
    resnet_out: ResnetBlock2D,
}

impl MidBlock {
    fn new(vb: VarBuilder, channels: usize, c: &VaeConfig, kernels: Kernels) -> Result<Self> {
        let rc = resnet_config(c, kernels);
        let attention = if c.mid_block_add_attention {
            Some(SpatialSelfAttention::new(
                vb.pp("attentions.0"),
                channels,
                c.norm_num_groups,
                kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnet_in: ResnetBlock2D::new(vb.pp("resnets.0"), channels, channels, rc)?,
            attention,
            resnet_out: ResnetBlock2D::new(vb.pp("resnets.1"), channels, channels, rc)?,
        })
    }

    fn forward(&self, xs: &Tensor, mode: AttentionMode, cancel: &CancelToken) -> Result<Tensor> {
        cancel.check()?;
        let mut xs = self.resnet_in.forward(xs, None)?;
        if let Some(attn) = &self.attention {
            xs = attn.forward(&xs, mode, cancel)?;
        }
        cancel.check()?;
        self.resnet_out.forward(&xs, None)
    }
}

#[derive(Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<(Vec<ResnetBlock2D>, Option<Downsample2D>)>,
    mid: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    pub fn new(vb: VarBuilder, c: &VaeConfig, kernels: Kernels) -> Result<Self> {
        let ch = &c.block_out_channels;
        let last = ch.len() - 1;
        let mut down = Vec::with_capacity(ch.len());
        for (i, &out_c) in ch.iter().enumerate() {
            let vbi = vb.pp(format!("down_blocks.{i}"));
            let in_c = if i == 0 { ch[0] } else { ch[i - 1] };
            let resnets = (0..c.layers_per_block)
                .map(|j| {
                    let rin = if j == 0 { in_c } else { out_c };
                    ResnetBlock2D::new(
                        vbi.pp(format!("resnets.{j}")),
                        rin,
                        out_c,
                        resnet_config(c, kernels),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let downsampler = if i < last {
                Some(Downsample2D::new(
                    vbi.pp("downsamplers.0"),
                    out_c,
                    0,
                    kernels,
                )?)
            } else {
                None
            };
            down.push((resnets, downsampler));
        }
        Ok(Self {
            conv_in: conv(vb.pp("conv_in"), c.in_channels, ch[0], 3, 1, 1, kernels)?,
            down,
            mid: MidBlock::new(vb.pp("mid_block"), ch[last], c, kernels)?,
            conv_norm_out: norm::group_norm(
                c.norm_num_groups,
                ch[last],
                EPS,
                vb.pp("conv_norm_out"),
                kernels,
            )?,
            conv_out: conv(
                vb.pp("conv_out"),
                ch[last],
                2 * c.latent_channels,
                3,
                1,
                1,
                kernels,
            )?,
        })
    }

    /// Checks `cancel` before every block: at 8192x8192 one resnet takes seconds.
    pub fn forward(
        &self,
        xs: &Tensor,
        mode: AttentionMode,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let mut xs = self.conv_in.forward(xs)?;
        for (resnets, downsampler) in &self.down {
            for r in resnets {
                cancel.check()?;
                xs = r.forward(&xs, None)?;
            }
            if let Some(d) = downsampler {
                cancel.check()?;
                xs = d.forward(&xs)?;
            }
        }
        let xs = self.mid.forward(&xs, mode, cancel)?;
        cancel.check()?;
        self.conv_out.forward(&norm_silu(&self.conv_norm_out, &xs)?)
    }
}

#[derive(Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<(Vec<ResnetBlock2D>, Option<Upsample2D>)>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    pub fn new(vb: VarBuilder, c: &VaeConfig, kernels: Kernels) -> Result<Self> {
        let ch = &c.block_out_channels;
        let last = ch.len() - 1;
        let mut up = Vec::with_capacity(ch.len());
        let mut prev = ch[last];
        for i in 0..ch.len() {
            let vbi = vb.pp(format!("up_blocks.{i}"));
            let out_c = ch[last - i];
            let resnets = (0..=c.layers_per_block)
                .map(|j| {
                    let rin = if j == 0 { prev } else { out_c };
                    ResnetBlock2D::new(
                        vbi.pp(format!("resnets.{j}")),
                        rin,
                        out_c,
                        resnet_config(c, kernels),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let upsampler = if i < last {
                Some(Upsample2D::new(vbi.pp("upsamplers.0"), out_c, kernels)?)
            } else {
                None
            };
            up.push((resnets, upsampler));
            prev = out_c;
        }
        Ok(Self {
            conv_in: conv(
                vb.pp("conv_in"),
                c.latent_channels,
                ch[last],
                3,
                1,
                1,
                kernels,
            )?,
            mid: MidBlock::new(vb.pp("mid_block"), ch[last], c, kernels)?,
            up,
            conv_norm_out: norm::group_norm(
                c.norm_num_groups,
                ch[0],
                EPS,
                vb.pp("conv_norm_out"),
                kernels,
            )?,
            conv_out: conv(vb.pp("conv_out"), ch[0], c.out_channels, 3, 1, 1, kernels)?,
        })
    }

    /// Checks `cancel` before every block: at 2048x2048 one resnet takes seconds.
    pub fn forward(
        &self,
        xs: &Tensor,
        mode: AttentionMode,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let xs = self.conv_in.forward(xs)?;
        let mut xs = self.mid.forward(&xs, mode, cancel)?;
        for (resnets, upsampler) in &self.up {
            for r in resnets {
                cancel.check()?;
                xs = r.forward(&xs, None)?;
            }
            if let Some(u) = upsampler {
                cancel.check()?;
                xs = u.forward(&xs, None)?;
            }
        }
        cancel.check()?;
        self.conv_out.forward(&norm_silu(&self.conv_norm_out, &xs)?)
    }
}
