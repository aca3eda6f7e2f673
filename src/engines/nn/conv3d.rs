//! 3D convolution (candle 0.11 has none): PyTorch's `conv3d` as a sum over the temporal kernel
//! taps of 2D convolutions. For tap `kt` the frames `t * stride_t + kt * dilation_t` of the
//! (time-padded) input are folded into the batch and convolved with `weight[:, :, kt]` by the
//! crate's conv2d (`kernels::Conv2d`: our CPU/CUDA kernels, candle's conv2d elsewhere, so Metal
//! works too); the taps' outputs are summed in f32. Memory: one tap's input frames and output
//! plus the running sum, never an im2col over time.
//!
//! Spatial stride and dilation must be the same in height and width (candle's conv2d takes one of
//! each); spatial padding may differ. Groups go to conv2d as they are.

use candle_core::{DType, Result, Tensor};
use candle_nn::Conv2dConfig;
use candle_nn::VarBuilder;

use super::kernels::{Conv2d, Kernels};

/// PyTorch's `nn.Conv3d` arguments, each (time, height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv3dConfig {
    pub padding: [usize; 3],
    pub stride: [usize; 3],
    pub dilation: [usize; 3],
    pub groups: usize,
}

impl Default for Conv3dConfig {
    fn default() -> Self {
        Self {
            padding: [0; 3],
            stride: [1; 3],
            dilation: [1; 3],
            groups: 1,
        }
    }
}

/// A 3D convolution: weight (out, in / groups, kt, kh, kw), optional bias (out).
#[derive(Debug, Clone)]
pub struct Conv3d {
    /// One conv2d per temporal tap; the bias rides on none of them (added once at the end).
    taps: Vec<Conv2d>,
    bias: Option<Tensor>,
    cfg: Conv3dConfig,
    /// Explicit spatial zero padding (top/bottom, left/right) when height and width differ.
    pad_hw: Option<(usize, usize)>,
    kernels: Kernels,
    out_channels: usize,
}

fn msg(text: String) -> candle_core::Error {
    candle_core::Error::Msg(text)
}

