//! Conv2d for the CPU in f32 without candle's per-call weight repacking: 1x1 stride-1
//! convolutions are one batched matmul on the NCHW activation as it is; kxk ones build an
//! im2col matrix in the weight's own (c_in, ky, kx) row order with whole-row copies, then one
//! matmul per batch element. Other devices, dtypes, groups or dilations use candle's conv2d.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::threads::par_chunks_mut;

#[derive(Debug, Clone)]
pub struct Conv2d {
    plain: candle_nn::Conv2d,
    kernels: super::Kernels,
}

/// Same weight names and init as `candle_nn::conv2d`; `kernels` picks the implementation.
pub fn conv2d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
    kernels: super::Kernels,
) -> Result<Conv2d> {
    Ok(Conv2d {
        plain: candle_nn::conv2d(in_c, out_c, kernel, cfg, vb)?,
        kernels,
    })
}

impl Conv2d {
    pub fn from_candle(plain: candle_nn::Conv2d, kernels: super::Kernels) -> Self {
        Self { plain, kernels }
    }

    pub fn weight(&self) -> &Tensor {
        self.plain.weight()
    }

    /// Whether our kernels can take this call: groups 1, dilation 1, a contiguous weight of the
    /// input's type; on the CPU in f32, on CUDA in f32/f16/bf16.
    fn fast_path_applies(&self, xs: &Tensor) -> bool {
        let c = self.plain.config();
        let w = self.plain.weight();
        let dtype_ok = match xs.device() {
            candle_core::Device::Cpu => xs.dtype() == DType::F32,
            candle_core::Device::Cuda(_) => {
                matches!(xs.dtype(), DType::F32 | DType::F16 | DType::BF16)
            }
            _ => false,
        };
        dtype_ok
            && w.dtype() == xs.dtype()
            && xs.rank() == 4
            && c.groups == 1
            && c.dilation == 1
            && w.is_contiguous()
    }

    /// The layer with (`fast`) or without (candle's conv2d) this crate's kernels.
    pub fn forward_with(&self, xs: &Tensor, fast: bool) -> Result<Tensor> {
        if !fast || !self.fast_path_applies(xs) {
            return self.plain.forward(xs);
        }
        if xs.device().is_cuda() {
            return self.forward_cuda(xs);
        }
        self.forward_cpu(xs)
    }

