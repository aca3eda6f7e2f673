//! Changing a clip's sample rate: band-limited, with a Kaiser-windowed sinc kernel.

use crate::engines::media::AudioClip;

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
    // Inputs are refused above this length when read (decode.rs); a clip made in memory is cut
    // there rather than let a mislabelled rate make the output run away.
    let limit = (super::decode::MAX_AUDIO_S * f64::from(rate)) as usize;
    if out_len > limit {
        tracing::warn!(
            out_len,
            limit,
            "resampled audio is longer than the input limit; cut there"
        );
    }
    let out_len = out_len.min(limit);
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
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    pub(crate) fn sine(freq: f64, rate: u32, seconds: f64) -> AudioClip {
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
    pub(crate) fn power_at(clip: &AudioClip, freq: f64) -> f64 {
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

    #[test]
    fn the_output_is_bounded_whatever_the_rate_claims() {
        // A million samples said to be at 1 Hz (11.6 days) would become 16 million at 16 Hz;
        // the output stops at the input limit's length.
        let clip = AudioClip {
            samples: vec![0.0; 1_000_000],
            sample_rate: 1,
        };
        let limit = (crate::engines::audio::decode::MAX_AUDIO_S * 16.0) as usize;
        assert_eq!(resample(&clip, 16).samples.len(), limit);
    }
}
