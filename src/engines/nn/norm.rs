//! The norms every family builds from a VarBuilder: LayerNorm and RMSNorm (candle_nn's, with
//! the checkpoint's names `weight` / `bias`) and GroupNorm (diffusers' affine GroupNorm on the
//! fused kernels of `nn::kernels`). The eps is always
//! the caller's: the model's config, or PyTorch's default where the model hard-codes it.

use candle_core::Result;
use candle_nn::{LayerNorm, RmsNorm, VarBuilder};

use crate::engines::nn::kernels::{GroupNorm, Kernels};

/// PyTorch's `nn.LayerNorm` / `nn.GroupNorm` default eps, which models that do not configure it
/// (Whisper, MusicGen, Parler, SD's transformer blocks) run with.
pub const TORCH_NORM_EPS: f64 = 1e-5;

/// LayerNorm with weight and bias over the last `size` values.
pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb)
}

/// RMSNorm (weight only, no mean removed) over the last `size` values.
pub fn rms_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<RmsNorm> {
    candle_nn::rms_norm(size, eps, vb)
}

/// GroupNorm with weight and bias over `channels` in `groups`; `kernels` picks ours (fused, with
/// `forward_silu`) or candle's.
pub fn group_norm(
    groups: usize,
    channels: usize,
    eps: f64,
    vb: VarBuilder,
    kernels: Kernels,
) -> Result<GroupNorm> {
    let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?;
    let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?;
    Ok(GroupNorm::new(weight, bias, channels, groups, eps)?.with_kernels(kernels))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module, Tensor};

    fn vb_with(tensors: &[(&str, Tensor)]) -> VarBuilder<'static> {
        let map = tensors
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
    }

    fn row(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn layer_and_rms_norm_follow_their_formulas() {
        let xs = row(&[1.0, 2.0, 4.0, -3.0]).reshape((1, 4)).unwrap();
        let w = row(&[1.0, 0.5, 2.0, -1.0]);
        let b = row(&[0.0, 1.0, 0.0, 0.5]);
        let ln = layer_norm(
            4,
            1e-5,
            vb_with(&[("weight", w.clone()), ("bias", b.clone())]),
        )
        .unwrap()
        .forward(&xs)
        .unwrap();
        let rms = rms_norm(4, 1e-6, vb_with(&[("weight", w.clone())]))
            .unwrap()
            .forward(&xs)
            .unwrap();
        let x = [1.0f32, 2.0, 4.0, -3.0];
        let (wv, bv) = ([1.0f32, 0.5, 2.0, -1.0], [0.0f32, 1.0, 0.0, 0.5]);
        let mean = x.iter().sum::<f32>() / 4.0;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        let ln = ln.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let rms = rms.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..4 {
            let want_ln = (x[i] - mean) / (var + 1e-5).sqrt() * wv[i] + bv[i];
            let want_rms = x[i] / (ms + 1e-6).sqrt() * wv[i];
            assert!((ln[i] - want_ln).abs() < 1e-5, "{i}: {} {want_ln}", ln[i]);
            assert!(
                (rms[i] - want_rms).abs() < 1e-5,
                "{i}: {} {want_rms}",
                rms[i]
            );
        }
    }

    #[test]
    fn group_norm_reads_weight_and_bias_and_matches_candles() {
        let xs = Tensor::arange(0f32, 32., &Device::Cpu)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((1, 4, 2, 4))
            .unwrap();
        let w = row(&[1.0, 2.0, -1.0, 0.5]);
        let b = row(&[0.1, 0.0, 0.3, -0.2]);
        let vb = vb_with(&[("weight", w.clone()), ("bias", b.clone())]);
        let ours = group_norm(2, 4, 1e-6, vb, Kernels::Stock).unwrap();
        let plain = candle_nn::GroupNorm::new(w, b, 4, 2, 1e-6).unwrap();
        let (a, want) = (ours.forward(&xs).unwrap(), plain.forward(&xs).unwrap());
        let diff = crate::engines::nn::compare::max_abs_diff(&a, &want)
            .unwrap()
            .0;
        assert_eq!(diff, 0.0);
    }
}
