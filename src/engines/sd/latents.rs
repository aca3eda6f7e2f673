//! Conversions between images and tensors, mask preparation, seeded noise per image, and the cheap
//! latent preview (a linear latent-to-RGB projection, no VAE).

use candle_core::{DType, Device, Tensor};

use super::noise::{NoiseSource, SeededNoise};
use crate::engines::progress::RgbPreview;
use crate::error::{Error, Result};

/// RGB u8 image -> (1, 3, H, W) tensor in [-1, 1], as diffusers' VaeImageProcessor normalises.
pub fn image_to_tensor(image: &image::RgbImage, device: &Device, dtype: DType) -> Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let data: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 127.5 - 1.0)
        .collect();
    let t = Tensor::from_vec(data, (h, w, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .to_device(device)?
        .to_dtype(dtype)?;
    Ok(t)
}

/// Binarised mask (1 = repaint) at full size, (1, 1, H, W), as diffusers' mask processor does
/// (scale to 0..1, then >= 0.5 -> 1).
pub fn mask_to_tensor(mask: &image::GrayImage, device: &Device, dtype: DType) -> Result<Tensor> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let data: Vec<f32> = mask
        .as_raw()
        .iter()
        .map(|&v| if f32::from(v) / 255.0 < 0.5 { 0.0 } else { 1.0 })
        .collect();
    Ok(Tensor::from_vec(data, (1, 1, h, w), &Device::Cpu)?
        .to_device(device)?
        .to_dtype(dtype)?)
}

/// Nearest-neighbour downscale of a (1,1,H,W) mask to latent size, as torch's interpolate default.
pub fn mask_to_latent_size(mask: &Tensor, lh: usize, lw: usize) -> Result<Tensor> {
    let (_, _, h, w) = mask.dims4()?;
    let rows: Vec<u32> = (0..lh).map(|i| ((i * h) / lh) as u32).collect();
    let cols: Vec<u32> = (0..lw).map(|j| ((j * w) / lw) as u32).collect();
    let device = mask.device();
    let rows = Tensor::new(rows.as_slice(), device)?;
    let cols = Tensor::new(cols.as_slice(), device)?;
    Ok(mask.index_select(&rows, 2)?.index_select(&cols, 3)?)
}

/// Decoded VAE output (B, 3, H, W) in [-1, 1] -> u8 images, rounding like diffusers' numpy_to_pil.
pub fn tensor_to_images(decoded: &Tensor) -> Result<Vec<image::RgbImage>> {
    let x = ((decoded.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
    let (b, _, h, w) = x.dims4()?;
    let x = (x.permute((0, 2, 3, 1))? * 255.0)?
        .round()?
        .to_device(&Device::Cpu)?;
    let mut out = Vec::with_capacity(b);
    for i in 0..b {
        let data: Vec<u8> = x
            .get(i)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v as u8)
            .collect();
        let img = image::RgbImage::from_raw(w as u32, h as u32, data)
            .ok_or_else(|| Error::job_failed("decoded image has an unexpected size"))?;
        out.push(img);
    }
    Ok(out)
}

/// Standard-normal noise for a batch: image i is drawn from seed + i, so any image of a batch can be
/// reproduced alone with its own seed.
pub fn seeded_noise(
    seeds: &[u64],
    shape: (usize, usize, usize),
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let (c, h, w) = shape;
    let mut parts = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let mut source = SeededNoise::new(seed);
        parts.push(source.randn(&[1, c, h, w], device, dtype)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Whether every value is finite (no NaN, no infinity).
pub fn all_finite(t: &Tensor) -> Result<bool> {
    let sum = t
        .to_dtype(DType::F32)?
        .abs()?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(sum.is_finite())
}

// Latent-to-RGB factors for a quick preview (widely used approximations for the SD 1.x/2.x and SDXL VAEs).
const SD_FACTORS: [[f32; 3]; 4] = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
];
const SDXL_FACTORS: [[f32; 3]; 4] = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
];

/// A cheap RGB look at the first image's latents (latent resolution, no VAE).
pub fn latent_preview(latents: &Tensor, sdxl: bool) -> Result<RgbPreview> {
    let factors = if sdxl { &SDXL_FACTORS } else { &SD_FACTORS };
    let first = latents
        .get(0)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?;
    let (c, h, w) = first.dims3()?;
    let channels = c.min(4);
    let flat = first.flatten_from(1)?.to_vec2::<f32>()?;
    let mut pixels = Vec::with_capacity(h * w * 3);
    for p in 0..h * w {
        let mut rgb = [0.0f32; 3];
        for (row, factor) in flat.iter().zip(factors).take(channels) {
            for (v, f) in rgb.iter_mut().zip(factor) {
                *v += row[p] * f;
            }
        }
        for v in rgb {
            pixels.push((((v + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    Ok(RgbPreview {
        width: w as u32,
        height: h as u32,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trips_through_tensor() {
        let mut img = image::RgbImage::new(8, 4);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 30) as u8, (y * 60) as u8, 255 - (x * 20) as u8]);
        }
        let t = image_to_tensor(&img, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(t.dims(), &[1, 3, 4, 8]);
        let back = tensor_to_images(&t).unwrap();
        assert_eq!(back[0], img);
    }

    #[test]
    fn mask_is_binarised_and_downscaled_nearest() {
        let mut m = image::GrayImage::new(16, 16);
        for (x, y, p) in m.enumerate_pixels_mut() {
            p.0[0] = if x >= 8 && y < 8 { 200 } else { 100 };
        }
        let t = mask_to_tensor(&m, &Device::Cpu, DType::F32).unwrap();
        let small = mask_to_latent_size(&t, 2, 2).unwrap();
        let v = small.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn batch_noise_uses_one_seed_per_image() {
        let both = seeded_noise(&[7, 8], (4, 2, 2), &Device::Cpu, DType::F32).unwrap();
        let alone = seeded_noise(&[8], (4, 2, 2), &Device::Cpu, DType::F32).unwrap();
        let diff = (both.get(1).unwrap() - alone.get(0).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn non_finite_values_are_detected() {
        let ok = Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let bad = Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu).unwrap();
        assert!(all_finite(&ok).unwrap());
        assert!(!all_finite(&bad).unwrap());
    }

    #[test]
    fn preview_has_latent_resolution() {
        let lat = Tensor::zeros((1, 4, 3, 5), DType::F32, &Device::Cpu).unwrap();
        let p = latent_preview(&lat, false).unwrap();
        assert_eq!((p.width, p.height, p.pixels.len()), (5, 3, 45));
    }
}
