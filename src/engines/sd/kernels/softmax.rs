//! Softmax over the last dimension, in place, for f32 on the CPU: the attention scores' softmax
//! is half of the CPU attention's time with candle_nn's version (a zero-filled output, then a
//! scalar libm `exp` per element). Here each row is max, exp, sum and scale in place, with a
//! polynomial exp the compiler vectorizes (AVX2+FMA where the CPU has them, detected at run time).

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor};

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

/// exp(x) for x <= 0 (softmax inputs after the max is subtracted): Cody-Waite reduction
/// x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, then 2^n through the
/// exponent bits. Relative error about 1e-7; inputs below -87 give 0 (e^-87 is far below any
/// row sum, which is at least 1).
#[inline(always)]
pub(super) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let bits = (t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    let e = er * f32::from_bits(bits as u32);
    if underflow { 0.0 } else { e }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::sd::kernels::test_support::rel;
    use candle_core::Device;

    #[test]
    fn exp_approx_is_accurate_over_the_softmax_range() {
        let mut worst = 0f32;
        for i in 0..=20_000 {
            let x = -87.0 * i as f32 / 20_000.0;
            let want = x.exp();
            let got = exp_approx(x);
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!(exp_approx(-1000.0), 0.0);
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
    }

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
