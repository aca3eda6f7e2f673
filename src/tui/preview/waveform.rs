//! Waveforms of audio outputs for the preview pane. The WAV is read once, on a blocking thread,
//! into a fixed number of peak buckets; drawing only regroups those buckets to the pane's width,
//! so a resize never touches the file.

use std::path::Path;

/// Buckets kept per clip: more than any pane is wide, few enough to regroup every frame.
pub const BUCKETS: usize = 1024;

/// Peaks below this (-40 dBFS) are drawn at their true height, not scaled up to fill the pane.
pub const SILENCE: f32 = 0.01;

/// An audio output as the preview pane shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// The file name.
    pub label: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub duration_s: f64,
    /// The peak absolute amplitude (0..=1) of each of up to `BUCKETS` equal slices of the clip,
    /// over all channels.
    pub peaks: Vec<f32>,
}

impl Waveform {
    /// "3.2 s · 32 kHz · mono · peak -6 dB".
    pub fn info(&self) -> String {
        let peak = self.peak();
        let db = 20.0 * peak.log10();
        let level = if peak > 0.0 {
            // Rounded the way it reads: a clipped clip is "0 dB", not "-0 dB".
            format!("peak {:.0} dB", if db > -0.5 { 0.0 } else { db })
        } else {
            "silent".to_owned()
        };
        format!(
            "{} · {} · {} · {level}",
            seconds(self.duration_s),
            khz(self.sample_rate),
            match self.channels {
                1 => "mono".to_owned(),
                2 => "stereo".to_owned(),
                n => format!("{n} channels"),
            }
        )
    }

    /// The loudest sample's amplitude, 0..=1.
    pub fn peak(&self) -> f32 {
        self.peaks.iter().fold(0.0, |m, &p| m.max(p))
    }
}

fn seconds(s: f64) -> String {
    if s < 0.1 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{}:{:02} min", whole / 60, whole % 60)
    }
}

fn khz(rate: u32) -> String {
    if rate.is_multiple_of(1000) {
        format!("{} kHz", rate / 1000)
    } else {
        format!("{:.1} kHz", f64::from(rate) / 1000.0)
    }
}

/// Peaks of `samples` in `buckets` equal slices (fewer when there are fewer samples).
pub fn peaks(samples: &[f32], buckets: usize) -> Vec<f32> {
    let mut acc = PeakAccumulator::new(samples.len() as u64, buckets);
    for &s in samples {
        acc.push(s);
    }
    acc.finish()
}

/// Regroups `peaks` into exactly `width` columns: each column the loudest bucket it covers, or,
/// when there are fewer buckets than columns, the bucket under it (the clip stretches).
pub fn fit(peaks: &[f32], width: usize) -> Vec<f32> {
    let n = peaks.len();
    if n == 0 || width == 0 {
        return vec![0.0; width];
    }
    (0..width)
        .map(|col| {
            let start = col * n / width;
            let end = ((col + 1) * n / width).max(start + 1).min(n);
            peaks[start..end].iter().fold(0.0f32, |m, &p| m.max(p))
        })
        .collect()
}

/// Streams samples into buckets of known size, so a long clip is never held in memory.
struct PeakAccumulator {
    per_bucket: u64,
    in_bucket: u64,
    current: f32,
    out: Vec<f32>,
}

impl PeakAccumulator {
    fn new(total: u64, buckets: usize) -> Self {
        let buckets = (buckets as u64).max(1);
        Self {
            per_bucket: total.div_ceil(buckets).max(1),
            in_bucket: 0,
            current: 0.0,
            out: Vec::with_capacity(buckets.min(total) as usize),
        }
    }

    fn push(&mut self, sample: f32) {
        let a = if sample.is_finite() {
            sample.abs().min(1.0)
        } else {
            0.0
        };
        self.current = self.current.max(a);
        self.in_bucket += 1;
        if self.in_bucket == self.per_bucket {
            self.out.push(self.current);
            self.in_bucket = 0;
            self.current = 0.0;
        }
    }

    fn finish(mut self) -> Vec<f32> {
        if self.in_bucket > 0 {
            self.out.push(self.current);
        }
        self.out
    }
}

