//! Video outputs: a clip's RGB frames as H.264 (yuv420p, BT.601 limited range, signalled in
//! the SPS) from OpenH264 built from source, in our MP4 container (`mp4.rs`) at the clip's
//! frame rate, written atomically as `<out>/<date>/<seed>_<slug>.mp4` with the JSON sidecar
//! beside it. No ffmpeg at run time.

use std::path::{Path, PathBuf};

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange,
    RateControlMode, VuiConfig,
};
use openh264::formats::YUVBuffer;

use crate::engines::video::VideoClip;
use crate::jobs::output::media_files::Sidecar;
use crate::jobs::output::mp4::{Sample, Track, mux, nal_type, split_annex_b};
use crate::jobs::output::{OutputWriter, output_stem};
use crate::jobs::spec::JobSpec;

/// The largest quantizer used: high enough quality that a decode is within a few levels of the
/// frames (the tests ask >= 35 dB PSNR).
const MAX_QP: u8 = 10;

fn bad(message: String) -> crate::Error {
    crate::Error::bad_input(message)
}

/// Checks a clip can be encoded: frames, an even size up to H.264's 16384, a frame rate.
pub fn check_clip(clip: &VideoClip) -> crate::Result<()> {
    let (w, h) = (clip.width, clip.height);
    if clip.frames.is_empty() {
        return Err(crate::Error::job_failed(
            "the model produced no video frames",
        ));
    }
    if w == 0 || h == 0 || !w.is_multiple_of(2) || !h.is_multiple_of(2) || w > 16384 || h > 16384 {
        return Err(bad(format!(
            "video frames must have an even width and height up to 16384 (yuv420p), got {w}x{h}"
        )));
    }
    if clip.fps == 0 || clip.fps > 240 {
        return Err(bad(format!("--fps must be 1 to 240, got {}", clip.fps)));
    }
    let len = w as usize * h as usize * 3;
    if let Some(i) = clip.frames.iter().position(|f| f.len() != len) {
        return Err(crate::Error::job_failed(format!(
            "internal: video frame {i} holds {} bytes, not {w}x{h} RGB",
            clip.frames[i].len()
        )));
    }
    Ok(())
}

/// RGB → I420, BT.601 limited range, rounded; chroma from each 2x2 block's mean.
pub fn rgb_to_i420(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let (cw, ch) = (width / 2, height / 2);
    let mut out = vec![0u8; width * height + 2 * cw * ch];
    let (y_plane, uv) = out.split_at_mut(width * height);
    let (u_plane, v_plane) = uv.split_at_mut(cw * ch);
    let px = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        (
            f32::from(rgb[i]),
            f32::from(rgb[i + 1]),
            f32::from(rgb[i + 2]),
        )
    };
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    for y in 0..height {
        for x in 0..width {
            let (r, g, b) = px(x, y);
            y_plane[y * width + x] = clamp(16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b);
        }
    }
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * cy + dy);
                (r, g, b) = (r + p.0 / 4.0, g + p.1 / 4.0, b + p.2 / 4.0);
            }
            u_plane[cy * cw + cx] = clamp(128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b);
            v_plane[cy * cw + cx] = clamp(128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b);
        }
    }
    out
}

fn encoder_error(e: openh264::Error) -> crate::Error {
    crate::Error::job_failed(format!("H.264 encoding failed: {e}"))
}

/// Rate control tried in turn: quality mode keeps the most detail (39-40 dB on smooth moving
/// frames), but OpenH264 fails it (error 3) on some frames of pixel noise at some size and
/// rate pairs (a random or diverged model's output: 96x64 at 5-16 fps, any size at 240);
/// with rate control off every such clip encodes (35-37 dB on the smooth frames).
const RATE_CONTROL: [RateControlMode; 2] = [RateControlMode::Quality, RateControlMode::Off];

/// The clip as an MP4 file's bytes.
pub fn encode_mp4(clip: &VideoClip) -> crate::Result<Vec<u8>> {
    check_clip(clip)?;
    let mut last = None;
    for mode in RATE_CONTROL {
        match encode_samples(clip, mode) {
            Ok((samples, sps, pps)) => {
                let track = Track {
                    width: clip.width as u16,
                    height: clip.height as u16,
                    fps: clip.fps,
                    sps,
                    pps,
                };
                return mux(&track, &samples)
                    .map_err(|e| crate::Error::job_failed(format!("MP4 muxing: {e}")));
            }
            Err(Encode::Codec(e)) => {
                tracing::warn!(?mode, error = %e, "H.264 encoding failed; trying rate control off");
                last = Some(e);
            }
            Err(Encode::Other(e)) => return Err(e),
        }
    }
    Err(match last {
        Some(e) => encoder_error(e),
        None => crate::Error::job_failed("H.264 encoding failed"),
    })
}

enum Encode {
    /// OpenH264 refused (retried with the next rate control).
    Codec(openh264::Error),
    Other(crate::Error),
}

type Encoded = (Vec<Sample>, Vec<u8>, Vec<u8>);

