//! The additive causal mask of decoders and of CLIP's text encoder.

use candle_core::{Device, Result, Tensor};

/// (new, past + new) f32: new position `i` (at `past + i`) sees every cached position and the new
/// ones up to itself (0.0); later ones get `fill` (`f32::NEG_INFINITY`, or `f32::MIN` where the
/// reference uses the most negative finite value).
pub fn causal_mask(new: usize, past: usize, fill: f32, device: &Device) -> Result<Tensor> {
    let total = past + new;
    let values: Vec<f32> = (0..new)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { fill } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (new, total), device)
}
