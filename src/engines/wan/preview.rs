//! A look at a clip while it denoises (no VAE): the middle latent frame through the flow
//! families' cheap channel mix (`flux::preview`), at latent resolution. It shows composition and
//! motion progress, not colour.

use candle_core::{IndexOp, Tensor};

use crate::engines::flux::preview::latent_preview;
use crate::engines::progress::RgbPreview;
use crate::error::Result;

/// The middle frame of video latents (b, c, f, h, w) as an RGB preview.
pub fn middle_frame_preview(latents: &Tensor) -> Result<RgbPreview> {
    let (_, _, frames, _, _) = latents.dims5()?;
    let middle = latents.i((.., .., frames / 2))?.contiguous()?;
    latent_preview(&middle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn the_preview_is_the_middle_latent_frame() {
        // Frame k holds the value k everywhere but one bright pixel in the middle frame.
        let (c, f, h, w) = (16, 3, 4, 6);
        let mut data = vec![0f32; c * f * h * w];
        for ch in 0..c {
            for k in 0..f {
                for p in 0..h * w {
                    data[((ch * f + k) * h * w) + p] = k as f32;
                }
            }
            data[((ch * f + 1) * h * w) + 5] = 100.0;
        }
        let t = Tensor::from_vec(data, (1, c, f, h, w), &Device::Cpu).unwrap();
        let p = middle_frame_preview(&t).unwrap();
        assert_eq!((p.width, p.height, p.pixels.len()), (6, 4, 72));
        // The middle frame's one odd pixel stands out; a constant frame would be flat.
        let first = &p.pixels[..3];
        assert!(p.pixels.chunks(3).any(|px| px != first));
        let bf16 = t.to_dtype(DType::BF16).unwrap();
        assert_eq!(middle_frame_preview(&bf16).unwrap().pixels.len(), 72);
    }
}