/// Reads a WAV file into a `Waveform`; blocking (file I/O). The error names the file.
pub fn read_wav(path: &Path) -> crate::Result<Waveform> {
    let bad = |e: hound::Error| {
        crate::Error::bad_input(format!(
            "{}: not a WAV file the preview can read ({e})",
            path.display()
        ))
    };
    let mut reader = hound::WavReader::open(path).map_err(bad)?;
    let spec = reader.spec();
    let channels = spec.channels.max(1);
    let frames = u64::from(reader.duration());
    // Channels are interleaved: a bucket covers `channels` times as many samples as frames.
    let mut acc = PeakAccumulator::new(frames * u64::from(channels), BUCKETS);
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>() {
                acc.push(s.map_err(bad)?);
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << spec.bits_per_sample.clamp(1, 32).saturating_sub(1)) as f32;
            for s in reader.samples::<i32>() {
                acc.push(s.map_err(bad)? as f32 * scale);
            }
        }
    }
    Ok(Waveform {
        label: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        sample_rate: spec.sample_rate,
        channels,
        duration_s: frames as f64 / f64::from(spec.sample_rate.max(1)),
        peaks: acc.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_take_the_loudest_sample_of_each_slice() {
        let samples = [0.1, -0.5, 0.2, 0.3, -0.9, 0.0, 0.25];
        // 7 samples in 3 buckets: slices of 3, 3 and the last 1.
        assert_eq!(peaks(&samples, 3), vec![0.5, 0.9, 0.25]);
        assert_eq!(
            peaks(&samples, 100).len(),
            7,
            "never more buckets than samples"
        );
        assert!(peaks(&[], 10).is_empty());
        assert_eq!(
            peaks(&[f32::NAN, 2.0], 1),
            vec![1.0],
            "clamped, NaN is silence"
        );
    }

    #[test]
    fn fit_regroups_to_the_width() {
        let p = [0.1, 0.9, 0.2, 0.3, 0.0, 0.4];
        assert_eq!(fit(&p, 3), vec![0.9, 0.3, 0.4]);
        assert_eq!(fit(&p, 6), p.to_vec());
        // Fewer buckets than columns: each bucket is stretched.
        assert_eq!(fit(&[0.2, 0.8], 4), vec![0.2, 0.2, 0.8, 0.8]);
        assert_eq!(fit(&[], 3), vec![0.0; 3]);
        assert!(fit(&p, 0).is_empty());
        // Uneven groups still cover every bucket exactly once.
        let many: Vec<f32> = (0..BUCKETS).map(|i| i as f32 / BUCKETS as f32).collect();
        let cols = fit(&many, 77);
        assert_eq!(cols.len(), 77);
        assert_eq!(cols[76], many[BUCKETS - 1]);
    }

    #[test]
    fn reads_a_pcm_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 32_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        // 3.2 s: silent first half, a half-scale square wave after.
        for i in 0..102_400u32 {
            let v: i16 = if i < 51_200 {
                0
            } else if i % 2 == 0 {
                16_384
            } else {
                -16_384
            };
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let wave = read_wav(&path).unwrap();
        assert_eq!(wave.info(), "3.2 s · 32 kHz · mono · peak -6 dB");
        assert_eq!(wave.label, "tone.wav");
        assert_eq!(wave.peaks.len(), BUCKETS);
        assert_eq!(wave.peaks[0], 0.0);
        assert!((wave.peaks[BUCKETS - 1] - 0.5).abs() < 1e-6);

        std::fs::write(dir.path().join("bad.wav"), b"RIFF....").unwrap();
        let err = read_wav(&dir.path().join("bad.wav"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.wav"), "{err}");
    }

    #[test]
    fn info_formats_rates_and_long_clips() {
        let w = Waveform {
            label: String::new(),
            sample_rate: 44_100,
            channels: 2,
            duration_s: 95.0,
            peaks: Vec::new(),
        };
        assert_eq!(w.info(), "1:35 min · 44.1 kHz · stereo · silent");
        let clipped = Waveform {
            duration_s: 0.04,
            channels: 1,
            peaks: vec![0.2, 1.0],
            ..w
        };
        assert_eq!(clipped.info(), "40 ms · 44.1 kHz · mono · peak 0 dB");
    }
}
