//! Conv2d on CUDA: NCHW im2col and one cuBLAS GEMM per batch element (none for 1x1).
use super::*;

/// im2col buffers are built in spatial chunks of at most this many elements (128 MiB in f32).
const COL_BUDGET: usize = 1 << 25;

/// Conv2d without bias, groups 1, dilation 1: input (b, c_in, h, w), weight (c_out, c_in, kh, kw).
pub struct Conv2dOp {
    pub stride: usize,
    pub padding: usize,
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
        let direct = kh == 1 && kw == 1 && self.stride == 1 && self.padding == 0;
        let chunk = if direct {
            positions
        } else {
            (COL_BUDGET / k).clamp(1, positions)
        };
        // SAFETY: every output element is written by the GEMMs below.
        let mut out = unsafe { dev.alloc::<T>(b * c_out * positions)? };
        let col = if direct {
            None
        } else {
            // SAFETY: written by im2col before each GEMM reads it.
            Some(unsafe { dev.alloc::<T>(k * chunk)? })
        };
        let im2col = dev.get_or_load_custom_func(&kernel_name::<T>("im2col_nchw"), MODULE, PTX)?;
        let stream = dev.cuda_stream();
        let blas = dev.cublas_handle();
        let in_len = c_in * h * wd;
        for bi in 0..b {
            let xb = x.slice(bi * in_len..(bi + 1) * in_len);
            let mut p0 = 0;
            while p0 < positions {
                let pn = chunk.min(positions - p0);
                let out_view =
                    out.slice_mut(bi * c_out * positions + p0..(bi + 1) * c_out * positions);
                match col.as_ref() {
                    None => gemm::<T>(
                        &blas,
                        &stream,
                        (pn, c_out, k),
                        (&xb.slice(p0..), positions),
                        &w,
                        (out_view, positions),
                    )?,
                    Some(col) => {
                        let mut launch = im2col.builder();
                        launch.arg(&xb);
                        launch.arg(col);
                        let ints = [
                            i32_arg(k)?,
                            i32_arg(h)?,
                            i32_arg(wd)?,
                            i32_arg(kh)?,
                            i32_arg(kw)?,
                            i32_arg(self.stride)?,
                            i32_arg(self.padding)?,
                            i32_arg(w_out)?,
                            i32_arg(p0)?,
                            i32_arg(pn)?,
                        ];
                        for a in &ints {
                            launch.arg(a);
                        }
                        // SAFETY: col holds k*chunk >= k*pn elements, xb one batch element.
                        unsafe { launch.launch(grid_2d(pn, k)) }.w()?;
                        gemm::<T>(
                            &blas,
                            &stream,
                            (pn, c_out, k),
                            (&col.slice(..k * pn), pn),
                            &w,
                            (out_view, positions),
                        )?;
                    }
                }
                p0 += pn;
            }
        }
        Ok((out, Shape::from((b, c_out, h_out, w_out))))
    }
}

/// Row-major `out (c_out x pn, row stride ld_out) = weight (c_out x k) . a (k x pn, row stride
/// lda)`, written as cuBLAS's column-major `out^T = a^T . weight^T`.
fn gemm<T: Element>(
    blas: &candle_core::cuda_backend::cudarc::cublas::CudaBlas,
    stream: &std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
    (pn, c_out, k): (usize, usize, usize),
    (a, lda): (&CudaView<T>, usize),
    weight: &CudaView<T>,
    (mut out, ld_out): (CudaViewMut<T>, usize),
) -> Result<()> {
    // Every compute type used here (32F, 32F_FAST_TF32) takes f32 scalars.
    let (alpha, beta) = (1f32, 0f32);
    let alpha_ptr = &alpha as *const f32 as *const std::ffi::c_void;
    let beta_ptr = &beta as *const f32 as *const std::ffi::c_void;
    let (a_ptr, _a_guard) = a.device_ptr(stream);
    let (w_ptr, _w_guard) = weight.device_ptr(stream);
    let (o_ptr, _o_guard) = out.device_ptr_mut(stream);
    let dim = |v: usize| -> Result<i32> {
        i32::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("conv2d: {v} exceeds cuBLAS's int range")))
    };
    // SAFETY: the pointers are live device buffers of the sizes the dimensions describe, on
    // the stream the handle is bound to; the guards outlive the call.
    unsafe {
        cublas_result::gemm_ex(
            *blas.handle(),
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            dim(pn)?,
            dim(c_out)?,
            dim(k)?,
            alpha_ptr,
            a_ptr as *const std::ffi::c_void,
            T::CUDA_TYPE,
            dim(lda)?,
            w_ptr as *const std::ffi::c_void,
            T::CUDA_TYPE,
            dim(k)?,
            beta_ptr,
            o_ptr as *mut std::ffi::c_void,
            T::CUDA_TYPE,
            dim(ld_out)?,
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

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }

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
                dev,
            )?
        });
        Ok(storage(dev, out))
    }
}
