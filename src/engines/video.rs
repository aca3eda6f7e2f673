//! A generated video clip: 8-bit RGB frames of one size and a frame rate, as the video engines
//! hand it to the output writer (`jobs::output::video`), made from a VAE's decoded frames.

use candle_core::{DType, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct VideoClip {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Row-major RGB, `width * height * 3` bytes each.
    pub frames: Vec<Vec<u8>>,
}

impl VideoClip {
    /// From decoded frames (1, 3, frames, height, width) in [-1, 1] (a VAE's output), rounded
    /// as the image pipelines round ((x + 1) / 2 * 255, clamped).
    pub fn from_decoded(x: &Tensor, fps: u32) -> candle_core::Result<Self> {
        let (b, c, _, h, w) = x.dims5()?;
        if b != 1 || c != 3 {
            return Err(candle_core::Error::Msg(format!(
                "decoded video must be (1, 3, frames, height, width), got {:?}",
                x.dims()
            )));
        }
        // (f, h, w, 3) bytes.
        let bytes = ((x.to_dtype(DType::F32)?.squeeze(0)? + 1.0)? * 127.5)?
            .clamp(0f32, 255f32)?
            .round()?
            .permute((1, 2, 3, 0))?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let frame_len = h * w * 3;
        Ok(Self {
            width: w as u32,
            height: h as u32,
            fps,
            frames: bytes.chunks(frame_len).map(<[u8]>::to_vec).collect(),
        })
    }

    /// Seconds the clip lasts at its frame rate.
    pub fn duration_s(&self) -> f64 {
        self.frames.len() as f64 / f64::from(self.fps.max(1))
    }
}

/// An image-to-video first frame at the clip's size, as diffusers' video processor makes it:
/// as given when it already is, else resized with Lanczos (PIL's default there).
pub fn fit_to_clip(image: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
    if image.dimensions() == (width, height) {
        image.clone()
    } else {
        image::imageops::resize(image, width, height, image::imageops::FilterType::Lanczos3)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn decoded_frames_become_rgb_rows() {
        // Two 1x2 frames: red channel -1 / 1, green 0, blue 1.
        let v: Vec<f32> = vec![
            -1.0, 1.0, -1.0, 1.0, // r: frame 0 (2 px), frame 1
            0.0, 0.0, 0.0, 0.0, // g
            1.0, 1.0, 1.0, -1.0, // b
        ];
        let x = Tensor::from_vec(v, (1, 3, 2, 1, 2), &Device::Cpu).unwrap();
        let clip = VideoClip::from_decoded(&x, 16).unwrap();
        assert_eq!((clip.width, clip.height, clip.frames.len()), (2, 1, 2));
        assert_eq!(clip.frames[0], vec![0, 128, 255, 255, 128, 255]);
        assert_eq!(clip.frames[1], vec![0, 128, 255, 255, 128, 0]);
        assert!((clip.duration_s() - 0.125).abs() < 1e-9);
    }
}
