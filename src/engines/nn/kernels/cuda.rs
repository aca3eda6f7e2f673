//! The CUDA side of the fast kernels (built with the `cuda` feature; the PTX comes from
//! `cuda/sd_kernels.cu` and its per-op `.cuh` headers through build.rs):
//! - GroupNorm(+SiLU): statistics over grid-wide blocks (so a 32-group VAE norm still fills the
//!   GPU), then one fused apply pass; candle_nn's composition makes about ten full passes.
//! - Conv2d: an im2col in the weight's own (c_in, ky, kx) order (input rows staged in
//!   shared-memory tiles, 8 positions a thread, 16-byte loads and stores; `cuda/im2col.rs`) and
//!   cuBLAS GEMMs batched over batch elements writing NCHW directly, the bias added in place;
//!   1x1 stride-1 convolutions skip the im2col. f32 GEMMs use TF32, as PyTorch's cuDNN
//!   convolutions do by default.
//! - GEGLU: the feed-forward's split, erf-GELU and product in one pass (the projection's bias
//!   added on the way).
//! - Attention: on tensor cores (mma.sync, FlashAttention-2's loop, cp.async tiles) for f16/bf16,
//!   reading the heads in place; one thread per query in f32 otherwise.
//! - Element-wise: bias broadcasts (a Linear's, the ResNet's time embedding), the NCHW <-> tokens
//!   transpose, 2x nearest upsampling, which candle runs through its general strided kernels.
//! - Modulation: the flow transformers' LayerNorm + `(1 + scale)`/`shift` and gated residual,
//!   one pass each.
//!
//! This file holds what every op shares (the PTX, element types, launch helpers, the dtype
//! dispatch); each op lives in `cuda/<op>.rs` (and its device code in `cuda/<op>.cuh`).

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

/// With the `cudnn` feature every element type is one cuDNN takes too.
#[cfg(feature = "cudnn")]
use candle_core::cuda_backend::cudarc::cudnn::CudnnDataType as MaybeCudnn;
#[cfg(not(feature = "cudnn"))]
trait MaybeCudnn {}
#[cfg(not(feature = "cudnn"))]
impl<T> MaybeCudnn for T {}

/// Storage types the kernels are compiled for, with cuBLAS's name for each.
trait Element: DeviceRepr + WithDType + ValidAsZeroBits + MaybeCudnn {
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

/// `grid_2d` for the kernels that take 8 elements a thread (16-byte vectors of a half type; f32
/// threads loop twice), element by element where rows do not allow vectors.
fn grid_2d_vectors(inner: usize, outer: usize) -> LaunchConfig {
    grid_2d(inner.div_ceil(8), outer)
}

fn i32_arg(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("kernel size {v} exceeds i32")))
}

fn cpu_unsupported(name: &str) -> Result<(CpuStorage, Shape)> {
    bail!("{name} runs on CUDA only")
}

/// `cpu_fwd` of an op that runs on CUDA only (an error naming it), for `$op` (CustomOp1/2/3).
macro_rules! cuda_only {
    (CustomOp1) => {
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            cpu_unsupported(<Self as CustomOp1>::name(self))
        }
    };
    (CustomOp2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            cpu_unsupported(<Self as CustomOp2>::name(self))
        }
    };
    (CustomOp3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            cpu_unsupported(<Self as CustomOp3>::name(self))
        }
    };
}

/// Runs `$body` with each `$v` bound to the f32, f16 or bf16 slice of its storage (all of one
/// dtype); `$body` gives `(CudaSlice<T>, Shape)`, which comes back as a storage slice and shape.
macro_rules! by_dtype {
    ($what:expr, [$($s:expr => $v:ident),+], $body:expr) => {
        match ($(&$s.slice,)+) {
            ($(S::F32($v),)+) => {
                let (out, shape) = $body;
                (S::F32(out), shape)
            }
            ($(S::F16($v),)+) => {
                let (out, shape) = $body;
                (S::F16(out), shape)
            }
            ($(S::BF16($v),)+) => {
                let (out, shape) = $body;
                (S::BF16(out), shape)
            }
            _ => bail!("{} on CUDA takes f32, f16 or bf16, all of one type", $what),
        }
    };
}

/// A kernel's output as candle's CUDA storage.
fn storage(device: &CudaDevice, (slice, shape): (S, Shape)) -> (CudaStorage, Shape) {
    (
        CudaStorage {
            slice,
            device: device.clone(),
        },
        shape,
    )
}

mod attention;
mod conv;
#[cfg(feature = "cudnn")]
mod cudnn_conv;
mod elementwise;
mod geglu;
mod group_norm;
mod im2col;
mod modulation;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use attention::{FLASH_HEAD_DIMS, FlashAttnOp};
pub use conv::Conv2dOp;
pub use elementwise::{BiasAddOp, TransposeOp, Upsample2xOp};
pub use geglu::GegluOp;
pub use group_norm::GroupNormOp;
pub use modulation::{GatedResidualOp, LnModulateOp};
