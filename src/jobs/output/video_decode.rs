//! Decodes an MP4's H.264 track (`mp4_demux`) to RGB frames with OpenH264's decoder, turning
//! yuv420p back to RGB as the encoder made it (BT.601 limited range, `video::rgb_to_i420`).

use std::path::Path;

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::formats::YUVSource;

use crate::jobs::output::mp4_demux::read_avc;

/// A decoded clip: RGB frames, row-major, `width * height * 3` bytes each.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedClip {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: Vec<Vec<u8>>,
}

/// BT.601 limited-range YUV to RGB, rounded and clamped.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 1.164_383 * (f32::from(y) - 16.0);
    let (d, e) = (f32::from(u) - 128.0, f32::from(v) - 128.0);
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        clamp(c + 1.596_027 * e),
        clamp(c - 0.391_762 * d - 0.812_968 * e),
        clamp(c + 2.017_232 * d),
    ]
}

fn to_rgb(yuv: &DecodedYUV<'_>) -> (usize, usize, Vec<u8>) {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let (py, pu, pv) = (yuv.y(), yuv.u(), yuv.v());
    let mut rgb = vec![0u8; w * h * 3];
    for row in 0..h {
        for col in 0..w {
            let at = |plane: &[u8], stride: usize, r: usize, c: usize| {
                plane.get(r * stride + c).copied().unwrap_or(128)
            };
            let px = yuv_to_rgb(
                at(py, sy, row, col),
                at(pu, su, row / 2, col / 2),
                at(pv, sv, row / 2, col / 2),
            );
            rgb[(row * w + col) * 3..][..3].copy_from_slice(&px);
        }
    }
    (w, h, rgb)
}

fn decode_error(e: openh264::Error) -> String {
    format!("H.264 decoding failed: {e}")
}

/// Decodes every frame of an MP4 file's bytes.
pub fn decode_mp4(file: &[u8]) -> Result<DecodedClip, String> {
    let track = read_avc(file)?;
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
        .map_err(decode_error)?;
    let mut frames = Vec::with_capacity(track.samples.len());
    let (mut width, mut height) = (usize::from(track.width), usize::from(track.height));
    for (i, sample) in track.samples.iter().enumerate() {
        let packet = if i == 0 {
            [track.parameter_sets.as_slice(), sample].concat()
        } else {
            sample.clone()
        };
        if let Some(yuv) = decoder.decode(&packet).map_err(decode_error)? {
            let (w, h, rgb) = to_rgb(&yuv);
            (width, height) = (w, h);
            frames.push(rgb);
        }
    }
    for yuv in decoder.flush_remaining().map_err(decode_error)? {
        frames.push(to_rgb(&yuv).2);
    }
    if frames.is_empty() {
        return Err("the video decoded to no frames".into());
    }
    Ok(DecodedClip {
        width: width as u32,
        height: height as u32,
        fps: track.fps,
        frames,
    })
}

/// Reads and decodes an MP4 file.
pub fn decode_mp4_file(path: &Path) -> Result<DecodedClip, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode_mp4(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::video::VideoClip;
    use crate::jobs::output::video::encode_mp4;

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
    }

    /// Smooth moving waves: each frame differs, as a generated clip's do (hard edges would lose
    /// more to 4:2:0 chroma than to the codec).
    fn clip(width: u32, height: u32, n: usize, fps: u32) -> VideoClip {
        let frames = (0..n)
            .map(|t| {
                let mut f = Vec::with_capacity((width * height * 3) as usize);
                let t = t as f32;
                for y in 0..height {
                    for x in 0..width {
                        let (x, y) = (x as f32, y as f32);
                        let r = 128.0 + 100.0 * (x / 16.0 + t * 0.4).sin();
                        let g = 128.0 + 100.0 * (y / 12.0 - t * 0.3).cos();
                        let b = 128.0 + 60.0 * ((x + y) / 20.0 + t * 0.2).sin();
                        f.extend([r as u8, g as u8, b as u8]);
                    }
                }
                f
            })
            .collect();
        VideoClip {
            width,
            height,
            fps,
            frames,
        }
    }

    #[test]
    fn decoded_frames_match_the_encoded_ones() {
        let original = clip(64, 48, 9, 16);
        let decoded = decode_mp4(&encode_mp4(&original).unwrap()).unwrap();
        assert_eq!((decoded.width, decoded.height, decoded.fps), (64, 48, 16.0));
        assert_eq!(decoded.frames.len(), 9);
        for (i, (a, b)) in original.frames.iter().zip(&decoded.frames).enumerate() {
            let p = psnr(a, b);
            assert!(p >= 35.0, "frame {i}: PSNR {p:.1} dB");
        }
        // Frames are told apart: frame 0 against frame 8 is far below the bar.
        assert!(psnr(&original.frames[0], &decoded.frames[8]) < 30.0);
    }

    #[test]
    fn a_non_square_clip_keeps_its_size_and_rate() {
        let decoded = decode_mp4(&encode_mp4(&clip(32, 80, 5, 24)).unwrap()).unwrap();
        assert_eq!((decoded.width, decoded.height), (32, 80));
        assert_eq!((decoded.fps, decoded.frames.len()), (24.0, 5));
        assert!(decode_mp4(b"\0\0\0\x08ftyp").is_err());
    }
}
