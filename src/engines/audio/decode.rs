//! Reading audio files into a mono clip (WAV through hound, FLAC/MP3/Ogg Vorbis through symphonia);
//! `resample` (re-exported from `super::resample`) changes its sample rate.
//!
//! Every failure a user can cause (a missing, unreadable, corrupt or empty file) is
//! `Error::BadInput` naming the file.

use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

pub use super::resample::resample;
use crate::engines::media::AudioClip;
use crate::error::{Error, Result};

/// Sample rates an input may have: below this a header is lying (1 Hz would make the
/// resampler write hours of output), above it no recorder goes.
pub const MIN_SAMPLE_RATE: u32 = 4_000;
pub const MAX_SAMPLE_RATE: u32 = 384_000;
pub const MAX_CHANNELS: usize = 32;
/// Longest input accepted, in seconds (three hours).
pub const MAX_AUDIO_S: f64 = 3.0 * 3600.0;

/// Refuses a header whose rate, channel count or length is out of range, before any decoding.
fn check_header(path: &Path, rate: u32, channels: usize, frames: Option<u64>) -> Result<()> {
    let why = if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        format!(
            "its header claims a sample rate of {rate} Hz, outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    } else if !(1..=MAX_CHANNELS).contains(&channels) {
        format!("its header claims {channels} channels, outside 1-{MAX_CHANNELS}")
    } else if let Some(seconds) = frames
        .map(|f| f as f64 / f64::from(rate))
        .filter(|&s| s > MAX_AUDIO_S)
    {
        format!(
            "it is {seconds:.0} s long, more than the {MAX_AUDIO_S:.0} s limit; cut it into parts"
        )
    } else {
        return Ok(());
    };
    Err(Error::bad_input(format!(
        "{}: {why}; give a WAV, FLAC, MP3 or Ogg Vorbis file with a sound header (re-encode it, \
         e.g. `ffmpeg -i IN -ar 16000 OUT.wav`)",
        path.display()
    )))
}

/// Decodes `path` as a job would and returns its length in seconds: the check made before an
/// audio job is queued, so a corrupt or absurd file is refused up front.
pub fn check_audio(path: &Path) -> Result<f64> {
    Ok(read_audio(path)?.duration_s())
}

/// Reads an audio file and downmixes it to mono (the mean of the channels). The header's rate,
/// channels and length are checked before decoding (see `check_header`).
pub fn read_audio(path: &Path) -> Result<AudioClip> {
    let _span = tracing::info_span!("read_audio", path = %path.display()).entered();
    if !path.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no such audio file; give a WAV, FLAC, MP3 or Ogg Vorbis file",
            path.display()
        )));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (interleaved, channels, sample_rate) = if ext == "wav" || ext == "wave" {
        // hound reads PCM and float WAV; anything else in a WAV container gets a second chance
        // with symphonia, and hound's complaint is kept if that fails too.
        match read_wav(path) {
            Ok(read) => read,
            Err(err) => read_with_symphonia(path, &ext).map_err(|_| err)?,
        }
    } else {
        read_with_symphonia(path, &ext)?
    };
    if channels == 0 || sample_rate == 0 || interleaved.len() < channels {
        return Err(Error::bad_input(format!(
            "{} holds no audio samples; give a file with sound in it",
            path.display()
        )));
    }
    check_header(
        path,
        sample_rate,
        channels,
        Some((interleaved.len() / channels) as u64),
    )?;
    let samples = downmix(&interleaved, channels);
    tracing::debug!(samples = samples.len(), channels, sample_rate, "read audio");
    Ok(AudioClip {
        samples,
        sample_rate,
    })
}

fn unreadable(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::bad_input(format!(
        "{} is not a readable audio file ({why}); give a WAV, FLAC, MP3 or Ogg Vorbis file",
        path.display()
    ))
}

/// WAV through hound: integer PCM scaled by 2^(bits-1) (i16 / 32768, as numpy and soundfile do),
/// float PCM as is.
fn read_wav(path: &Path) -> Result<(Vec<f32>, usize, u32)> {
    let reader = hound::WavReader::open(path).map_err(|e| unreadable(path, e))?;
    let spec = reader.spec();
    check_header(
        path,
        spec.sample_rate,
        usize::from(spec.channels),
        Some(u64::from(reader.duration())),
    )?;
    // Collecting reserves what the header claims: it must not claim more than the file holds.
    let claimed = u64::from(reader.len()) * u64::from(spec.bits_per_sample.div_ceil(8));
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    if claimed > file_bytes {
        return Err(unreadable(
            path,
            format!("its header claims {claimed} bytes of samples but the file has {file_bytes}"),
        ));
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unreadable(path, e))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| unreadable(path, e))?
        }
    };
    Ok((samples, usize::from(spec.channels), spec.sample_rate))
}

