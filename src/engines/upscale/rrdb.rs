//! ESRGAN's RRDBNet as BasicSR and Real-ESRGAN define it (`basicsr/archs/rrdbnet_arch.py`):
//! pixel-unshuffle for the x2 / x1 models, a trunk of residual-in-residual dense blocks, 2x
//! nearest upsamplings each with a conv, then conv_hr and conv_last.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::detect::RrdbShape;
use super::layers::{Conv, conv, lrelu};
use crate::engines::CancelToken;
use crate::engines::nn::kernels::{Kernels, upsample_nearest2d};

#[path = "rrdb_cpu.rs"]
mod cpu;

struct DenseBlock {
    convs: [Conv; 5],
}

impl DenseBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut feats = vec![x.clone()];
        for c in &self.convs[..4] {
            let input = Tensor::cat(&feats, 1)?;
            feats.push(lrelu(&c.forward(&input)?)?);
        }
        let x5 = self.convs[4].forward(&Tensor::cat(&feats, 1)?)?;
        (x5 * 0.2)? + x
    }
}

struct Rrdb {
    blocks: [DenseBlock; 3],
}

impl Rrdb {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut out = x.clone();
        for b in &self.blocks {
            out = b.forward(&out)?;
        }
        (out * 0.2)? + x
    }
}

pub struct RrdbNet {
    shape: RrdbShape,
    conv_first: Conv,
    body: Vec<Rrdb>,
    conv_body: Conv,
    ups: Vec<Conv>,
    conv_hr: Conv,
    conv_last: Conv,
    kernels: Kernels,
}

impl RrdbNet {
    pub fn new(shape: RrdbShape, t: &HashMap<String, Tensor>, kernels: Kernels) -> Result<Self> {
        let c = |name: &str| conv(t, name, kernels);
        let dense = |n: usize, k: usize| -> Result<DenseBlock> {
            let p = format!("body.{n}.rdb{k}");
            Ok(DenseBlock {
                convs: [
                    c(&format!("{p}.conv1"))?,
                    c(&format!("{p}.conv2"))?,
                    c(&format!("{p}.conv3"))?,
                    c(&format!("{p}.conv4"))?,
                    c(&format!("{p}.conv5"))?,
                ],
            })
        };
        let body = (0..shape.blocks)
            .map(|n| {
                Ok(Rrdb {
                    blocks: [dense(n, 1)?, dense(n, 2)?, dense(n, 3)?],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ups = (1..=shape.upsamples)
            .map(|i| c(&format!("conv_up{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv_first: c("conv_first")?,
            body,
            conv_body: c("conv_body")?,
            ups,
            conv_hr: c("conv_hr")?,
            conv_last: c("conv_last")?,
            kernels,
            shape,
        })
    }

    /// `x` (1, 3, h, w) in 0..1, sides a multiple of the unshuffle -> (1, 3, h*s, w*s), unclamped.
    /// One image in f32 on the CPU with our kernels runs `forward_cpu` (no concatenations, the
    /// element-wise work fused into the convolutions); anything else the tensor ops.
    pub fn forward(&self, x: &Tensor, cancel: &CancelToken) -> Result<Tensor> {
        if self.kernels.fast()
            && x.device().is_cpu()
            && x.dtype() == candle_core::DType::F32
            && x.dim(0)? == 1
        {
            return self.forward_cpu(x, cancel);
        }
        self.forward_tensors(x, cancel)
    }

    /// The network as tensor ops (CUDA, other dtypes, batches, candle's kernels).
    fn forward_tensors(&self, x: &Tensor, cancel: &CancelToken) -> Result<Tensor> {
        let feat = match self.shape.unshuffle {
            1 => x.clone(),
            r => candle_nn::ops::pixel_unshuffle(x, r)?,
        };
        let feat = self.conv_first.forward(&feat)?;
        let mut trunk = feat.clone();
        for block in &self.body {
            cancel.check()?;
            trunk = block.forward(&trunk)?;
        }
        let mut feat = (feat + self.conv_body.forward(&trunk)?)?;
        for up in &self.ups {
            let (_, _, h, w) = feat.dims4()?;
            let big = upsample_nearest2d(&feat, h * 2, w * 2, self.kernels.fast())?;
            drop(feat);
            feat = lrelu(&up.forward(&big)?)?;
        }
        let feat = lrelu(&self.conv_hr.forward(&feat)?)?;
        self.conv_last.forward(&feat)
    }
}

#[cfg(test)]
#[path = "rrdb_tests.rs"]
mod tests;
