//! An image in and out of the network's planes: 8- or 16-bit, grey or colour, with or without
//! alpha, in 0..1; out as 8-bit RGB(A), rounded as `RealESRGANer` does.

use image::DynamicImage;

use super::Upscaler;
use super::tiles::{Planes, upscale_planes};
use crate::engines::{CancelToken, EngineEvent, ProgressSink};

/// Luma weights of `cv2.COLOR_BGR2GRAY`, which turns the alpha pass back into one channel.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The colour planes, and the alpha replicated to three planes when the image has one. Depths
/// above 8 bits scale by their own maximum (65535), as `RealESRGANer` does for 16-bit input.
fn to_planes(image: &DynamicImage) -> (Planes, Option<Planes>) {
    let rgba = image.to_rgba32f();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let n = w * h;
    let mut rgb = vec![0f32; 3 * n];
    let mut alpha = image.color().has_alpha().then(|| vec![0f32; 3 * n]);
    for (i, p) in rgba.pixels().enumerate() {
        for c in 0..3 {
            rgb[c * n + i] = p.0[c];
        }
        if let Some(a) = &mut alpha {
            for c in 0..3 {
                a[c * n + i] = p.0[3];
            }
        }
    }
    let planes = |data| Planes { h, w, data };
    (planes(rgb), alpha.map(planes))
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

pub fn upscale_image(
    up: &Upscaler,
    image: &DynamicImage,
    tile: Option<u32>,
    sink: &dyn ProgressSink,
    cancel: &CancelToken,
) -> crate::Result<DynamicImage> {
    let (rgb, alpha) = to_planes(image);
    let passes = 1 + usize::from(alpha.is_some());
    let started = std::time::Instant::now();
    let report = |pass: usize| {
        move |done: usize, total: usize| {
            let (step, steps) = ((pass * total + done) as u32, (passes * total) as u32);
            let elapsed_s = started.elapsed().as_secs_f64();
            let eta_s = elapsed_s / f64::from(step.max(1)) * f64::from(steps - step);
            sink.emit(EngineEvent::Progress {
                step,
                steps,
                elapsed_s,
                eta_s,
            });
        }
    };
    let out = upscale_planes(up, &rgb, tile, cancel, &mut report(0))?;
    let out_alpha = match &alpha {
        Some(a) => Some(upscale_planes(up, a, tile, cancel, &mut report(1))?),
        None => None,
    };
    let (w, h) = (out.w as u32, out.h as u32);
    let n = out.w * out.h;
    let d = &out.data;
    Ok(match out_alpha {
        None => DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let i = y as usize * out.w + x as usize;
            image::Rgb([to_u8(d[i]), to_u8(d[n + i]), to_u8(d[2 * n + i])])
        })),
        Some(a) => {
            let a = &a.data;
            DynamicImage::ImageRgba8(image::RgbaImage::from_fn(w, h, |x, y| {
                let i = y as usize * out.w + x as usize;
                let luma = LUMA[0] * a[i] + LUMA[1] * a[n + i] + LUMA[2] * a[2 * n + i];
                image::Rgba([
                    to_u8(d[i]),
                    to_u8(d[n + i]),
                    to_u8(d[2 * n + i]),
                    to_u8(luma),
                ])
            }))
        }
    })
}