/// Any other format symphonia knows: the first audio track, every packet decoded to f32.
fn read_with_symphonia(path: &Path, ext: &str) -> Result<(Vec<f32>, usize, u32)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if !ext.is_empty() {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| unreadable(path, e))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unreadable(path, "no audio track"))?;
    let track_id = track.id;
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track.codec_params.channels.map_or(0, |c| c.count());
    if sample_rate != 0 && channels != 0 {
        check_header(path, sample_rate, channels, track.codec_params.n_frames)?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unreadable(path, e))?;
    let mut out = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(unreadable(path, e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged packet is skipped, as players do; the rest of the file still counts.
            Err(SymphoniaError::DecodeError(why)) => {
                tracing::warn!(path = %path.display(), why, "skipped an undecodable packet");
                continue;
            }
            Err(e) => return Err(unreadable(path, e)),
        };
        let spec = *decoded.spec();
        sample_rate = spec.rate;
        channels = spec.channels.count();
        // Streams without a length in their header are held to the same limits as they decode.
        check_header(
            path,
            sample_rate,
            channels,
            Some((out.len() / channels.max(1)) as u64),
        )?;
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        out.extend_from_slice(buf.samples());
    }
    Ok((out, channels, sample_rate))
}

fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::engines::audio::resample::tests::power_at;

    fn write_wav(path: &Path, channels: u16, rate: u32, frames: &[Vec<i16>]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for frame in frames {
            for s in frame {
                w.write_sample(*s).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn reads_a_mono_wav_scaled_like_numpy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mono.wav");
        write_wav(
            &path,
            1,
            16_000,
            &[vec![0], vec![16384], vec![-32768], vec![32767]],
        );
        let clip = read_audio(&path).unwrap();
        assert_eq!(clip.sample_rate, 16_000);
        assert_eq!(clip.samples, vec![0.0, 0.5, -1.0, 32767.0 / 32768.0]);
    }

    #[test]
    fn downmixes_stereo_to_the_mean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        write_wav(&path, 2, 22_050, &[vec![16384, 8192], vec![-16384, 16384]]);
        let clip = read_audio(&path).unwrap();
        assert_eq!(clip.sample_rate, 22_050);
        assert_eq!(clip.samples, vec![0.375, 0.0]);
    }

    #[test]
    fn unreadable_files_are_bad_input_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["junk.wav", "junk.mp3", "junk.flac"] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"this is not audio at all, just some text bytes").unwrap();
            let err = read_audio(&path).unwrap_err();
            assert!(matches!(err, Error::BadInput { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let missing = dir.path().join("missing.wav");
        let err = read_audio(&missing).unwrap_err();
        assert!(matches!(err, Error::BadInput { .. }));
        assert!(err.to_string().contains("missing.wav"));
        let empty = dir.path().join("empty.wav");
        write_wav(&empty, 1, 16_000, &[]);
        let err = read_audio(&empty).unwrap_err();
        assert!(err.to_string().contains("no audio samples"), "{err}");
    }

    #[test]
    fn headers_with_absurd_rates_or_lengths_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lying.wav");
        write_wav(&path, 1, 16_000, &vec![vec![100]; 800]);
        let good = std::fs::read(&path).unwrap();
        let mut one_hz = good.clone();
        one_hz[24..28].copy_from_slice(&1u32.to_le_bytes());
        one_hz[28..32].copy_from_slice(&2u32.to_le_bytes()); // byte rate: rate x 2 bytes
        std::fs::write(&path, &one_hz).unwrap();
        let err = read_audio(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("sample rate of 1 Hz"), "{err}");
        assert!(err.to_string().contains("lying.wav"), "{err}");
        // A data chunk that claims far more bytes than the file holds.
        let mut long = good;
        let data = long.windows(4).position(|w| w == b"data").unwrap();
        long[data + 4..data + 8].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        std::fs::write(&path, &long).unwrap();
        let err = read_audio(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("s long") || err.to_string().contains("claims"),
            "{err}"
        );
        assert!(check_header(&path, 16_000, 0, None).is_err());
        assert!(check_header(&path, 500_000, 1, None).is_err());
        assert!(check_header(&path, 16_000, 1, Some(16_000 * 4 * 3600)).is_err());
        assert!(check_header(&path, 16_000, 2, Some(16_000 * 60)).is_ok());
    }

    #[test]
    fn reads_flac_ogg_and_mp3_and_downmixes_them() {
        // tests/fixtures/audio/tone.*: 0.5 s stereo 44.1 kHz, left 440 Hz at 0.5, right 880 Hz at
        // 0.25 (made by tests/fixtures/make_whisper.py): the mean is 0.25 sin 440 + 0.125 sin 880.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
        for name in ["tone.flac", "tone.ogg", "tone.mp3"] {
            let clip = read_audio(&dir.join(name)).unwrap();
            assert_eq!(clip.sample_rate, 44_100, "{name}");
            let d = clip.duration_s();
            assert!((0.45..0.6).contains(&d), "{name}: {d} s");
            let (p440, p880) = (power_at(&clip, 440.0), power_at(&clip, 880.0));
            assert!(
                (p440 / 0.015_625 - 1.0).abs() < 0.1,
                "{name}: 440 Hz power {p440}"
            );
            assert!(
                (p880 / 0.003_906 - 1.0).abs() < 0.15,
                "{name}: 880 Hz power {p880}"
            );
            assert!(power_at(&clip, 660.0) < p880 * 0.01, "{name}");
        }
    }
}
