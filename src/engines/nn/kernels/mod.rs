//! Faster building blocks than candle's stock ones where it matters for Stable Diffusion, each a
//! drop-in for the candle_nn layer it replaces and parity-tested against it:
//! - `GroupNorm`: one fused pass (statistics, affine, optional SiLU) on the CPU in f32 instead of
//!   eight tensor ops with as many full-size temporaries.
//! - `Conv2d`: on the CPU in f32 through `conv_into`: bands of output rows, each worker building
//!   its own im2col band in the weight's own (c_in, ky, kx) order (1x1 convolutions read the
//!   input as it is) and running one GEMM into the output, with the bias and an epilogue
//!   (LeakyReLU, scaled residuals) applied in the same pass; the weight is never reshuffled per
//!   call (candle's tiled path repacks it on every forward). On CUDA, cuDNN in builds with the
//!   `cudnn` feature (`cuda/cudnn_conv.rs`), else im2col + cuBLAS.
//! - Softmax: in place on the CPU in f32, with a vectorized polynomial exp.
//! - Attention on the CPU in f32: score tiles of 64 queries kept in cache between the two GEMMs.
//! - On CUDA builds, the same layers plus GEGLU, tensor-core attention, `linear` (one GEMM and a
//!   bias kernel), the time-embedding add, the tokens transpose and 2x upsampling as our own
//!   kernels (`cuda.rs`, PTX from `cuda/sd_kernels.cu`) in f32/f16/bf16.
//!
//! Other devices and dtypes use candle's implementations unchanged. The rest of engines/nn builds
//! on them (`nn::norm::group_norm`, `nn::mlp::Geglu`, `nn::attention`'s packed path), and so do
//! SD's UNet and VAE (convolutions, upsampling) and the planner (through `sd::footprint`).

mod approx;
mod attention_cpu;
pub mod conv;
pub mod conv_into;
#[cfg(feature = "cuda")]
mod cuda;
mod geglu_cpu;
pub mod group_norm;
mod softmax;
pub(crate) mod threads;
mod upsample;

use candle_core::{D, Result, Tensor};

/// Which implementation the layers run, fixed when a model is built: this crate's kernels, or
/// candle's own with PALLAIDIUM_STOCK_KERNELS (`EngineSwitches::stock_kernels`), so one binary
/// can measure before and after (benchmarks) or rule the kernels out (debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    #[default]
    Ours,
    /// Ours, with CUDA's kxk convolutions as im2col + GEMM even in a build with cuDNN
    /// (PALLAIDIUM_CONV=gemm).
    OursGemmConv,
    Stock,
}

impl Kernels {
    /// Whether our kernels run: the `fast` argument of the `*_with` functions.
    pub fn fast(self) -> bool {
        self != Self::Stock
    }

    /// Whether CUDA's kxk convolutions go through cuDNN (only builds with the `cudnn` feature
    /// have it).
    pub fn cudnn_conv(self) -> bool {
        cfg!(feature = "cudnn") && self == Self::Ours
    }
}

/// Head sizes the CUDA fused attention kernels are compiled for (`cuda/attention.rs`): SD's
/// 40, 64 and 80, and the flow transformers' 128 (tensor cores only: f16 and bf16); the planner
/// counts no score memory for them.
pub const FUSED_ATTENTION_HEAD_DIMS: [usize; 4] = [40, 64, 80, 128];

/// Head sizes the scalar (one thread a query, f32) kernel is compiled for.
pub const SCALAR_ATTENTION_HEAD_DIMS: [usize; 3] = [40, 64, 80];

pub use attention_cpu::attention as cpu_attention;
pub use conv::{Conv2d, conv2d};
pub use conv_into::Epilogue;
pub use group_norm::GroupNorm;
pub use softmax::softmax_last_dim;
pub use upsample::{upsample_nearest2d, upsample2x_planes};

/// Attention in one fused kernel (CUDA builds, head sizes the kernel is compiled for): `q`
/// (rows, n_q, d) already scaled, `k`/`v` (rows, n_k, d). None where it does not apply. f16
/// and bf16 run on tensor cores where the PTX has them.
pub fn fused_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Option<Result<Tensor>> {
    fused_attention_with(q, k, v, true)
}