impl Conv3d {
    /// From a weight (out, in / groups, kt, kh, kw) and an optional bias (out).
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        cfg: Conv3dConfig,
        kernels: Kernels,
    ) -> Result<Self> {
        let (out_c, _, kt, _, _) = weight.dims5()?;
        let [_, sh, sw] = cfg.stride;
        let [_, dh, dw] = cfg.dilation;
        if sh != sw || dh != dw {
            return Err(msg(format!(
                "conv3d: spatial stride ({sh}, {sw}) and dilation ({dh}, {dw}) must be the same \
                 in height and width"
            )));
        }
        if cfg.stride.contains(&0) || cfg.dilation.contains(&0) || cfg.groups == 0 {
            return Err(msg(format!(
                "conv3d: stride, dilation and groups must be >= 1: {cfg:?}"
            )));
        }
        let [_, ph, pw] = cfg.padding;
        let (pad2d, pad_hw) = if ph == pw {
            (ph, None)
        } else {
            (0, Some((ph, pw)))
        };
        let conv_cfg = Conv2dConfig {
            padding: pad2d,
            stride: sh,
            dilation: dh,
            groups: cfg.groups,
            cudnn_fwd_algo: None,
        };
        let mut taps = Vec::with_capacity(kt);
        for k in 0..kt {
            let w = weight.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
            taps.push(Conv2d::from_candle(
                candle_nn::Conv2d::new(w, None, conv_cfg),
                kernels,
            ));
        }
        Ok(Self {
            taps,
            bias,
            cfg,
            pad_hw,
            kernels,
            out_channels: out_c,
        })
    }

    /// `weight` and `bias` under `vb`, as PyTorch's `nn.Conv3d` names them.
    pub fn load(
        in_c: usize,
        out_c: usize,
        kernel: [usize; 3],
        cfg: Conv3dConfig,
        bias: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let [kt, kh, kw] = kernel;
        let weight = vb.get((out_c, in_c / cfg.groups.max(1), kt, kh, kw), "weight")?;
        let bias = if bias {
            Some(vb.get(out_c, "bias")?)
        } else {
            None
        };
        Self::new(weight, bias, cfg, kernels)
    }

    pub fn config(&self) -> &Conv3dConfig {
        &self.cfg
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The temporal kernel size.
    pub fn kernel_t(&self) -> usize {
        self.taps.len()
    }

    /// x: (batch, channels, time, height, width) → (batch, out, time', height', width').
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [pt, _, _] = self.cfg.padding;
        let [st, _, _] = self.cfg.stride;
        let [dt, _, _] = self.cfg.dilation;
        let mut x = x.clone();
        if pt > 0 {
            x = x.pad_with_zeros(2, pt, pt)?;
        }
        if let Some((ph, pw)) = self.pad_hw {
            x = x.pad_with_zeros(3, ph, ph)?.pad_with_zeros(4, pw, pw)?;
        }
        let (b, c, tp, h, w) = x.dims5()?;
        let span = dt * (self.taps.len() - 1) + 1;
        if tp < span {
            return Err(msg(format!(
                "conv3d: {tp} padded frames are fewer than the temporal kernel's span {span}"
            )));
        }
        let t_out = (tp - span) / st + 1;
        // (B, T, C, H, W): frames as rows, so a tap's frames are a narrow or an index_select.
        let xt = x.permute((0, 2, 1, 3, 4))?.contiguous()?;
        let wide = matches!(x.dtype(), DType::F16 | DType::BF16);
        let mut acc: Option<Tensor> = None;
        for (k, tap) in self.taps.iter().enumerate() {
            let first = k * dt;
            let frames = if st == 1 {
                xt.narrow(1, first, t_out)?
            } else {
                let idx: Vec<u32> = (0..t_out).map(|t| (t * st + first) as u32).collect();
                let idx = Tensor::new(idx.as_slice(), x.device())?;
                xt.index_select(&idx, 1)?
            };
            let frames = frames.contiguous()?.reshape((b * t_out, c, h, w))?;
            let y = tap.forward_with(&frames, self.kernels.fast())?;
            let y = if wide { y.to_dtype(DType::F32)? } else { y };
            acc = Some(match acc {
                None => y,
                Some(a) => (a + y)?,
            });
        }
        let acc = acc.ok_or_else(|| msg("conv3d: a weight with no temporal taps".into()))?;
        let acc = match &self.bias {
            Some(bias) => acc.broadcast_add(&bias.to_dtype(acc.dtype())?.reshape((
                1,
                self.out_channels,
                1,
                1,
            ))?)?,
            None => acc,
        };
        let acc = acc.to_dtype(x.dtype())?;
        let (_, o, ho, wo) = acc.dims4()?;
        acc.reshape((b, t_out, o, ho, wo))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()
    }
}

/// A naive conv3d (loops over output frames and every tap, `narrow` and conv2d per pair,
/// PyTorch's semantics spelled out): the unit tests' second opinion on `Conv3d`.
#[cfg(test)]
pub(crate) fn conv3d_naive(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv3dConfig,
) -> Result<Tensor> {
    let [pt, ph, pw] = cfg.padding;
    let [st, ss, _] = cfg.stride;
    let [dt, ds, _] = cfg.dilation;
    let x = x
        .pad_with_zeros(2, pt, pt)?
        .pad_with_zeros(3, ph, ph)?
        .pad_with_zeros(4, pw, pw)?;
    let (_, _, tp, _, _) = x.dims5()?;
    let kt = weight.dim(2)?;
    let t_out = (tp - dt * (kt - 1) - 1) / st + 1;
    let mut frames = Vec::with_capacity(t_out);
    for t in 0..t_out {
        let mut sum: Option<Tensor> = None;
        for k in 0..kt {
            let xf = x.narrow(2, t * st + k * dt, 1)?.squeeze(2)?.contiguous()?;
            let wk = weight.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
            let y = xf.conv2d(&wk, 0, ss, ds, cfg.groups)?;
            sum = Some(match sum {
                None => y,
                Some(s) => (s + y)?,
            });
        }
        let mut y = sum.ok_or_else(|| msg("no taps".into()))?;
        if let Some(bias) = bias {
            y = y.broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
        }
        frames.push(y.unsqueeze(2)?);
    }
    Tensor::cat(&frames, 2)
}

#[cfg(test)]
#[path = "conv3d_tests.rs"]
mod tests;
