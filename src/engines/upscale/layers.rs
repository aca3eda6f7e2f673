//! The few layers Real-ESRGAN's networks use, over this crate's conv kernels.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use candle_nn::Conv2dConfig;

use crate::engines::nn::kernels::{Conv2d, Epilogue, Kernels};

/// A 3x3, stride-1, padding-1 convolution with bias.
pub struct Conv {
    inner: Conv2d,
    fast: bool,
}

impl Conv {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward_with(x, self.fast)
    }

    /// One image (c_in, h, w) on the CPU in f32 into `out` (c_out, h, w), `epilogue` fused.
    pub fn forward_into(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        out: &mut [f32],
        epilogue: Epilogue,
    ) -> Result<()> {
        self.inner.forward_into_cpu(x, h, w, out, epilogue)
    }

    pub fn out_channels(&self) -> Result<usize> {
        self.inner.weight().dim(0)
    }
}

pub fn conv(t: &HashMap<String, Tensor>, name: &str, kernels: Kernels) -> Result<Conv> {
    let get = |leaf: &str| {
        t.get(&format!("{name}.{leaf}"))
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}.{leaf}` is missing")))
    };
    let cfg = Conv2dConfig {
        padding: 1,
        ..Conv2dConfig::default()
    };
    let plain = candle_nn::Conv2d::new(get("weight")?.contiguous()?, Some(get("bias")?), cfg);
    Ok(Conv {
        inner: Conv2d::from_candle(plain, kernels),
        fast: kernels.fast(),
    })
}

/// LeakyReLU(0.2), as both networks' BasicSR code.
pub fn lrelu(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::leaky_relu(x, 0.2)
}

/// PReLU with one slope per channel (`w`: (c,)).
pub fn prelu(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let c = w.dim(0)?;
    let w = w.reshape((1, c, 1, 1))?;
    let zeros = x.zeros_like()?;
    x.maximum(&zeros)? + x.minimum(&zeros)?.broadcast_mul(&w)?
}
