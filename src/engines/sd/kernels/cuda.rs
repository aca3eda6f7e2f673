//! The CUDA side of the fast kernels (built with the `cuda` feature; the PTX comes from
//! `cuda/sd_kernels.cu` through build.rs):
//! - GroupNorm(+SiLU): statistics over grid-wide blocks (so a 32-group VAE norm still fills the
//!   GPU), then one fused apply pass; candle_nn's composition makes about ten full passes.
//! - Conv2d: an im2col in the weight's own (c_in, ky, kx) order and one cuBLAS GEMM per batch
//!   element writing NCHW directly (candle's im2col is position-major and needs a transposing
//!   copy of the output); 1x1 stride-1 convolutions skip the im2col. f32 GEMMs use TF32, as
//!   PyTorch's cuDNN convolutions do by default.
//! - GEGLU: the feed-forward's split, erf-GELU and product in one pass.

use candle_core::cuda_backend::cudarc::cublas::{result as cublas_result, sys as cublas_sys};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaStorageSlice as S, WrapErr, kernel_name};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape,
    WithDType, bail,
};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/sd_kernels.ptx"));
const MODULE: &str = "pallaidium_sd_kernels";
const THREADS: u32 = 256;
/// im2col buffers are built in spatial chunks of at most this many elements (128 MiB in f32).
const COL_BUDGET: usize = 1 << 25;

/// Storage types the kernels are compiled for, with cuBLAS's name for each.
trait Element: DeviceRepr + WithDType + ValidAsZeroBits {
    const CUDA_TYPE: cublas_sys::cudaDataType;
    /// TF32 for f32 (PyTorch's cuDNN default), f32 accumulation for the half types.
    const COMPUTE: cublas_sys::cublasComputeType_t;
}

impl Element for f32 {
    const CUDA_TYPE: cublas_sys::cudaDataType = cublas_sys::cudaDataType::CUDA_R_32F;
    const COMPUTE: cublas_sys::cublasComputeType_t =
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32;
}

impl Element for half::f16 {
    const CUDA_TYPE: cublas_sys::cudaDataType = cublas_sys::cudaDataType::CUDA_R_16F;
    const COMPUTE: cublas_sys::cublasComputeType_t =
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F;
}

impl Element for half::bf16 {
    const CUDA_TYPE: cublas_sys::cudaDataType = cublas_sys::cudaDataType::CUDA_R_16BF;
    const COMPUTE: cublas_sys::cublasComputeType_t =
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F;
}

fn contiguous<'a, T>(s: &'a CudaSlice<T>, l: &Layout, what: &str) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.slice(a..b)),
        None => bail!("{what} must be contiguous"),
    }
}

/// Blocks over `inner` elements (x) for each of `outer` rows (y, looped past 65535 in-kernel).
fn grid_2d(inner: usize, outer: usize) -> LaunchConfig {
    let x = inner.div_ceil(THREADS as usize).clamp(1, 1 << 16) as u32;
    LaunchConfig {
        grid_dim: (x, outer.clamp(1, 65535) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn i32_arg(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("kernel size {v} exceeds i32")))
}

fn cpu_unsupported(name: &str) -> Result<(CpuStorage, Shape)> {
    bail!("{name} runs on CUDA only")
}

/// GroupNorm over `groups` on (batch, channels, ...) with affine weight and bias, then SiLU.
pub struct GroupNormOp {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

impl GroupNormOp {
    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        w: CudaView<T>,
        b: CudaView<T>,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        let dims = xl.dims();
        if dims.len() < 3 || dims[1] % self.groups != 0 {
            bail!(
                "GroupNorm: {dims:?} does not split into {} groups",
                self.groups
            );
        }
        let (batch, channels) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        let per_group = channels / self.groups;
        let n = per_group * spatial;
        let groups_total = batch * self.groups;
        let total = groups_total * n;
        let chunk = 8192usize;
        let splits = n.div_ceil(chunk).max(1);
        let stats = dev.alloc_zeros::<f32>(2 * groups_total)?;
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("gn_stats"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&stats);
        let (n64, chunk64) = (n as i64, chunk as i64);
        launch.arg(&n64);
        launch.arg(&chunk64);
        let cfg = LaunchConfig {
            grid_dim: (splits as u32, groups_total as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernel's signature; x holds groups_total*n elements.
        unsafe { launch.launch(cfg) }.w()?;

        // SAFETY: every element is written by gn_apply below.
        let out = unsafe { dev.alloc::<T>(total)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("gn_apply"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        launch.arg(&stats);
        launch.arg(&w);
        launch.arg(&b);
        let ints = [
            i32_arg(n)?,
            i32_arg(spatial)?,
            i32_arg(per_group)?,
            i32_arg(self.groups)?,
        ];
        for a in &ints {
            launch.arg(a);
        }
        let silu = i32::from(self.silu);
        launch.arg(&self.eps);
        launch.arg(&silu);
        // SAFETY: as above; w and b hold `channels` elements.
        unsafe { launch.launch(grid_2d(n, groups_total)) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-group-norm"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
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
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        macro_rules! go {
            ($x:expr, $w:expr, $b:expr) => {
                self.launch(
                    contiguous($x, xl, "GroupNorm input")?,
                    xl,
                    contiguous($w, wl, "GroupNorm weight")?,
                    contiguous($b, bl, "GroupNorm bias")?,
                    dev,
                )?
            };
        }
        let slice = match (&x.slice, &w.slice, &b.slice) {
            (S::F32(x), S::F32(w), S::F32(b)) => S::F32(go!(x, w, b)),
            (S::F16(x), S::F16(w), S::F16(b)) => S::F16(go!(x, w, b)),
            (S::BF16(x), S::BF16(w), S::BF16(b)) => S::BF16(go!(x, w, b)),
            _ => bail!("GroupNorm on CUDA takes f32, f16 or bf16 with weights of the same type"),
        };
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            xl.shape().clone(),
        ))
    }
}

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
        macro_rules! go {
            ($x:expr, $w:expr) => {
                self.launch(
                    contiguous($x, xl, "conv2d input")?,
                    xl,
                    contiguous($w, wl, "conv2d weight")?,
                    wl,
                    dev,
                )?
            };
        }
        let (slice, shape) = match (&x.slice, &w.slice) {
            (S::F32(x), S::F32(w)) => {
                let (o, s) = go!(x, w);
                (S::F32(o), s)
            }
            (S::F16(x), S::F16(w)) => {
                let (o, s) = go!(x, w);
                (S::F16(o), s)
            }
            (S::BF16(x), S::BF16(w)) => {
                let (o, s) = go!(x, w);
                (S::BF16(o), s)
            }
            _ => bail!("conv2d on CUDA takes f32, f16 or bf16 with a weight of the same type"),
        };
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            shape,
        ))
    }
}

