//! CPU fast paths for the encoder, where candle leaves cores idle or churns memory, each with the
//! plain candle op as the fallback (other devices, other dtypes, strided inputs):
//! - the exact GELU: candle's unary ops run on one thread; ours splits the tensor over all cores
//!   and computes the very same formula, so results are bit-identical;
//! - attention over long sequences (the encoder's 1500 positions): scores of all heads at once
//!   are a (heads x t x t) f32 tensor of ~72 MB that every layer allocates fresh (mmap, page faults
//!   on first touch) and evicts from cache; one head at a time keeps them at ~9 MB, reused.
//!
//! The decoder's single-row products stay on candle's one-threaded gemv: splitting them over
//! threads spawned per step measured 3x slower on a busy machine (each spawn waits for a core).

use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};

/// Scores above this many bytes are computed one head at a time.
const SCORES_SPLIT_BYTES: usize = 8 << 20;

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

/// `softmax(q k^T + mask) v` for `(b, heads, t, head_dim)` inputs; `q` already scaled. Softmax in
/// f32: candle's CPU kernel sums in the tensor's dtype, which costs bf16 ~7% over a few hundred
/// positions (torch accumulates half types in f32 too).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, heads, t, _) = q.dims4()?;
    let kv_len = k.dim(2)?;
    let one = |q: &Tensor, k: &Tensor, v: &Tensor| -> candle_core::Result<Tensor> {
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
            .to_dtype(scores.dtype())?;
        weights.matmul(v)
    };
    let head = |h: usize| {
        one(
            &q.narrow(1, h, 1)?,
            &k.narrow(1, h, 1)?,
            &v.narrow(1, h, 1)?,
        )
    };
    if heads < 2 || b * heads * t * kv_len * 4 <= SCORES_SPLIT_BYTES {
        return one(q, k, v);
    }
    let parts = (0..heads)
        .map(head)
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
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
        let q = Tensor::randn(0f32, 1., (1, 4, 1100, 8), &dev)?;
        let k = Tensor::randn(0f32, 1., (1, 4, 1100, 8), &dev)?;
        let v = Tensor::randn(0f32, 1., (1, 4, 1100, 8), &dev)?;
        let split = attention(&q, &k, &v, None)?;
        let whole = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?.matmul(&v)?;
        let (diff, _) = max_abs_diff(&split, &whole)?;
        assert!(diff < 1e-5);
        Ok(())
    }
}
