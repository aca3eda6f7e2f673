//! diffusers' GEGLU on the CPU in f32 in one pass: `out = x[.., :d] * gelu_erf(x[.., d:])`
//! with a vectorizable erf (Abramowitz and Stegun 7.1.26: 1.5e-7, 4.2e-7 in f32) instead
//! of candle's scalar erf over a strided view and a separate product.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};

use super::approx::erf_approx;
use super::threads::par_chunks_mut;

/// Rows handed to one task.
const ROWS_PER_TASK: usize = 64;

pub struct Geglu;

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        "pallaidium-cpu-geglu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(data), Some((a, b))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("CPU GEGLU takes a contiguous f32 tensor");
        };
        let mut dims = layout.dims().to_vec();
        let two_d = dims.last().copied().unwrap_or(0);
        if two_d == 0 || two_d % 2 != 0 {
            candle_core::bail!("GEGLU needs an even last dimension, got {dims:?}");
        }
        let d = two_d / 2;
        if let Some(last) = dims.last_mut() {
            *last = d;
        }
        let x = &data[a..b];
        let mut out = vec![0f32; x.len() / 2];
        par_chunks_mut(&mut out, d * ROWS_PER_TASK, |task, chunk| {
            for (i, o) in chunk.chunks_mut(d).enumerate() {
                let row = task * ROWS_PER_TASK + i;
                let src = &x[row * two_d..(row + 1) * two_d];
                geglu_row(&src[..d], &src[d..], o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

fn geglu_row(hidden: &[f32], gate: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { geglu_row_avx2(hidden, gate, out) };
        return;
    }
    geglu_row_portable(hidden, gate, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn geglu_row_avx2(hidden: &[f32], gate: &[f32], out: &mut [f32]) {
    geglu_row_portable(hidden, gate, out);
}

#[inline(always)]
fn geglu_row_portable(hidden: &[f32], gate: &[f32], out: &mut [f32]) {
    for ((o, &h), &g) in out.iter_mut().zip(hidden).zip(gate) {
        *o = h * 0.5 * g * (1.0 + erf_approx(g * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::{D, Device, Tensor};

    #[test]
    fn matches_candle_narrow_gelu_mul() {
        let dev = Device::Cpu;
        for (rows, d) in [(3, 5), (130, 64), (1, 1)] {
            let x = (Tensor::randn(0f32, 1., (2, rows, 2 * d), &dev).unwrap() * 3.0).unwrap();
            let want = (x.narrow(D::Minus1, 0, d).unwrap()
                * x.narrow(D::Minus1, d, d).unwrap().gelu_erf().unwrap())
            .unwrap();
            let ours = x.apply_op1_no_bwd(&Geglu).unwrap();
            assert_eq!(ours.dims(), want.dims());
            // Absolute: a 1x1 case may have an output near 0, where a relative bound means nothing.
            let (abs, _) = crate::engines::nn::compare::max_abs_diff(&ours, &want).unwrap();
            assert!(abs < 2e-5, "{rows} {d}: {abs}");
            if rows * d > 100 {
                assert!(rel(&ours, &want) < 1e-6, "{rows} {d}");
            }
        }
    }
}
