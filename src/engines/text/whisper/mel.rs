//! Log-mel features exactly as transformers' `WhisperFeatureExtractor` computes them: a centred
//! STFT (reflect padding, periodic Hann window of n_fft samples, hop 160), power spectrum, a Slaney
//! mel filter bank (0..8 kHz, Slaney-normalised), log10 clamped at 1e-10, the last frame dropped,
//! a dynamic range of 8 (log10 units) below the maximum, then (x + 4) / 4.

use std::f64::consts::PI;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Samples in one 30 s window.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// Log-mel features, row-major `(n_mels, frames)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

impl LogMel {
    /// Frames `[start, start + len)` zero-padded to `width` (as transformers pads a long-form window).
    pub fn window(&self, start: usize, len: usize, width: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels * width];
        let end = (start + len.min(width)).min(self.frames);
        if start < end {
            for m in 0..self.n_mels {
                let row = &self.data[m * self.frames..(m + 1) * self.frames];
                out[m * width..m * width + (end - start)].copy_from_slice(&row[start..end]);
            }
        }
        out
    }
}

/// The features of `samples` (16 kHz mono). Clips of at most 30 s are zero-padded to 30 s first
/// (3000 frames), as the extractor's default `padding="max_length"` does; longer ones are taken
/// whole (`padding="longest", truncation=False`, long-form transcription).
pub fn log_mel(samples: &[f32], n_mels: usize) -> LogMel {
    // The padded signal is virtual (zeros past the clip), so an hour of audio costs no copy.
    let padded_len = samples.len().max(WINDOW_SAMPLES);
    let filters = mel_filters(n_mels);
    let bins = N_FFT / 2 + 1;
    // 1 + len / hop centred frames; transformers drops the last one.
    let frames = padded_len / HOP;
    // Frames are independent: blocks of them go to all cores, each block frame-major.
    let chunk = frames
        .div_ceil(candle_core::utils::get_num_threads().clamp(1, 16))
        .max(64);
    let blocks: Vec<Vec<f32>> = std::thread::scope(|s| {
        let filters = &filters;
        let handles: Vec<_> = (0..frames)
            .step_by(chunk.max(1))
            .map(|lo| {
                let hi = (lo + chunk).min(frames);
                s.spawn(move || {
                    let mut stft = Stft::new(samples, padded_len);
                    let mut power = vec![0.0f64; bins];
                    let mut block = Vec::with_capacity((hi - lo) * n_mels);
                    for t in lo..hi {
                        stft.power(t, &mut power);
                        block.extend(filters.chunks_exact(bins).map(|filter| {
                            let e: f64 = filter.iter().zip(&power).map(|(f, p)| f * p).sum();
                            e.max(1e-10).log10() as f32
                        }));
                    }
                    block
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut data = vec![0.0f32; n_mels * frames];
    let mut max = f32::NEG_INFINITY;
    for (t, frame) in blocks
        .iter()
        .flat_map(|b| b.chunks_exact(n_mels))
        .enumerate()
    {
        for (m, v) in frame.iter().enumerate() {
            data[m * frames + t] = *v;
            max = max.max(*v);
        }
    }
    let floor = max - 8.0;
    for v in &mut data {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
    LogMel {
        n_mels,
        frames,
        data,
    }
}

/// Power spectra of centred frames (reflect padding at both ends of the zero-padded signal,
/// periodic Hann window), as torch.stft(center=True) computes them.
struct Stft<'a> {
    samples: &'a [f32],
    padded_len: usize,
    window: Vec<f64>,
    fft: Fft,
    frame: Vec<Complex>,
    spectrum: Vec<Complex>,
}

impl<'a> Stft<'a> {
    fn new(samples: &'a [f32], padded_len: usize) -> Self {
        Self {
            samples,
            padded_len,
            window: (0..N_FFT)
                .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / N_FFT as f64).cos())
                .collect(),
            fft: Fft::new(N_FFT),
            frame: vec![(0.0, 0.0); N_FFT],
            spectrum: vec![(0.0, 0.0); N_FFT],
        }
    }

    /// Sample `i` of the padded signal, reflected at its ends (the edge sample is not repeated).
    fn at(&self, i: isize) -> f64 {
        let len = self.padded_len as isize;
        let j = if i < 0 {
            -i
        } else if i >= len {
            2 * (len - 1) - i
        } else {
            i
        };
        self.samples
            .get(j.clamp(0, len - 1) as usize)
            .map_or(0.0, |s| f64::from(*s))
    }

    fn power(&mut self, t: usize, out: &mut [f64]) {
        let start = (t * HOP) as isize - (N_FFT / 2) as isize;
        for i in 0..N_FFT {
            self.frame[i] = (self.at(start + i as isize) * self.window[i], 0.0);
        }
        self.fft.run(&self.frame, &mut self.spectrum);
        for (slot, (re, im)) in out.iter_mut().zip(&self.spectrum) {
            *slot = re * re + im * im;
        }
    }
}

/// Slaney mel filter bank, `n_mels x (N_FFT/2 + 1)` row-major (transformers' `mel_filter_bank`
/// with `norm="slaney", mel_scale="slaney"`, 0 to 8 kHz).
pub fn mel_filters(n_mels: usize) -> Vec<f64> {
    let bins = N_FFT / 2 + 1;
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(f64::from(SAMPLE_RATE) / 2.0));
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let nyquist = f64::from(SAMPLE_RATE / 2);
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|k| nyquist * k as f64 / (bins - 1) as f64)
        .collect();
    let mut filters = vec![0.0; n_mels * bins];
    for m in 0..n_mels {
        let (lo, centre, hi) = (points[m], points[m + 1], points[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, f) in fft_freqs.iter().enumerate() {
            let down = (f - lo) / (centre - lo);
            let up = (hi - f) / (hi - centre);
            filters[m * bins + k] = down.min(up).max(0.0) * enorm;
        }
    }
    filters
}

const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = 15.0;

fn log_step() -> f64 {
    27.0 / 6.4f64.ln()
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() * log_step()
    } else {
        3.0 * hz / 200.0
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * ((mel - MIN_LOG_MEL) / log_step()).exp()
    } else {
        200.0 * mel / 3.0
    }
}

type Complex = (f64, f64);

/// A mixed-radix decimation-in-time FFT for the small composite sizes Whisper uses (400 = 2^4 5^2).
struct Fft {
    n: usize,
    twiddles: Vec<Complex>,
}

impl Fft {
    fn new(n: usize) -> Self {
        let twiddles = (0..n)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n as f64;
                (a.cos(), a.sin())
            })
            .collect();
        Self { n, twiddles }
    }

    fn run(&self, input: &[Complex], out: &mut [Complex]) {
        self.step(input, 0, 1, self.n, out);
    }

    /// DFT of the `n` values `input[offset + j*stride]`.
    fn step(&self, input: &[Complex], offset: usize, stride: usize, n: usize, out: &mut [Complex]) {
        if n == 1 {
            out[0] = input[offset];
            return;
        }
        let p = (2..=n).find(|p| n.is_multiple_of(*p)).unwrap_or(n);
        let m = n / p;
        let mut parts = vec![(0.0, 0.0); n];
        for r in 0..p {
            self.step(
                input,
                offset + r * stride,
                stride * p,
                m,
                &mut parts[r * m..(r + 1) * m],
            );
        }
        let scale = self.n / n;
        for (k, slot) in out.iter_mut().enumerate().take(n) {
            let (mut re, mut im) = (0.0, 0.0);
            for r in 0..p {
                let (tr, ti) = self.twiddles[(r * k * scale) % self.n];
                let (xr, xi) = parts[r * m + k % m];
                re += tr * xr - ti * xi;
                im += tr * xi + ti * xr;
            }
            *slot = (re, im);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_a_plain_dft() {
        for n in [1usize, 2, 5, 12, 400] {
            let x: Vec<Complex> = (0..n)
                .map(|i| ((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
                .collect();
            let mut fast = vec![(0.0, 0.0); n];
            Fft::new(n).run(&x, &mut fast);
            for (k, got) in fast.iter().enumerate() {
                let (mut re, mut im) = (0.0, 0.0);
                for (j, (xr, xi)) in x.iter().enumerate() {
                    let a = -2.0 * PI * (j * k) as f64 / n as f64;
                    re += xr * a.cos() - xi * a.sin();
                    im += xr * a.sin() + xi * a.cos();
                }
                assert!(
                    (got.0 - re).abs() < 1e-9 && (got.1 - im).abs() < 1e-9,
                    "n={n} k={k}"
                );
            }
        }
    }

    #[test]
    fn slaney_scale_round_trips_and_filters_cover_the_band() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        let f = mel_filters(80);
        let bins = N_FFT / 2 + 1;
        for m in 0..80 {
            assert!(
                f[m * bins..(m + 1) * bins].iter().any(|v| *v > 0.0),
                "filter {m} empty"
            );
        }
    }

    #[test]
    fn short_clips_are_padded_to_one_window() {
        let mel = log_mel(&[0.0; 16_000], 80);
        assert_eq!((mel.n_mels, mel.frames), (80, 3000));
        // Silence: log10(1e-10) everywhere, so after the range clamp all values are (-10 + 4) / 4.
        assert!(mel.data.iter().all(|v| (*v + 1.5).abs() < 1e-6));
        let long = log_mel(&vec![0.1; 35 * 16_000], 80);
        assert_eq!(long.frames, 3500);
        let w = long.window(3000, 500, 3000);
        assert_eq!(w.len(), 80 * 3000);
        assert_eq!(w[499], long.data[3499]);
        assert_eq!(w[500], 0.0);
    }
}
