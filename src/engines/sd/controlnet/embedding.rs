//! diffusers' ControlNetConditioningEmbedding: the control image (b, 3, H, W) in [0, 1] down to
//! the latent size in 3x3 convolutions with SiLU, three of them of stride 2.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::engines::nn::kernels::{Conv2d, Kernels};
use crate::engines::sd::unet::resnet::conv;

#[derive(Debug)]
pub struct CondEmbedding {
    conv_in: Conv2d,
    blocks: Vec<Conv2d>,
    conv_out: Conv2d,
}

impl CondEmbedding {
    pub fn new(
        vb: VarBuilder,
        in_c: usize,
        channels: &[usize],
        out_c: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        let first = channels.first().copied().unwrap_or(16);
        let conv_in = conv(vb.pp("conv_in"), in_c, first, 3, 1, 1, kernels)?;
        let mut blocks = Vec::new();
        for (i, w) in channels.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            blocks.push(conv(
                vb.pp(format!("blocks.{}", 2 * i)),
                a,
                a,
                3,
                1,
                1,
                kernels,
            )?);
            blocks.push(conv(
                vb.pp(format!("blocks.{}", 2 * i + 1)),
                a,
                b,
                3,
                2,
                1,
                kernels,
            )?);
        }
        let last = channels.last().copied().unwrap_or(first);
        let conv_out = conv(vb.pp("conv_out"), last, out_c, 3, 1, 1, kernels)?;
        Ok(Self {
            conv_in,
            blocks,
            conv_out,
        })
    }
}

impl Module for CondEmbedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = candle_nn::ops::silu(&self.conv_in.forward(xs)?)?;
        for block in &self.blocks {
            xs = candle_nn::ops::silu(&block.forward(&xs)?)?;
        }
        self.conv_out.forward(&xs)
    }
}