/// GEGLU on (..., 2*d) -> (..., d).
pub struct GegluOp;

impl GegluOp {
    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let mut dims = xl.dims().to_vec();
        let last = dims.last().copied().unwrap_or(0);
        if last == 0 || last % 2 != 0 {
            bail!("GEGLU needs an even last dimension, got {dims:?}");
        }
        let d = last / 2;
        if let Some(l) = dims.last_mut() {
            *l = d;
        }
        let total = xl.shape().elem_count() / 2;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(total)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("geglu"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        let (d32, rows32) = (i32_arg(d)?, i32_arg(total / d)?);
        launch.arg(&d32);
        launch.arg(&rows32);
        // SAFETY: x holds 2*total elements, out total.
        unsafe { launch.launch(grid_2d(d, total / d)) }.w()?;
        Ok((out, Shape::from(dims)))
    }
}

impl CustomOp1 for GegluOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-geglu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (slice, shape) = match &x.slice {
            S::F32(s) => {
                let (o, sh) = self.launch(contiguous(s, xl, "GEGLU input")?, xl, dev)?;
                (S::F32(o), sh)
            }
            S::F16(s) => {
                let (o, sh) = self.launch(contiguous(s, xl, "GEGLU input")?, xl, dev)?;
                (S::F16(o), sh)
            }
            S::BF16(s) => {
                let (o, sh) = self.launch(contiguous(s, xl, "GEGLU input")?, xl, dev)?;
                (S::BF16(o), sh)
            }
            _ => bail!("GEGLU on CUDA takes f32, f16 or bf16"),
        };
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            shape,
        ))
    }
}

/// Head sizes the fused attention kernel is compiled for.
pub const FLASH_HEAD_DIMS: [usize; 3] = [40, 64, 80];

/// Attention with the online softmax in one kernel: `q` (rows, n_q, d) already scaled, `k`/`v`
/// (rows, n_k, d), `d` one of `FLASH_HEAD_DIMS`.
pub struct FlashAttnOp;

impl FlashAttnOp {
    fn launch<T: Element>(
        &self,
        (q, ql): (CudaView<T>, &Layout),
        (k, kl): (CudaView<T>, &Layout),
        v: CudaView<T>,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        let (rows, n_q, d) = ql.shape().dims3()?;
        let (k_rows, n_k, k_d) = kl.shape().dims3()?;
        if k_rows != rows || k_d != d || !FLASH_HEAD_DIMS.contains(&d) || n_k == 0 {
            bail!("fused attention: q {:?} k {:?}", ql.dims(), kl.dims());
        }
        if rows > 65535 {
            bail!("fused attention: {rows} batch*heads rows exceed the grid");
        }
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(rows * n_q * d)? };
        let name = format!("flash_attn_d{d}_{}", T::DTYPE.as_str());
        let func = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&q);
        launch.arg(&k);
        launch.arg(&v);
        launch.arg(&out);
        let (nq, nk) = (i32_arg(n_q)?, i32_arg(n_k)?);
        launch.arg(&nq);
        launch.arg(&nk);
        let block = 128u32;
        let cfg = LaunchConfig {
            grid_dim: (n_q.div_ceil(block as usize) as u32, rows as u32, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: shapes checked above; the kernel reads rows*n*d elements of each input.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for FlashAttnOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-flash-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_unsupported(self.name())
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &q.device;
        if vl.dims() != kl.dims() {
            bail!(
                "fused attention: k {:?} and v {:?} differ",
                kl.dims(),
                vl.dims()
            );
        }
        macro_rules! go {
            ($q:expr, $k:expr, $v:expr) => {
                self.launch(
                    (contiguous($q, ql, "attention q")?, ql),
                    (contiguous($k, kl, "attention k")?, kl),
                    contiguous($v, vl, "attention v")?,
                    dev,
                )?
            };
        }
        let slice = match (&q.slice, &k.slice, &v.slice) {
            (S::F32(q), S::F32(k), S::F32(v)) => S::F32(go!(q, k, v)),
            (S::F16(q), S::F16(k), S::F16(v)) => S::F16(go!(q, k, v)),
            (S::BF16(q), S::BF16(k), S::BF16(v)) => S::BF16(go!(q, k, v)),
            _ => bail!("fused attention takes f32, f16 or bf16 of one type"),
        };
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            ql.shape().clone(),
        ))
    }
}