/// `fused_attention` with the kernel chosen: `tensor_cores` (f16 only) or one thread a query.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn fused_attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    tensor_cores: bool,
) -> Option<Result<Tensor>> {
    #[cfg(feature = "cuda")]
    {
        let d = q.dim(D::Minus1).ok()?;
        let dtype_ok = matches!(
            q.dtype(),
            candle_core::DType::F32 | candle_core::DType::F16 | candle_core::DType::BF16
        );
        let op = cuda::FlashAttnOp {
            tensor_cores,
            heads: 1,
            scale: 1.0,
        };
        let dims: &[usize] = if op.uses_tensor_cores(q.dtype()) {
            &cuda::FLASH_HEAD_DIMS
        } else {
            &SCALAR_ATTENTION_HEAD_DIMS
        };
        if q.device().is_cuda() && dtype_ok && dims.contains(&d) {
            let run = || -> Result<Tensor> {
                q.contiguous()?
                    .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
            };
            return Some(run());
        }
    }
    None
}

/// `LayerNorm(x) * (1 + scale) + shift` (no affine, f32 inside) in one pass on CUDA with our
/// kernels on: `x` (b, s, dim), `shift`/`scale` (b, dim); rounded to x's dtype where the
/// op-by-op chain rounds. None where the kernel does not apply (the caller composes candle ops).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn layer_norm_modulate(
    x: &Tensor,
    shift: &Tensor,
    scale: &Tensor,
    eps: f64,
    fast: bool,
) -> Option<Result<Tensor>> {
    #[cfg(feature = "cuda")]
    if fast && x.device().is_cuda() && x.rank() == 3 {
        let op = cuda::LnModulateOp { eps: eps as f32 };
        return Some(
            x.contiguous()
                .and_then(|x| x.apply_op3_no_bwd(&shift.contiguous()?, &scale.contiguous()?, &op)),
        );
    }
    None
}

/// `x + y * gate` in one pass on CUDA with our kernels on: `x`/`y` (b, s, dim), `gate` (b, dim).
/// None where the kernel does not apply.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn gated_residual(x: &Tensor, gate: &Tensor, y: &Tensor, fast: bool) -> Option<Result<Tensor>> {
    #[cfg(feature = "cuda")]
    if fast && x.device().is_cuda() && x.rank() == 3 {
        return Some(x.contiguous().and_then(|x| {
            x.apply_op3_no_bwd(
                &gate.contiguous()?,
                &y.contiguous()?,
                &cuda::GatedResidualOp,
            )
        }));
    }
    None
}

/// `xs` (b, c, h, w) plus `values` (b, c) broadcast over the positions (the ResNet's time
/// embedding); with `fast` on CUDA one pass of our kernel instead of candle's strided broadcast.
pub fn add_per_channel(xs: &Tensor, values: &Tensor, fast: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fast && xs.device().is_cuda() {
        let (b, c, h, w) = xs.dims4()?;
        return xs
            .contiguous()?
            .reshape((b * c, h * w))?
            .apply_op2_no_bwd(
                &values.contiguous()?.reshape(b * c)?,
                &cuda::BiasAddOp {
                    along_columns: false,
                },
            )?
            .reshape((b, c, h, w));
    }
    let _ = fast;
    xs.broadcast_add(&values.unsqueeze(2)?.unsqueeze(3)?)
}

/// candle_nn's `Linear`; on CUDA with our kernels on (`fast`), the leading dimensions flattened
/// into one GEMM and the bias added by our kernel (candle adds it through its general strided
/// broadcast, which costs more than the GEMM at the UNet's sizes).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn linear(layer: &candle_nn::Linear, xs: &Tensor, fast: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(y) = cuda_linear_unbiased(layer, xs, fast)? {
        let y = match layer.bias() {
            Some(bias) => y.apply_op2_no_bwd(
                bias,
                &cuda::BiasAddOp {
                    along_columns: true,
                },
            )?,
            None => y,
        };
        return with_leading_dims(&y, xs);
    }
    candle_core::Module::forward(layer, xs)
}

/// The feed-forward's projection then GEGLU: `geglu(linear(layer, xs))`, with the projection's
/// bias added inside the GEGLU kernel on CUDA (same rounding as the separate add).
pub fn linear_geglu(layer: &candle_nn::Linear, xs: &Tensor, fast: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let (Some(bias), Some(y)) = (layer.bias(), cuda_linear_unbiased(layer, xs, fast)?) {
        return with_leading_dims(&y.apply_op2_no_bwd(bias, &cuda::GegluOp)?, xs);
    }
    geglu(&linear(layer, xs, fast)?, fast)
}

