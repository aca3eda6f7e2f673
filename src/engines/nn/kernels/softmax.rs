//! Softmax over the last dimension, in place, for f32 on the CPU: the attention scores' softmax
//! is half of the CPU attention's time with candle_nn's version (a zero-filled output, then a
//! scalar libm `exp` per element). Here each row is max, exp, sum and scale in place, with a
//! polynomial exp the compiler vectorizes (AVX2+FMA where the CPU has them, detected at run time).

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor};

use super::approx::exp_approx;
use super::threads::par_chunks_mut;

/// Rows handed to one task: enough work per thread spawn, small enough to balance.
const ROWS_PER_TASK: usize = 64;

/// `softmax(xs, last dim)`; with `fast` on the CPU in f32 computed in place in `xs`'s storage
/// (which must not be shared: pass a fresh tensor, such as a matmul's output).
pub fn softmax_last_dim(xs: Tensor, fast: bool) -> Result<Tensor> {
    if fast && xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.inplace_op1(&SoftmaxInPlace)?;
        return Ok(xs);
    }
    candle_nn::ops::softmax_last_dim(&xs)
}

struct SoftmaxInPlace;

impl InplaceOp1 for SoftmaxInPlace {
    fn name(&self) -> &'static str {
        "softmax-last-dim-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("in-place softmax takes f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("in-place softmax takes a contiguous tensor");
        };
        let cols = layout.dims().last().copied().unwrap_or(1).max(1);
        let rows = &mut data[start..end];
        par_chunks_mut(rows, cols * ROWS_PER_TASK, |_, chunk| {
            for row in chunk.chunks_mut(cols) {
                softmax_row(row);
            }
        });
        Ok(())
    }
}

pub(super) fn softmax_row(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { softmax_row_avx2(row) };
        return;
    }
    softmax_row_portable(row);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_row_avx2(row: &mut [f32]) {
    softmax_row_portable(row);
}

#[inline(always)]
fn softmax_row_portable(row: &mut [f32]) {
    const LANES: usize = 8;
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            max[l] = max[l].max(c[l]);
        }
    }
    let mut m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    for v in max {
        m = m.max(v);
    }
    if !m.is_finite() {
        // All -inf (or a NaN/inf score): leave it to the plain formula, which propagates NaN.
        let sum: f32 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter_mut().for_each(|x| *x = (*x - m).exp() / sum);
        return;
    }
    let mut sum = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let e = exp_approx(c[l] - m);
            c[l] = e;
            sum[l] += e;
        }
    }
    let mut total: f32 = 0.0;
    for x in chunks.into_remainder() {
        *x = exp_approx(*x - m);
        total += *x;
    }
    total += sum.iter().sum::<f32>();
    let inv = 1.0 / total;
    row.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::Device;

    #[test]
    fn matches_candle_softmax_and_leaves_other_paths_alone() {
        let dev = Device::Cpu;
        for cols in [1, 7, 8, 77, 4096] {
            let x = (Tensor::randn(0f32, 3., (3, 5, cols), &dev).unwrap() * 4.0).unwrap();
            let want = candle_nn::ops::softmax_last_dim(&x).unwrap();
            let ours = softmax_last_dim(x.copy().unwrap(), true).unwrap();
            assert!(rel(&ours, &want) < 1e-6, "{cols}");
            let sums = ours.sum_keepdim(2).unwrap().flatten_all().unwrap();
            for s in sums.to_vec1::<f32>().unwrap() {
                assert!((s - 1.0).abs() < 1e-5);
            }
        }
        let x = Tensor::randn(0f32, 1., (2, 9), &dev).unwrap();
        let plain = softmax_last_dim(x.copy().unwrap(), false).unwrap();
        assert!(rel(&plain, &candle_nn::ops::softmax_last_dim(&x).unwrap()) < 1e-7);
    }

    #[test]
    fn infinite_scores_behave_like_the_formula() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[f32::NEG_INFINITY, 0.0, 1.0]], &dev).unwrap();
        let ours = softmax_last_dim(x.copy().unwrap(), true).unwrap();
        let v = ours.to_vec2::<f32>().unwrap();
        assert_eq!(v[0][0], 0.0);
        assert!((v[0][1] + v[0][2] - 1.0).abs() < 1e-6);
    }
}
