//! Conv2d on CUDA: NCHW im2col and cuBLAS GEMMs batched over as many batch elements as the
//! workspace budget holds (none for 1x1: one batched GEMM straight on the input), then the bias
//! added in place.
use super::im2col::Im2col;
use super::*;

/// The im2col workspace: at most this many bytes. Whole batch elements share one strided
/// batched GEMM while they fit (one element's GEMM alone leaves most of a large GPU idle at the
/// UNet's first level); larger ones are built in spatial chunks.
const COL_BUDGET_BYTES: usize = crate::engines::nn::kernels::conv::CUDA_COL_BUDGET_BYTES;

/// Conv2d, groups 1, dilation 1: input (b, c_in, h, w), weight (c_out, c_in, kh, kw), and as a
/// three-input op a bias (c_out).
pub struct Conv2dOp {
    pub stride: usize,
    pub padding: usize,
    /// kxk convolutions through cuDNN (`cudnn_conv.rs`; builds with the `cudnn` feature only)
    /// instead of im2col + GEMM.
    pub cudnn: bool,
}

/// One GEMM (or a batch of them) writing into the output: `pn` positions of `count` elements.
struct GemmCall<'a, T> {
    a: CudaView<'a, T>,
    lda: usize,
    stride_a: usize,
    out_offset: usize,
    pn: usize,
    count: usize,
}

impl Conv2dOp {
    fn out_size(&self, size: usize, k: usize) -> Result<usize> {
        let padded = size + 2 * self.padding;
        if padded < k || self.stride == 0 {
            bail!(
                "conv2d: input {size} with padding {} is smaller than the kernel {k}",
                self.padding
            );
        }
        Ok((padded - k) / self.stride + 1)
    }

    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        w: CudaView<T>,
        wl: &Layout,
        bias: Option<CudaView<T>>,
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let (b, c_in, h, wd) = xl.shape().dims4()?;
        let (c_out, k_in, kh, kw) = wl.shape().dims4()?;
        if k_in != c_in {
            bail!("conv2d: weight expects {k_in} input channels, got {c_in}");
        }
        let (h_out, w_out) = (self.out_size(h, kh)?, self.out_size(wd, kw)?);
        let positions = h_out * w_out;
        let k = c_in * kh * kw;
        let in_len = c_in * h * wd;
        let out_len = c_out * positions;
        // SAFETY: every output element is written by the GEMMs below.
        let mut out = unsafe { dev.alloc::<T>(b * out_len)? };
        let stream = dev.cuda_stream();
        let blas = dev.cublas_handle();
        let shape = Shape::from((b, c_out, h_out, w_out));
        let gemm_into = |out: &mut CudaSlice<T>, call: GemmCall<T>| -> Result<()> {
            gemm::<T>(&blas, &stream, &w, k, c_out, out_len, out, call)
        };
        #[cfg(feature = "cudnn")]
        if self.cudnn && kh * kw > 1 {
            let geometry = super::cudnn_conv::Geometry {
                input: [b, c_in, h, wd],
                filter: [c_out, kh, kw],
                stride: self.stride,
                padding: self.padding,
                out_hw: [h_out, w_out],
            };
            let mut out = super::cudnn_conv::conv2d::<T>(&x, &w, &geometry, dev)?;
            add_bias(&mut out, bias, b * c_out, c_out, positions, dev)?;
            return Ok((out, shape));
        }
        if kh == 1 && kw == 1 && self.stride == 1 && self.padding == 0 {
            gemm_into(
                &mut out,
                GemmCall {
                    a: x.slice(..),
                    lda: positions,
                    stride_a: in_len,
                    out_offset: 0,
                    pn: positions,
                    count: b,
                },
            )?;
            add_bias(&mut out, bias, b * c_out, c_out, positions, dev)?;
            return Ok((out, shape));
        }
        let budget = (COL_BUDGET_BYTES / std::mem::size_of::<T>()).max(k);
        let per_elem = k * positions;
        // Spatial chunks are whole groups of 8 positions, so the im2col's 16-byte stores stay
        // aligned.
        let (group, chunk) = if per_elem <= budget {
            ((budget / per_elem).clamp(1, b), positions)
        } else {
            (1, (budget / k / 8 * 8).clamp(8, positions))
        };
        // SAFETY: written by im2col before each GEMM reads it.
        let mut col = unsafe { dev.alloc::<T>(group * k * chunk)? };
        let geometry = Im2col {
            c_in,
            h,
            w: wd,
            kh,
            kw,
            stride: self.stride,
            padding: self.padding,
            w_out,
        };
        let mut b0 = 0;
        while b0 < b {
            let count = group.min(b - b0);
            let mut p0 = 0;
            while p0 < positions {
                let pn = chunk.min(positions - p0);
                let xs = x.slice(b0 * in_len..(b0 + count) * in_len);
                let mut dst = col.slice_mut(..count * k * pn);
                geometry.launch(&xs, &mut dst, (p0, pn), count, dev)?;
                gemm_into(
                    &mut out,
                    GemmCall {
                        a: col.slice(..count * k * pn),
                        lda: pn,
                        stride_a: k * pn,
                        out_offset: b0 * out_len + p0,
                        pn,
                        count,
                    },
                )?;
                p0 += pn;
            }
            b0 += count;
        }
        add_bias(&mut out, bias, b * c_out, c_out, positions, dev)?;
        Ok((out, shape))
    }
}

