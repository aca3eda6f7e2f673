//! Conv2d for the CPU in f32 without candle's per-call weight repacking: `conv_into` per batch
//! element (1x1 stride-1 convolutions read the NCHW activation as it is; kxk ones build im2col
//! bands in the weight's own (c_in, ky, kx) row order with whole-row copies, each worker its
//! own band; the bias is added in the same parallel pass). Other devices, dtypes, groups or
//! dilations use candle's conv2d.

use candle_core::{CpuStorage, DType, Module, Result, Storage, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::conv_into::{ConvSpec, Epilogue, conv_into};

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

    /// The CPU path with im2col bands of at most `band_bytes` in all (at least one output row
    /// a worker): `conv_into` per batch element, bias added in its pass.
    fn forward_cpu_banded(&self, xs: &Tensor, band_bytes: usize) -> Result<Tensor> {
        let (b, c_in, h, w) = xs.dims4()?;
        if self.plain.weight().dim(1)? != c_in {
            return self.plain.forward(xs);
        }
        let xs = xs.contiguous()?;
        self.with_cpu_spec(|spec| {
            let Some((oh, ow)) = spec.out_size(h, w) else {
                return self.plain.forward(&xs);
            };
            let per_out = spec.c_out * oh * ow;
            let per_in = c_in * h * w;
            let mut out = vec![0f32; b * per_out];
            with_f32(&xs, |x| {
                for (i, o) in out.chunks_mut(per_out.max(1)).enumerate() {
                    let x = &x[i * per_in..(i + 1) * per_in];
                    conv_into(x, h, w, spec, o, Epilogue::None, band_bytes).map_err(msg)?;
                }
                Ok(())
            })?;
            Tensor::from_vec(out, (b, spec.c_out, oh, ow), xs.device())
        })
    }

    /// `res + conv(xs)` (res shaped as the output): on the CPU in f32 with our kernels the add
    /// is fused into the convolution's pass, elsewhere a separate add.
    pub fn forward_add(&self, xs: &Tensor, res: &Tensor) -> Result<Tensor> {
        let (b, c_in, h, w) = xs.dims4()?;
        let cpu = self.kernels.fast() && xs.device().is_cpu() && self.fast_path_applies(xs);
        if !cpu || res.dtype() != DType::F32 || self.plain.weight().dim(1)? != c_in {
            return res + self.forward(xs)?;
        }
        let xs = xs.contiguous()?;
        let res = res.contiguous()?;
        self.with_cpu_spec(|spec| {
            let Some((oh, ow)) = spec.out_size(h, w) else {
                return res + self.plain.forward(&xs)?;
            };
            if res.dims() != [b, spec.c_out, oh, ow] {
                candle_core::bail!(
                    "residual {:?} for a conv output {:?}",
                    res.dims(),
                    (b, spec.c_out, oh, ow)
                );
            }
            let (per_out, per_in) = (spec.c_out * oh * ow, c_in * h * w);
            let mut out = vec![0f32; b * per_out];
            with_f32(&xs, |x| {
                with_f32(&res, |r| {
                    for (i, o) in out.chunks_mut(per_out.max(1)).enumerate() {
                        let epilogue = Epilogue::Residual {
                            scale: 1.0,
                            res: &r[i * per_out..(i + 1) * per_out],
                        };
                        let x = &x[i * per_in..(i + 1) * per_in];
                        conv_into(x, h, w, spec, o, epilogue, COL_BAND_BYTES).map_err(msg)?;
                    }
                    Ok(())
                })
            })?;
            Tensor::from_vec(out, (b, spec.c_out, oh, ow), xs.device())
        })
    }

    /// One image `x` (c_in, h, w) on the CPU in f32 into `out` (c_out, oh, ow) with `epilogue`
    /// fused (see `conv_into`). Errors off the CPU, in another dtype, or for groups/dilation.
    pub fn forward_into_cpu(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        out: &mut [f32],
        epilogue: Epilogue,
    ) -> Result<()> {
        let c = self.plain.config();
        if c.groups != 1 || c.dilation != 1 {
            candle_core::bail!("conv_into takes groups 1 and dilation 1");
        }
        self.with_cpu_spec(|spec| {
            conv_into(x, h, w, spec, out, epilogue, COL_BAND_BYTES).map_err(msg)
        })
    }

    /// `f` with this layer's weight and bias as f32 slices in CPU memory.
    fn with_cpu_spec<R>(&self, f: impl FnOnce(&ConvSpec) -> Result<R>) -> Result<R> {
        let c = self.plain.config();
        let weight = self.plain.weight().contiguous()?;
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        let bias = self.plain.bias().map(|b| b.contiguous()).transpose()?;
        with_f32(&weight, |wv| {
            let run = |bias: Option<&[f32]>| {
                f(&ConvSpec {
                    weight: wv,
                    bias,
                    c_out,
                    c_in,
                    kh,
                    kw,
                    stride: c.stride,
                    padding: c.padding,
                })
            };
            match &bias {
                Some(b) => with_f32(b, |bv| run(Some(bv))),
                None => run(None),
            }
        })
    }
}

/// `f` with a contiguous f32 CPU tensor's values.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(all)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    else {
        candle_core::bail!("expected a contiguous f32 CPU tensor");
    };
    f(&all[a..b])
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
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
    fn forward_add_fuses_the_residual() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 7, 6), &dev).unwrap();
        let c = plain(5, 4, 3, 1, 1, true);
        let res = Tensor::randn(0f32, 1., (2, 4, 7, 6), &dev).unwrap();
        let want = (&res + c.forward(&x).unwrap()).unwrap();
        assert!(rel(&want, &c.forward(&x).unwrap()) > 0.05);
        for kernels in [super::super::Kernels::Ours, super::super::Kernels::Stock] {
            let got = Conv2d::from_candle(c.clone(), kernels)
                .forward_add(&x, &res)
                .unwrap();
            assert!(rel(&got, &want) < 1e-5, "{kernels:?}");
        }
        let wrong = Tensor::zeros((2, 4, 7, 5), DType::F32, &dev).unwrap();
        let ours = Conv2d::from_candle(c, super::super::Kernels::Ours);
        assert!(ours.forward_add(&x, &wrong).is_err());
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
