//! Real-ESRGAN's SRVGGNetCompact (`realesrgan/archs/srvgg_arch.py`): 3x3 convs with PReLU, a
//! last conv to channels x scale², pixel-shuffle, plus the nearest-upsampled input.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::detect::CompactShape;
use super::layers::{Conv, conv, prelu};
use crate::engines::CancelToken;
use crate::engines::nn::kernels::Kernels;

pub struct CompactNet {
    shape: CompactShape,
    /// Every conv but the last, each followed by its PReLU slopes.
    layers: Vec<(Conv, Tensor)>,
    last: Conv,
}

impl CompactNet {
    pub fn new(shape: CompactShape, t: &HashMap<String, Tensor>, kernels: Kernels) -> Result<Self> {
        let layers = (0..=shape.convs)
            .map(|i| {
                let slopes = t.get(&format!("body.{}.weight", 2 * i + 1)).cloned();
                let slopes = slopes.ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "tensor `body.{}.weight` is missing",
                        2 * i + 1
                    ))
                })?;
                Ok((conv(t, &format!("body.{}", 2 * i), kernels)?, slopes))
            })
            .collect::<Result<Vec<_>>>()?;
        let last = conv(t, &format!("body.{}", 2 * (shape.convs + 1)), kernels)?;
        Ok(Self {
            shape,
            layers,
            last,
        })
    }

    /// `x` (1, c, h, w) in 0..1 -> (1, c, h*s, w*s), unclamped.
    pub fn forward(&self, x: &Tensor, cancel: &CancelToken) -> Result<Tensor> {
        let mut out = x.clone();
        for (c, slopes) in &self.layers {
            cancel.check()?;
            out = prelu(&c.forward(&out)?, slopes)?;
        }
        let s = self.shape.scale;
        let out = candle_nn::ops::pixel_shuffle(&self.last.forward(&out)?, s)?;
        let (_, _, h, w) = x.dims4()?;
        out + x.upsample_nearest2d(h * s, w * s)?
    }
}