/// `out[b][c][p] += bias[c]` in place (nothing without a bias).
fn add_bias<T: Element>(
    out: &mut CudaSlice<T>,
    bias: Option<CudaView<T>>,
    rows: usize,
    channels: usize,
    positions: usize,
    dev: &CudaDevice,
) -> Result<()> {
    let Some(bias) = bias else {
        return Ok(());
    };
    if bias.len() != channels {
        bail!("conv2d: bias of {} for {channels} channels", bias.len());
    }
    let func = dev.get_or_load_custom_func(&kernel_name::<T>("bias_nchw"), MODULE, PTX)?;
    let mut launch = func.builder();
    launch.arg(out);
    launch.arg(&bias);
    let ints = [i32_arg(rows)?, i32_arg(channels)?, i32_arg(positions)?];
    for a in &ints {
        launch.arg(a);
    }
    // SAFETY: out holds rows*positions elements, bias `channels`.
    unsafe { launch.launch(grid_2d_vectors(positions, rows)) }.w()?;
    Ok(())
}

/// For each of `call.count` elements, row-major `out (c_out x pn, row stride positions) =
/// weight (c_out x k) . a (k x pn, row stride lda)`, written as cuBLAS's column-major
/// `out^T = a^T . weight^T`; elements are `stride_a` apart in `a`, `out_len` in `out`.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Element>(
    blas: &candle_core::cuda_backend::cudarc::cublas::CudaBlas,
    stream: &std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
    weight: &CudaView<T>,
    k: usize,
    c_out: usize,
    out_len: usize,
    out: &mut CudaSlice<T>,
    call: GemmCall<T>,
) -> Result<()> {
    if call.count == 0 || c_out == 0 {
        return Ok(());
    }
    let positions = out_len / c_out;
    let needed = call.out_offset + (call.count - 1) * out_len + (c_out - 1) * positions + call.pn;
    if needed > out.len() {
        bail!("conv2d: GEMM of {} elements past the output", call.count);
    }
    // Every compute type used here (32F, 32F_FAST_TF32) takes f32 scalars.
    let (alpha, beta) = (1f32, 0f32);
    let alpha_ptr = &alpha as *const f32 as *const std::ffi::c_void;
    let beta_ptr = &beta as *const f32 as *const std::ffi::c_void;
    let mut out_view = out.slice_mut(call.out_offset..);
    let (a_ptr, _a_guard) = call.a.device_ptr(stream);
    let (w_ptr, _w_guard) = weight.device_ptr(stream);
    let (o_ptr, _o_guard) = out_view.device_ptr_mut(stream);
    let dim = |v: usize| -> Result<i32> {
        i32::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("conv2d: {v} exceeds cuBLAS's int range")))
    };
    let stride = |v: usize| -> Result<i64> {
        i64::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("conv2d: stride {v} exceeds i64")))
    };
    // SAFETY: the pointers are live device buffers of the sizes the dimensions describe (the
    // output's extent checked above, the inputs' by construction), on the stream the handle is
    // bound to; the guards outlive the call.
    unsafe {
        cublas_result::gemm_strided_batched_ex(
            *blas.handle(),
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            dim(call.pn)?,
            dim(c_out)?,
            dim(k)?,
            alpha_ptr,
            a_ptr as *const std::ffi::c_void,
            T::CUDA_TYPE,
            dim(call.lda)?,
            stride(call.stride_a)?,
            w_ptr as *const std::ffi::c_void,
            T::CUDA_TYPE,
            dim(k)?,
            0,
            beta_ptr,
            o_ptr as *mut std::ffi::c_void,
            T::CUDA_TYPE,
            dim(positions)?,
            stride(out_len)?,
            dim(call.count)?,
            T::COMPUTE,
            cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    }
    .map_err(|e| candle_core::Error::Msg(format!("cuBLAS conv2d GEMM: {e:?}")))
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-conv2d"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("conv2d", [x => xs, w => ws], {
            self.launch(
                contiguous(xs, xl, "conv2d input")?,
                xl,
                contiguous(ws, wl, "conv2d weight")?,
                wl,
                None,
                dev,
            )?
        });
        Ok(storage(dev, out))
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-conv2d-bias"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("conv2d", [x => xs, w => ws, bias => bs], {
            self.launch(
                contiguous(xs, xl, "conv2d input")?,
                xl,
                contiguous(ws, wl, "conv2d weight")?,
                wl,
                Some(contiguous(bs, bl, "conv2d bias")?),
                dev,
            )?
        });
        Ok(storage(dev, out))
    }
}
