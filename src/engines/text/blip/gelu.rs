//! The vision MLP's exact (erf) GELU on all CPU cores. candle's `gelu_erf` maps elements on one
//! thread; over the ViT's (577, 3072) activations in every layer that single-threaded pass is a
//! visible share of encoding. Same per-element formula (`erf_f32`), so results are bit-identical.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::Activation;

/// Below this many elements threads cost more than they save.
const PARALLEL_MIN: usize = 1 << 16;

struct ParallelGeluErf;

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("parallel-gelu-erf needs a contiguous tensor");
        };
        let src = &storage.as_slice::<f32>()?[start..end];
        let mut out = vec![0f32; src.len()];
        let threads = candle_core::utils::get_num_threads().max(1);
        let chunk = src.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (dst, src) in out.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2)
                            + 1.)
                            * 0.5
                            * v;
                    }
                });
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// `act` applied to `xs`, with the exact GELU of large contiguous f32 CPU tensors spread over
/// threads; everything else goes through candle.
pub(super) fn apply(act: &Activation, xs: &Tensor) -> Result<Tensor> {
    let parallel = matches!(act, Activation::Gelu)
        && xs.device().is_cpu()
        && xs.dtype() == DType::F32
        && xs.is_contiguous()
        && xs.elem_count() >= PARALLEL_MIN;
    if parallel {
        xs.apply_op1_no_bwd(&ParallelGeluErf)
    } else {
        act.forward(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candles_gelu_erf_exactly() {
        let n = PARALLEL_MIN * 2 + 7;
        let xs: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 1e-4).collect();
        let xs = Tensor::from_vec(xs, (n,), &Device::Cpu).unwrap();
        let ours = apply(&Activation::Gelu, &xs)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let theirs = xs.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(ours, theirs);
    }
}
