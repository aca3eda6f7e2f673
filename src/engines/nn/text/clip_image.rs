//! transformers' CLIPImageProcessor (`image_processor/preprocessor_config.json`): resize (the
//! shortest side to `size.shortest_edge`, the long side truncated in proportion; or to
//! `size.height` x `size.width`) with bicubic filtering, center crop to `crop_size`, rescale
//! (`rescale_factor`, 1/255) and normalize by `image_mean` / `image_std`, channels first.
//!
//! The resize is the image crate's Catmull-Rom (bicubic, a = -0.5, widened when shrinking as
//! PIL and torchvision's antialiased bicubic are); its rounding is not torchvision's bit for bit.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::engines::config_check::{bad_config, read_config};
use crate::error::Result;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Shortest { shortest_edge: u32 },
    Exact { height: u32, width: u32 },
    Square(u32),
}

fn yes() -> bool {
    true
}
fn default_size() -> Size {
    Size::Shortest { shortest_edge: 224 }
}
fn default_crop() -> Size {
    Size::Exact {
        height: 224,
        width: 224,
    }
}
fn rescale() -> f64 {
    1.0 / 255.0
}
fn clip_mean() -> [f64; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn clip_std() -> [f64; 3] {
    [0.268_629_54, 0.261_302_58, 0.275_777_11]
}

/// The processor's settings (CLIPImageProcessor's defaults where a key is absent).
#[derive(Debug, Clone, Deserialize)]
pub struct ClipImageProcessor {
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default = "default_size")]
    size: Size,
    #[serde(default = "yes")]
    do_center_crop: bool,
    #[serde(default = "default_crop")]
    crop_size: Size,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default = "clip_mean")]
    image_mean: [f64; 3],
    #[serde(default = "clip_std")]
    image_std: [f64; 3],
}

impl ClipImageProcessor {
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        let p: Self = serde_json::from_str(&text)
            .map_err(|e| bad_config(path, &format!("not a CLIPImageProcessor config: {e}")))?;
        let zero_size = match p.size {
            Size::Shortest { shortest_edge } => shortest_edge == 0,
            Size::Exact { height, width } => height == 0 || width == 0,
            Size::Square(s) => s == 0,
        };
        if zero_size || p.crop() == Some((0, 0)) || p.image_std.contains(&0.0) {
            return Err(bad_config(
                path,
                "`size`, `crop_size` and `image_std` must be above 0",
            ));
        }
        Ok(p)
    }

    fn crop(&self) -> Option<(u32, u32)> {
        if !self.do_center_crop {
            return None;
        }
        Some(match self.crop_size {
            Size::Exact { height, width } => (width, height),
            Size::Square(s) | Size::Shortest { shortest_edge: s } => (s, s),
        })
    }

    /// The size an image of `w` x `h` is resized to.
    fn resized(&self, w: u32, h: u32) -> (u32, u32) {
        match self.size {
            Size::Shortest { shortest_edge: s } => {
                let (short, long) = (w.min(h), w.max(h));
                let other = (u64::from(s) * u64::from(long) / u64::from(short.max(1))) as u32;
                if w <= h { (s, other) } else { (other, s) }
            }
            Size::Exact { height, width } => (width, height),
            Size::Square(s) => (s, s),
        }
    }

    /// The image → pixel values (1, 3, H, W), f32, on `device`.
    pub fn preprocess(&self, image: &image::RgbImage, device: &Device) -> Result<Tensor> {
        let mut img = image.clone();
        if self.do_resize {
            let (w, h) = self.resized(img.width(), img.height());
            if (w, h) != img.dimensions() {
                img = image::imageops::resize(&img, w, h, image::imageops::FilterType::CatmullRom);
            }
        }
        if let Some((cw, ch)) = self.crop() {
            let (w, h) = img.dimensions();
            let (cw, ch) = (cw.min(w), ch.min(h));
            // torchvision: int(round((size - crop) / 2)), halves to even.
            let offset =
                |size: u32, crop: u32| ((f64::from(size - crop)) / 2.0).round_ties_even() as u32;
            img = image::imageops::crop_imm(&img, offset(w, cw), offset(h, ch), cw, ch).to_image();
        }
        let (w, h) = (img.width() as usize, img.height() as usize);
        let plane = w * h;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                let mut v = f64::from(px[c]);
                if self.do_rescale {
                    v *= self.rescale_factor;
                }
                if self.do_normalize {
                    v = (v - self.image_mean[c]) / self.image_std[c];
                }
                data[c * plane + i] = v as f32;
            }
        }
        Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_resize_and_center_crop() {
        let p: ClipImageProcessor = serde_json::from_str(
            r#"{"size": {"shortest_edge": 4}, "crop_size": {"height": 4, "width": 4}}"#,
        )
        .unwrap();
        assert_eq!(p.resized(10, 5), (8, 4));
        assert_eq!(p.resized(5, 10), (4, 8));
        let img = image::RgbImage::from_fn(6, 4, |x, _| image::Rgb([x as u8 * 40, 0, 255]));
        let t = p.preprocess(&img, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), [1, 3, 4, 4]);
        // Cropped from x = 1: the first red value is 40 / 255, normalised.
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let want = ((40.0 / 255.0 - 0.481_454_66) / 0.268_629_54) as f32;
        assert!((v[0] - want).abs() < 1e-5, "{} vs {want}", v[0]);
    }
}
