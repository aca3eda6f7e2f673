//! A CPU fast path for the encoder, where candle leaves cores idle, with the plain candle op as
//! the fallback (other devices, other dtypes, strided inputs): the exact GELU. candle's unary ops
//! run on one thread; ours splits the tensor over all cores and computes the very same formula,
//! so results are bit-identical. (Attention over the encoder's 1500 positions, one head at a
//! time, is the shared `nn::attention`'s `Numerics::split_heads_above`.)
//!
//! The decoder's single-row products stay on candle's one-threaded gemv: splitting them over
//! threads spawned per step measured 3x slower on a busy machine (each spawn waits for a core).

use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};

fn threads() -> usize {
    candle_core::utils::get_num_threads().clamp(1, 16)
}

/// Runs `f` on `threads` contiguous chunks of `src`/`dst` at once (the last on this thread).
fn par_map(src: &[f32], dst: &mut [f32], f: fn(&[f32], &mut [f32])) {
    let n = threads();
    let chunk = src.len().div_ceil(n).max(1 << 14);
    std::thread::scope(|s| {
        let mut pairs = src.chunks(chunk).zip(dst.chunks_mut(chunk)).peekable();
        while let Some((a, b)) = pairs.next() {
            if pairs.peek().is_none() {
                f(a, b);
            } else {
                s.spawn(move || f(a, b));
            }
        }
    });
}

fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) {
    for (d, v) in dst.iter_mut().zip(src) {
        // candle's `gelu_erf` for f32, term for term.
        *d = (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v;
    }
}

struct GeluErf;

impl candle_core::CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "whisper-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("gelu: input not contiguous".into()))?;
        let src = &storage.as_slice::<f32>()?[start..end];
        let mut dst = vec![0f32; src.len()];
        par_map(src, &mut dst, gelu_erf_slice);
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// The exact (erf) GELU, on all cores for contiguous f32 CPU tensors.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.is_contiguous() {
        x.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::nn::compare::max_abs_diff;

    #[test]
    fn fast_paths_match_candle() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2., (3, 40_000), &dev)?;
        let (diff, _) = max_abs_diff(&gelu_erf(&x)?, &x.gelu_erf()?)?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