/// On the fast CUDA path: `xs . weight^T` as one 2-D GEMM, (rows, out_features), without the
/// bias; None elsewhere.
#[cfg(feature = "cuda")]
fn cuda_linear_unbiased(
    layer: &candle_nn::Linear,
    xs: &Tensor,
    fast: bool,
) -> Result<Option<Tensor>> {
    if !(xs.device().is_cuda() && fast && xs.rank() >= 2) {
        return Ok(None);
    }
    let in_features = xs.dim(D::Minus1)?;
    let rows = xs.elem_count() / in_features.max(1);
    xs.contiguous()?
        .reshape((rows, in_features))?
        .matmul(&layer.weight().t()?)
        .map(Some)
}

/// A (rows, n) result back under `xs`'s leading dimensions: (..., n).
#[cfg(feature = "cuda")]
fn with_leading_dims(y: &Tensor, xs: &Tensor) -> Result<Tensor> {
    let mut dims = xs.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = y.dim(1)?;
    }
    y.reshape(dims)
}

/// Attention straight from the projections' layout on tensor cores (CUDA builds, f16/bf16, a
/// head size the kernel covers): `q` (b, n_q, heads*d), `k`/`v` (b, n_k,
/// heads*d), scores scaled by `scale` inside; no per-head copies, no scaled copy of q. None
/// where it does not apply (the caller splits the heads and takes another path).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn fused_attention_packed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
) -> Option<Result<Tensor>> {
    #[cfg(feature = "cuda")]
    {
        let op = cuda::FlashAttnOp {
            tensor_cores: true,
            heads,
            scale: scale as f32,
        };
        let d = q.dim(D::Minus1).ok()? / heads.max(1);
        if q.device().is_cuda()
            && op.uses_tensor_cores(q.dtype())
            && cuda::FLASH_HEAD_DIMS.contains(&d)
        {
            let run = || -> Result<Tensor> {
                q.contiguous()?
                    .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
            };
            return Some(run());
        }
    }
    None
}

/// (b, rows, cols) -> (b, cols, rows), contiguous: the NCHW <-> tokens reshuffle around the
/// spatial transformers; with `fast` on CUDA our tiled kernel (candle's strided copy writes or
/// reads with a stride).
pub fn transpose_last2(xs: &Tensor, fast: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fast && xs.device().is_cuda() && xs.rank() == 3 {
        return xs.contiguous()?.apply_op1_no_bwd(&cuda::TransposeOp);
    }
    let _ = fast;
    xs.transpose(1, 2)?.contiguous()
}

/// diffusers' GEGLU: `(..., 2d) -> first half * gelu_erf(second half)`; with `fast` (CUDA, or
/// the CPU in f32) one fused pass instead of two strided views, a GELU and a product.
pub fn geglu(xs: &Tensor, fast: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fast
        && xs.device().is_cuda()
        && matches!(
            xs.dtype(),
            candle_core::DType::F32 | candle_core::DType::F16 | candle_core::DType::BF16
        )
    {
        return xs.contiguous()?.apply_op1_no_bwd(&cuda::GegluOp);
    }
    if fast && xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        return xs.contiguous()?.apply_op1_no_bwd(&geglu_cpu::Geglu);
    }
    let half = xs.dim(D::Minus1)? / 2;
    let hidden = xs.narrow(D::Minus1, 0, half)?;
    let gate = xs.narrow(D::Minus1, half, half)?.gelu_erf()?;
    hidden * gate
}

/// What the kernel tests compare with: max |a - b| relative to max |b|, infinite on any NaN or
/// infinity (`nn::compare::max_rel_diff`).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    use candle_core::Tensor;

    pub fn rel(a: &Tensor, b: &Tensor) -> f32 {
        crate::engines::nn::compare::max_rel_diff(a, b).unwrap()
    }

    #[test]
    fn rel_fails_on_nan_anywhere() {
        let good = Tensor::new(&[1f32, 2.0, 3.0], &candle_core::Device::Cpu).unwrap();
        for at in 0..3 {
            let mut v = vec![1f32, 2.0, 3.0];
            v[at] = f32::NAN;
            let bad = Tensor::new(v.as_slice(), &candle_core::Device::Cpu).unwrap();
            assert_eq!(rel(&bad, &good), f32::INFINITY);
            assert_eq!(rel(&good, &bad), f32::INFINITY);
        }
    }
}