    #[cfg(feature = "cuda")]
    fn forward_cuda(&self, xs: &Tensor) -> Result<Tensor> {
        let c = self.plain.config();
        let op = super::cuda::Conv2dOp {
            stride: c.stride,
            padding: c.padding,
            cudnn: self.kernels.cudnn_conv(),
        };
        let xs = xs.contiguous()?;
        match self.plain.bias() {
            Some(bias) => xs.apply_op3_no_bwd(self.plain.weight(), bias, &op),
            None => xs.apply_op2_no_bwd(self.plain.weight(), &op),
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn forward_cuda(&self, xs: &Tensor) -> Result<Tensor> {
        self.plain.forward(xs)
    }

    fn forward_cpu(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_cpu_banded(xs, COL_BAND_BYTES)
    }

    /// The CPU path with im2col bands of at most `band_bytes` (at least one output row).
    fn forward_cpu_banded(&self, xs: &Tensor, band_bytes: usize) -> Result<Tensor> {
        let c = self.plain.config();
        let (b, c_in, h, w) = xs.dims4()?;
        let (c_out, k_in, kh, kw) = self.plain.weight().dims4()?;
        if k_in != c_in {
            return self.plain.forward(xs);
        }
        let oh = (h + 2 * c.padding - kh) / c.stride + 1;
        let ow = (w + 2 * c.padding - kw) / c.stride + 1;
        let k = c_in * kh * kw;
        let weight = self.plain.weight().reshape((1, c_out, k))?;
        let weight = weight.broadcast_as((b, c_out, k))?;
        let out = if kh == 1 && kw == 1 && c.stride == 1 && c.padding == 0 {
            weight.matmul(&xs.reshape((b, c_in, h * w))?)?
        } else {
            // The column matrix is built a band of output rows at a time, so it stays a few
            // MiB instead of k*oh*ow floats (1.2 GB for a 128-channel 3x3 conv at 512x512).
            let xs = xs.contiguous()?;
            let band = (band_bytes / (b * k * ow * 4).max(1)).clamp(1, oh);
            let mut bands = Vec::with_capacity(oh.div_ceil(band));
            let mut row0 = 0;
            while row0 < oh {
                let rows = band.min(oh - row0);
                let cols = xs.apply_op1_no_bwd(&Im2Col {
                    kh,
                    kw,
                    stride: c.stride,
                    padding: c.padding,
                    row0,
                    rows,
                })?;
                bands.push(weight.matmul(&cols)?);
                row0 += rows;
            }
            if bands.len() == 1 {
                bands.remove(0)
            } else {
                Tensor::cat(&bands, 2)?
            }
        };
        let out = match self.plain.bias() {
            Some(bias) => out.broadcast_add(&bias.reshape((1, c_out, 1))?)?,
            None => out,
        };
        out.reshape((b, c_out, oh, ow))
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, self.kernels.fast())
    }
}

/// Most bytes of im2col columns built at once (all batch elements together); the memory
/// planner counts the same figure.
pub const COL_BAND_BYTES: usize = 32 << 20;

/// The CUDA convolution's im2col workspace: at most this many bytes (whole batch elements while
/// they fit, else spatial chunks of at least 8 positions). Used by `cuda/conv.rs` and the planner.
pub const CUDA_COL_BUDGET_BYTES: usize = 128 << 20;

/// (b, c, h, w) -> (b, c*kh*kw, rows*ow) with zero padding: the columns of output rows
/// `row0..row0 + rows`.
struct Im2Col {
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    row0: usize,
    rows: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-rows"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("im2col takes f32");
        };
        let (b, c, h, w) = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("im2col takes a contiguous input");
        };
        let x = &data[start..end];
        let (kh, kw, st, pad) = (self.kh, self.kw, self.stride, self.padding);
        let oh = (h + 2 * pad - kh) / st + 1;
        let ow = (w + 2 * pad - kw) / st + 1;
        let rows_per_channel = kh * kw;
        if self.row0 + self.rows > oh {
            candle_core::bail!(
                "im2col rows {}..{} beyond {oh}",
                self.row0,
                self.row0 + self.rows
            );
        }
        let plane = self.rows * ow;
        let row0 = self.row0;
        let mut out = vec![0f32; b * c * rows_per_channel * plane];
        // One chunk per (batch, input channel): its kh*kw rows of the column matrix.
        par_chunks_mut(&mut out, rows_per_channel * plane, |bc, dst| {
            let src = &x[bc * h * w..(bc + 1) * h * w];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = &mut dst[(ky * kw + kx) * plane..(ky * kw + kx + 1) * plane];
                    for (band_row, oy) in (row0..row0 + self.rows).enumerate() {
                        let iy = (oy * st + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue; // stays zero
                        }
                        let src_row = &src[iy as usize * w..(iy as usize + 1) * w];
                        let dst_row = &mut row[band_row * ow..(band_row + 1) * ow];
                        if st == 1 {
                            // Output x reads input x + kx - pad: one shifted slice copy.
                            let shift = kx as isize - pad as isize;
                            let lo = (-shift).max(0) as usize;
                            let hi = ((w as isize - shift).min(ow as isize)).max(0) as usize;
                            if lo < hi {
                                let from = (lo as isize + shift) as usize;
                                dst_row[lo..hi].copy_from_slice(&src_row[from..from + (hi - lo)]);
                            }
                        } else {
                            for (ox, d) in dst_row.iter_mut().enumerate() {
                                let ix = (ox * st + kx) as isize - pad as isize;
                                if ix >= 0 && ix < w as isize {
                                    *d = src_row[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, c * rows_per_channel, plane)),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::Device;

    fn plain(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> candle_nn::Conv2d {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.3, (c_out, c_in, k, k), &dev).unwrap();
        let b = bias.then(|| Tensor::randn(0f32, 1., c_out, &dev).unwrap());
        let cfg = Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        };
        candle_nn::Conv2d::new(w, b, cfg)
    }

    #[test]
    fn matches_candle_conv2d_for_sd_shapes() {
        let dev = Device::Cpu;
        // (c_in, c_out, kernel, stride, padding, h, w): 3x3 same, stride-2 down, 1x1, VAE's pad 0.
        for (ci, co, k, s, p, h, w) in [
            (6, 5, 3, 1, 1, 9, 7),
            (4, 8, 3, 2, 1, 8, 8),
            (4, 4, 3, 2, 0, 9, 9),
            (7, 3, 1, 1, 0, 5, 6),
            (3, 2, 3, 1, 1, 1, 1),
        ] {
            for bias in [true, false] {
                let x = Tensor::randn(0f32, 1., (2, ci, h, w), &dev).unwrap();
                let c = plain(ci, co, k, s, p, bias);
                let want = c.forward(&x).unwrap();
                let ours = Conv2d::from_candle(c, super::super::Kernels::Ours)
                    .forward(&x)
                    .unwrap();
                assert_eq!(ours.dims(), want.dims());
                assert!(rel(&ours, &want) < 1e-5, "{ci} {co} {k} {s} {p}");
            }
        }
    }

    #[test]
    fn row_bands_give_the_same_result() {
        let dev = Device::Cpu;
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (3, 2, 0)] {
            let x = Tensor::randn(0f32, 1., (2, 5, 11, 9), &dev).unwrap();
            let c = plain(5, 4, k, s, p, true);
            let want = c.forward(&x).unwrap();
            let ours = Conv2d::from_candle(c, super::super::Kernels::Ours);
            for band_bytes in [1, 2 * 5 * 9 * 9 * 4 * 3, usize::MAX] {
                let got = ours.forward_cpu_banded(&x, band_bytes).unwrap();
                assert_eq!(got.dims(), want.dims());
                assert!(rel(&got, &want) < 1e-5, "{k} {s} {p} {band_bytes}");
            }
        }
    }

    #[test]
    fn non_contiguous_input_and_f16_fallback() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 6, 5, 4), &dev)
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        let c = plain(6, 3, 3, 1, 1, true);
        let want = c.forward(&x.contiguous().unwrap()).unwrap();
        let ours = Conv2d::from_candle(c.clone(), super::super::Kernels::Ours);
        assert!(rel(&ours.forward(&x).unwrap(), &want) < 1e-5);
        let half = candle_nn::Conv2d::new(
            c.weight().to_dtype(DType::F16).unwrap(),
            c.bias().map(|b| b.to_dtype(DType::F16).unwrap()),
            *c.config(),
        );
        let y = Conv2d::from_candle(half, super::super::Kernels::Ours)
            .forward(&x.contiguous().unwrap().to_dtype(DType::F16).unwrap())
            .unwrap();
        assert!(rel(&y.to_dtype(DType::F32).unwrap(), &want) < 1e-2);
    }
}
