//! A cheap look at FLUX latents during denoising (no VAE): the 16 channels projected onto three
//! fixed random-sign mixes and stretched to the image's own range. It shows composition and
//! progress, not colour.

use candle_core::{DType, Device, Tensor};

use crate::engines::progress::RgbPreview;
use crate::error::Result;

/// The first image of unpacked latents (b, c, h, w) as an RGB preview at latent resolution.
pub fn latent_preview(latents: &Tensor) -> Result<RgbPreview> {
    let first = latents
        .get(0)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?;
    let (c, h, w) = first.dims3()?;
    let flat = first.flatten_from(1)?.to_vec2::<f32>()?;
    let mut mixed = vec![[0.0f32; 3]; h * w];
    for (ch, row) in flat.iter().enumerate().take(c) {
        // A fixed pattern of signs per channel and colour: neighbouring channels differ.
        let sign = |k: usize| if (ch * 7 + k * 3) % 5 < 2 { -1.0 } else { 1.0 };
        for (p, v) in row.iter().enumerate() {
            for (k, out) in mixed[p].iter_mut().enumerate() {
                *out += sign(k) * v;
            }
        }
    }
    let mut pixels = Vec::with_capacity(h * w * 3);
    let range = |k: usize| {
        mixed.iter().fold((f32::MAX, f32::MIN), |(lo, hi), m| {
            (lo.min(m[k]), hi.max(m[k]))
        })
    };
    let ranges = [range(0), range(1), range(2)];
    for m in &mixed {
        for (k, (lo, hi)) in ranges.iter().enumerate() {
            let span = (hi - lo).max(1e-6);
            pixels.push((((m[k] - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    Ok(RgbPreview {
        width: w as u32,
        height: h as u32,
        pixels,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn preview_has_the_latent_size_and_uses_the_range() {
        let t = Tensor::arange(0f32, 16.0 * 4.0 * 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 16, 4, 6))
            .unwrap();
        let p = latent_preview(&t).unwrap();
        assert_eq!((p.width, p.height, p.pixels.len()), (6, 4, 72));
        assert!(p.pixels.contains(&0) && p.pixels.contains(&255));
    }
}
