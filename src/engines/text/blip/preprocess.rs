//! `BlipImageProcessor` (the PIL backend): RGB, resize with PIL's resampling, rescale, normalize.
//!
//! The resize re-implements Pillow's `ImagingResample` for 8-bit images (Resample.c): separable
//! convolution, horizontal pass first, the filter support widened by the downscale factor
//! (antialiasing), coefficients normalised per output pixel and quantised to 22-bit fixed point,
//! each pass rounded and clipped back to u8. Doing the same integer arithmetic gives the same
//! bytes as PIL, so pixel_values match transformers to float rounding (see tests/parity/parity_blip.rs).

use candle_core::{Device, Tensor};
use image::{DynamicImage, RgbImage};

use super::config::{PreprocessConfig, Resample};
use crate::error::{Error, Result};

/// Pillow's fixed-point precision for 8-bit resampling: 32 - 8 - 2 bits.
const PRECISION_BITS: u32 = 22;

/// Largest accepted side: beyond this the image is surely not a photo to caption.
const MAX_SIDE: u32 = 1 << 15;

fn bicubic(x: f64) -> f64 {
    // Keys' cubic with a = -0.5, as Pillow.
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Per output pixel: the first input index and the fixed-point weights (Pillow's
/// `precompute_coeffs` followed by `normalize_coeffs_8bpc`).
struct Coeffs {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn coeffs(in_size: usize, out_size: usize, resample: Resample) -> Coeffs {
    let (filter, base_support): (fn(f64) -> f64, f64) = match resample {
        Resample::Bicubic => (bicubic, 2.0),
        Resample::Bilinear => (bilinear, 1.0),
    };
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = base_support * filterscale;
    let ss = 1.0 / filterscale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // Pillow rounds with a C cast (truncation toward zero) of value + 0.5, then clamps.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let n = xmax.saturating_sub(xmin);
        let raw: Vec<f64> = (0..n)
            .map(|x| filter((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|w| {
                let w = if total != 0.0 { w / total } else { *w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                // C cast after adding +-0.5: round half away from zero.
                if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        starts.push(xmin);
        weights.push(fixed);
    }
    Coeffs { starts, weights }
}

fn clip8(acc: i64) -> u8 {
    let v = acc >> PRECISION_BITS;
    v.clamp(0, 255) as u8
}

/// Resamples a `w x h` RGB buffer along one axis; `horizontal` picks which.
fn pass(src: &[u8], w: usize, h: usize, out_len: usize, horizontal: bool, r: Resample) -> Vec<u8> {
    let (in_len, other) = if horizontal { (w, h) } else { (h, w) };
    let c = coeffs(in_len, out_len, r);
    let (ow, oh) = if horizontal {
        (out_len, h)
    } else {
        (w, out_len)
    };
    let mut out = vec![0u8; ow * oh * 3];
    for line in 0..other {
        for (o, (start, ws)) in c.starts.iter().zip(&c.weights).enumerate() {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (k, wgt) in ws.iter().enumerate() {
                let idx = if horizontal {
                    (line * w + start + k) * 3
                } else {
                    ((start + k) * w + line) * 3
                };
                for (ch, a) in acc.iter_mut().enumerate() {
                    *a += i64::from(src[idx + ch]) * i64::from(*wgt);
                }
            }
            let dst = if horizontal {
                (line * ow + o) * 3
            } else {
                (o * ow + line) * 3
            };
            for (ch, a) in acc.iter().enumerate() {
                out[dst + ch] = clip8(*a);
            }
        }
    }
    out
}

/// Pillow's `Image.resize((width, height), resample)` on an RGB image.
pub fn resize_like_pil(img: &RgbImage, width: usize, height: usize, r: Resample) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut buf = img.as_raw().clone();
    let mut cur_w = w;
    if width != w {
        buf = pass(&buf, w, h, width, true, r);
        cur_w = width;
    }
    if height != h {
        buf = pass(&buf, cur_w, h, height, false, r);
    }
    // The buffer has exactly width*height*3 bytes by construction; from_raw cannot fail then.
    RgbImage::from_raw(width as u32, height as u32, buf).unwrap_or_default()
}

/// The processor's `pixel_values` for one image: (1, 3, height, width) f32 on `device`.
pub fn pixel_values(
    image: &DynamicImage,
    cfg: &PreprocessConfig,
    device: &Device,
) -> Result<Tensor> {
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 {
        return Err(Error::bad_input(format!(
            "the image is {w}x{h}: nothing to caption; give a non-empty picture"
        )));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::bad_input(format!(
            "the image is {w}x{h}; sides over {MAX_SIDE} pixels are refused, scale it down first"
        )));
    }
    // PIL's convert("RGB"): alpha dropped (not composited), grey replicated.
    let rgb = image.to_rgb8();
    let rgb = if cfg.do_resize
        && (rgb.width() as usize != cfg.width || rgb.height() as usize != cfg.height)
    {
        resize_like_pil(&rgb, cfg.width, cfg.height, cfg.resample)
    } else {
        rgb
    };
    let (ow, oh) = (rgb.width() as usize, rgb.height() as usize);
    let plane = ow * oh;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for ch in 0..3 {
            // numpy: float64 multiply then a float32 cast; normalize in float32.
            let mut v = if cfg.do_rescale {
                (f64::from(px.0[ch]) * cfg.rescale_factor) as f32
            } else {
                f32::from(px.0[ch])
            };
            if cfg.do_normalize {
                v = (v - cfg.mean[ch]) / cfg.std[ch];
            }
            data[ch * plane + i] = v;
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, oh, ow), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(97, 48), (13, 48), (48, 48), (1000, 384)] {
            let c = coeffs(i, o, Resample::Bicubic);
            for ws in &c.weights {
                let s: i64 = ws.iter().map(|w| i64::from(*w)).sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= ws.len() as i64,
                    "{i}->{o}: {s}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let img = RgbImage::from_pixel(37, 11, image::Rgb([10, 128, 250]));
        let out = resize_like_pil(&img, 16, 16, Resample::Bicubic);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn empty_image_is_bad_input() {
        let cfg = PreprocessConfig {
            height: 16,
            width: 16,
            resample: Resample::Bicubic,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            mean: [0.5; 3],
            std: [0.5; 3],
        };
        let err = pixel_values(&DynamicImage::new_rgb8(0, 0), &cfg, &Device::Cpu);
        assert!(matches!(err, Err(Error::BadInput { .. })));
    }
}
