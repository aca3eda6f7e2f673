//! The UNet's down, mid and up blocks (diffusers' CrossAttnDownBlock2D / DownBlock2D,
//! UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D): resnets, optional spatial
//! transformers after each, and a resampler.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::probe::Probe;
use super::resnet::{Downsample2D, ResnetBlock2D, ResnetConfig, Upsample2D};
use super::transformer::{Transformer2D, TransformerConfig};
use crate::engines::nn::attention::AttentionMode;
use crate::engines::progress::CancelToken;

/// What one block's forward needs besides its input.
pub struct BlockInputs<'a> {
    /// SiLU of the time embedding.
    pub temb_silu: &'a Tensor,
    pub context: &'a Tensor,
    pub mode: AttentionMode,
    pub probe: &'a Probe,
    /// Checked before every resnet and transformer (one of them can take seconds at 2048x2048).
    pub cancel: &'a CancelToken,
}

#[derive(Debug)]
pub struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    downsampler: Option<Downsample2D>,
}

pub struct DownSpec {
    pub in_c: usize,
    pub out_c: usize,
    pub layers: usize,
    pub resnet: ResnetConfig,
    /// Present for CrossAttnDownBlock2D.
    pub transformer: Option<TransformerConfig>,
    pub add_downsample: bool,
    pub downsample_padding: usize,
}

impl DownBlock {
    pub fn new(vb: VarBuilder, s: &DownSpec) -> Result<Self> {
        let mut resnets = Vec::with_capacity(s.layers);
        let mut attentions = Vec::new();
        for i in 0..s.layers {
            let in_c = if i == 0 { s.in_c } else { s.out_c };
            resnets.push(ResnetBlock2D::new(
                vb.pp(format!("resnets.{i}")),
                in_c,
                s.out_c,
                s.resnet,
            )?);
            if let Some(t) = &s.transformer {
                attentions.push(Transformer2D::new(
                    vb.pp(format!("attentions.{i}")),
                    s.out_c,
                    t,
                )?);
            }
        }
        let downsampler = if s.add_downsample {
            Some(Downsample2D::new(
                vb.pp("downsamplers.0"),
                s.out_c,
                s.downsample_padding,
                s.resnet.kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            downsampler,
        })
    }

    /// Returns the output and the states the up path takes as skip connections.
    pub fn forward(&self, xs: &Tensor, inp: &BlockInputs) -> Result<(Tensor, Vec<Tensor>)> {
        let mut xs = xs.clone();
        let mut states = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            inp.cancel.check()?;
            xs = inp
                .probe
                .time("resnet", || resnet.forward(&xs, Some(inp.temb_silu)))?;
            if let Some(attn) = self.attentions.get(i) {
                inp.cancel.check()?;
                xs = attn.forward(&xs, inp)?;
            }
            states.push(xs.clone());
        }
        if let Some(down) = &self.downsampler {
            xs = inp.probe.time("downsample", || down.forward(&xs))?;
            states.push(xs.clone());
        }
        Ok((xs, states))
    }
}

#[derive(Debug)]
pub struct MidBlock {
    first: ResnetBlock2D,
    layers: Vec<(Transformer2D, ResnetBlock2D)>,
}

impl MidBlock {
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        resnet: ResnetConfig,
        transformer: &TransformerConfig,
    ) -> Result<Self> {
        let first = ResnetBlock2D::new(vb.pp("resnets.0"), channels, channels, resnet)?;
        // diffusers' UNetMidBlock2DCrossAttn has num_layers = 1 in UNet2DConditionModel.
        let layers = vec![(
            Transformer2D::new(vb.pp("attentions.0"), channels, transformer)?,
            ResnetBlock2D::new(vb.pp("resnets.1"), channels, channels, resnet)?,
        )];
        Ok(Self { first, layers })
    }

    pub fn forward(&self, xs: &Tensor, inp: &BlockInputs) -> Result<Tensor> {
        let mut xs = inp
            .probe
            .time("resnet", || self.first.forward(xs, Some(inp.temb_silu)))?;
        for (attn, resnet) in &self.layers {
            inp.cancel.check()?;
            xs = attn.forward(&xs, inp)?;
            inp.cancel.check()?;
            xs = inp
                .probe
                .time("resnet", || resnet.forward(&xs, Some(inp.temb_silu)))?;
        }
        Ok(xs)
    }
}

#[derive(Debug)]
pub struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    upsampler: Option<Upsample2D>,
}

pub struct UpSpec {
    /// Channels of the block's own output (`output_channel`).
    pub out_c: usize,
    /// Channels coming from the previous up block (or the mid block).
    pub prev_out_c: usize,
    /// Channels of the matching down block's input (`input_channel`), the last skip's width.
    pub in_c: usize,
    pub layers: usize,
    pub resnet: ResnetConfig,
    pub transformer: Option<TransformerConfig>,
    pub add_upsample: bool,
}

impl UpBlock {
    pub fn new(vb: VarBuilder, s: &UpSpec) -> Result<Self> {
        let mut resnets = Vec::with_capacity(s.layers);
        let mut attentions = Vec::new();
        for i in 0..s.layers {
            let skip_c = if i == s.layers - 1 { s.in_c } else { s.out_c };
            let resnet_in = if i == 0 { s.prev_out_c } else { s.out_c };
            resnets.push(ResnetBlock2D::new(
                vb.pp(format!("resnets.{i}")),
                resnet_in + skip_c,
                s.out_c,
                s.resnet,
            )?);
            if let Some(t) = &s.transformer {
                attentions.push(Transformer2D::new(
                    vb.pp(format!("attentions.{i}")),
                    s.out_c,
                    t,
                )?);
            }
        }
        let upsampler = if s.add_upsample {
            Some(Upsample2D::new(
                vb.pp("upsamplers.0"),
                s.out_c,
                s.resnet.kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            upsampler,
        })
    }

    pub fn num_resnets(&self) -> usize {
        self.resnets.len()
    }

    /// `skips` are this block's skip connections in the order they were produced (the last one
    /// is consumed first); `upsample_size` is the spatial size of the next block's skips.
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &[Tensor],
        inp: &BlockInputs,
        upsample_size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = &skips[skips.len() - 1 - i];
            inp.cancel.check()?;
            xs = inp
                .probe
                .time("skip_cat", || Tensor::cat(&[&xs, skip], 1))?;
            xs = inp
                .probe
                .time("resnet", || resnet.forward(&xs, Some(inp.temb_silu)))?;
            if let Some(attn) = self.attentions.get(i) {
                inp.cancel.check()?;
                xs = attn.forward(&xs, inp)?;
            }
        }
        match &self.upsampler {
            Some(up) => inp
                .probe
                .time("upsample", || up.forward(&xs, upsample_size)),
            None => Ok(xs),
        }
    }
}
