//! Reading audio files into a mono clip (WAV through hound, FLAC/MP3/Ogg Vorbis through symphonia)
//! and changing a clip's sample rate with a windowed-sinc resampler.
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

use crate::engines::media::AudioClip;
use crate::error::{Error, Result};

/// Reads an audio file and downmixes it to mono (the mean of the channels).
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

/// Half the number of input taps each output sample sees at the original rate (wider when
/// downsampling, where the kernel is stretched by the ratio).
const SINC_HALF_TAPS: f64 = 32.0;
/// Kaiser window shape: about 80 dB stop-band attenuation.
const KAISER_BETA: f64 = 8.6;
/// Pass band edge as a fraction of the lower Nyquist frequency: leaves room for the transition
/// band so that nothing above the new Nyquist folds back.
const ROLLOFF: f64 = 0.94;

/// Output phases above this are not tabulated (odd rate pairs such as 44100 -> 16001): the
/// kernel is then computed per output sample, slower but the same filter.
const MAX_PHASES: u64 = 4096;

/// Band-limited resampling with a Kaiser-windowed sinc kernel (the anti-aliasing filter follows the
/// lower of the two rates), polyphase: for rates in a small ratio the kernel of each output phase
/// is computed once. Same rate: the clip is returned unchanged.
pub fn resample(clip: &AudioClip, rate: u32) -> AudioClip {
    if clip.sample_rate == rate || clip.samples.is_empty() || clip.sample_rate == 0 || rate == 0 {
        return AudioClip {
            samples: if rate == 0 {
                Vec::new()
            } else {
                clip.samples.clone()
            },
            sample_rate: rate,
        };
    }
    let (src, dst) = (u64::from(clip.sample_rate), u64::from(rate));
    let g = gcd(src, dst);
    // Output sample i sits at input position i * down / up.
    let (up, down) = (dst / g, src / g);
    let ratio = dst as f64 / src as f64;
    // Cutoff in cycles per input sample (0.5 = input Nyquist).
    let cutoff = 0.5 * ROLLOFF * ratio.min(1.0);
    let half = SINC_HALF_TAPS / ratio.min(1.0);
    let taps = 2 * half.ceil() as usize;
    let i0_beta = bessel_i0(KAISER_BETA);
    // Weights of the taps j = floor(pos) - taps/2 + 1 + k for an output at fraction `frac`.
    let kernel = |frac: f64, out: &mut [f64]| {
        for (k, w) in out.iter_mut().enumerate() {
            let t = frac + (taps / 2) as f64 - 1.0 - k as f64;
            *w = 2.0 * cutoff * sinc(2.0 * cutoff * t) * kaiser(t / half, i0_beta);
        }
    };
    let table: Option<Vec<f64>> = (up <= MAX_PHASES).then(|| {
        let mut table = vec![0.0; up as usize * taps];
        for (phase, row) in table.chunks_exact_mut(taps).enumerate() {
            kernel(phase as f64 / up as f64, row);
        }
        table
    });
    let out_len = (clip.samples.len() as f64 * ratio).round() as usize;
    let x = &clip.samples;
    let mut scratch = vec![0.0; taps];
    let mut samples = Vec::with_capacity(out_len);
    for i in 0..out_len as u64 {
        let whole = (i * down / up) as i64;
        let phase = i * down % up;
        let weights: &[f64] = match &table {
            Some(t) => &t[phase as usize * taps..(phase as usize + 1) * taps],
            None => {
                kernel(phase as f64 / up as f64, &mut scratch);
                &scratch
            }
        };
        let first = whole - (taps / 2) as i64 + 1;
        let mut acc = 0.0f64;
        for (k, w) in weights.iter().enumerate() {
            let j = first + k as i64;
            if let Some(v) = usize::try_from(j).ok().and_then(|j| x.get(j)) {
                acc += f64::from(*v) * w;
            }
        }
        samples.push(acc as f32);
    }
    AudioClip {
        samples,
        sample_rate: rate,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Kaiser window at `u` in [-1, 1].
fn kaiser(u: f64, i0_beta: f64) -> f64 {
    if u.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - u * u).sqrt()) / i0_beta
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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

    fn sine(freq: f64, rate: u32, seconds: f64) -> AudioClip {
        let n = (f64::from(rate) * seconds) as usize;
        AudioClip {
            samples: (0..n)
                .map(|i| {
                    (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                        as f32
                })
                .collect(),
            sample_rate: rate,
        }
    }

    /// Power of one frequency (Goertzel) over the middle of the clip, away from edge effects.
    fn power_at(clip: &AudioClip, freq: f64) -> f64 {
        let x = &clip.samples[clip.samples.len() / 4..clip.samples.len() * 3 / 4];
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(clip.sample_rate);
        let (mut re, mut im) = (0.0, 0.0);
        for (i, s) in x.iter().enumerate() {
            re += f64::from(*s) * (w * i as f64).cos();
            im -= f64::from(*s) * (w * i as f64).sin();
        }
        (re * re + im * im) / (x.len() as f64).powi(2)
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
    fn resampling_a_sine_keeps_its_frequency_and_level() {
        for (from, to, freq) in [
            (44_100, 16_000, 1000.0),
            (8_000, 16_000, 440.0),
            (48_000, 22_050, 3000.0),
        ] {
            let clip = sine(freq, from, 1.0);
            let out = resample(&clip, to);
            assert_eq!(out.sample_rate, to);
            assert_eq!(out.samples.len(), to as usize);
            let on = power_at(&out, freq);
            // A pure sine of amplitude 0.5 has Goertzel power (0.5/2)^2.
            assert!((on - 0.0625).abs() < 0.0625 * 0.02, "{from}->{to}: {on}");
            for off in [freq * 0.8, freq * 1.25] {
                assert!(
                    power_at(&out, off) < on * 1e-3,
                    "{from}->{to} leaks at {off}"
                );
            }
            // Sample by sample against the ideal sine (away from the edges).
            let w = 2.0 * std::f64::consts::PI * freq / f64::from(to);
            for i in (out.samples.len() / 4..out.samples.len() * 3 / 4).step_by(97) {
                let ideal = 0.5 * (w * i as f64).sin();
                assert!(
                    (f64::from(out.samples[i]) - ideal).abs() < 2e-3,
                    "{from}->{to} at {i}"
                );
            }
        }
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_hold() {
        // 7 kHz is above the 4 kHz Nyquist of 8 kHz: it must not fold back to 1 kHz.
        let clip = sine(7000.0, 48_000, 1.0);
        let out = resample(&clip, 8_000);
        assert!(power_at(&out, 1000.0) < 1e-6, "{}", power_at(&out, 1000.0));
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

    #[test]
    fn odd_rate_pairs_use_the_same_filter() {
        // 16001 / 44100 share no factor: too many phases to tabulate.
        let clip = sine(1000.0, 44_100, 0.5);
        let out = resample(&clip, 16_001);
        assert_eq!(out.samples.len(), 8_001);
        let w = 2.0 * std::f64::consts::PI * 1000.0 / 16_001.0;
        for i in (2000..6000).step_by(101) {
            assert!((f64::from(out.samples[i]) - 0.5 * (w * i as f64).sin()).abs() < 2e-3);
        }
    }

    #[test]
    fn same_rate_is_unchanged() {
        let clip = sine(440.0, 16_000, 0.1);
        assert_eq!(resample(&clip, 16_000), clip);
    }
}