/// Every frame's NAL units with the stream's SPS and PPS, quantizers up to MAX_QP.
fn encode_samples(clip: &VideoClip, mode: RateControlMode) -> Result<Encoded, Encode> {
    let (w, h) = (clip.width as usize, clip.height as usize);
    // Generous (4 bits per pixel per frame) so rate control never needs to skip a frame; the
    // quantizer cap keeps the quality.
    let bps = (4 * w * h * clip.fps as usize).clamp(1_000_000, u32::MAX as usize) as u32;
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(clip.fps as f32))
        .rate_control_mode(mode)
        .qp(QpRange::new(0, MAX_QP))
        .complexity(Complexity::High)
        // Camera-feed heuristics that trade detail for rate: off for generated frames.
        .background_detection(false)
        .adaptive_quantization(false)
        // Frame skipping on (OpenH264 warns on stderr in quality mode without it); a skipped
        // frame would give an empty picture, which is refused below.
        .skip_frames(true)
        .intra_frame_period(IntraFramePeriod::from_num_frames(2 * clip.fps))
        .vui(VuiConfig::bt601());
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).map_err(Encode::Codec)?;
    let (mut sps, mut pps) = (None, None);
    let mut samples = Vec::with_capacity(clip.frames.len());
    for (i, frame) in clip.frames.iter().enumerate() {
        let yuv = YUVBuffer::from_vec(rgb_to_i420(frame, w, h), w, h);
        let stream = encoder.encode(&yuv).map_err(Encode::Codec)?.to_vec();
        let mut sample = Sample {
            nals: Vec::new(),
            sync: false,
        };
        for nal in split_annex_b(&stream) {
            match nal_type(&nal) {
                7 => sps = sps.or(Some(nal)),
                8 => pps = pps.or(Some(nal)),
                t => {
                    sample.sync |= t == 5;
                    sample.nals.push(nal);
                }
            }
        }
        if sample.nals.is_empty() {
            return Err(Encode::Other(crate::Error::job_failed(format!(
                "H.264 encoding gave no picture for frame {i}"
            ))));
        }
        samples.push(sample);
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err(Encode::Other(crate::Error::job_failed(
            "H.264 encoding gave no SPS/PPS",
        )));
    };
    Ok((samples, sps, pps))
}

impl OutputWriter {
    /// Writes the clip as `<seed>_<slug>.mp4` (atomically, as images) and returns its path;
    /// `before_place` as `write_png`'s. The sidecar is `write_video_sidecar`'s.
    pub fn write_mp4(
        &self,
        clip: &VideoClip,
        spec: &JobSpec,
        before_place: impl FnMut(&Path) -> crate::Result<()>,
    ) -> crate::Result<PathBuf> {
        let bytes = encode_mp4(clip)?;
        self.write_bytes(&output_stem(spec), "mp4", &bytes, before_place)
    }

    /// The `.json` sidecar beside `mp4` with the whole job, its outputs (the .mp4 first, then
    /// any frames saved) and the clip's length.
    pub fn write_video_sidecar(
        &self,
        mp4: &Path,
        spec: &JobSpec,
        clip: &VideoClip,
        frames: &[PathBuf],
    ) -> crate::Result<PathBuf> {
        let mut outputs = vec![mp4.to_path_buf()];
        outputs.extend(frames.iter().cloned());
        let mut sidecar = Sidecar::new(spec, outputs, self.switches());
        sidecar.duration_s = Some(clip.duration_s());
        self.write_companion(mp4, "json", sidecar.to_json().as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn clip(w: u32, h: u32, n: usize) -> VideoClip {
        let frames = (0..n)
            .map(|t| {
                (0..(w * h) as usize)
                    .flat_map(|p| [(p * 7 + t * 20) as u8, (p / w as usize * 9) as u8, 100])
                    .collect()
            })
            .collect();
        VideoClip {
            width: w,
            height: h,
            fps: 16,
            frames,
        }
    }

    #[test]
    fn grey_maps_to_the_limited_range_and_neutral_chroma() {
        let rgb = [[0u8; 3], [255; 3], [128; 3], [128; 3]].concat();
        let yuv = rgb_to_i420(&rgb, 2, 2);
        assert_eq!(&yuv[..4], &[16, 235, 126, 126]);
        assert_eq!(&yuv[4..], &[128, 128]);
    }

    #[test]
    fn clips_encode_to_an_mp4_with_every_frame() {
        let bytes = encode_mp4(&clip(40, 24, 9)).unwrap();
        assert_eq!(&bytes[4..8], b"ftyp");
        assert!(bytes.windows(4).any(|w| w == b"avcC"));
    }

    /// Pixel noise (a random VAE's frames) at small sizes and every usual frame rate: the
    /// encoder's output for such a frame at a low quantizer must still fit its buffers.
    #[test]
    fn noisy_frames_encode_at_every_rate() {
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        };
        for (w, h) in [(96, 64), (64, 96), (256, 160)] {
            let frames: Vec<Vec<u8>> = (0..9)
                .map(|_| (0..w * h * 3).map(|_| next()).collect())
                .collect();
            for fps in [1, 5, 8, 12, 16, 24, 25, 30, 60, 240] {
                let c = VideoClip {
                    width: w as u32,
                    height: h as u32,
                    fps,
                    frames: frames.clone(),
                };
                let bytes = encode_mp4(&c).unwrap_or_else(|e| panic!("{w}x{h} at {fps} fps: {e}"));
                let decoded = crate::jobs::output::video_decode::decode_mp4(&bytes).unwrap();
                assert_eq!(decoded.frames.len(), 9, "{w}x{h} at {fps} fps");
                assert_eq!((decoded.width, decoded.height), (w as u32, h as u32));
            }
        }
    }

    #[test]
    fn odd_sizes_and_bad_rates_are_refused() {
        let err = encode_mp4(&clip(41, 24, 2)).unwrap_err();
        assert!(err.to_string().contains("even width"), "{err}");
        let mut c = clip(40, 24, 2);
        c.fps = 0;
        assert!(encode_mp4(&c).unwrap_err().to_string().contains("--fps"));
        c.fps = 16;
        c.frames.clear();
        assert!(encode_mp4(&c).is_err());
    }
}
