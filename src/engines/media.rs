//! What the audio and text engines hand back: a mono clip, a transcript with timestamps.
//! Writing them to files (WAV, SRT, text) is the job runner's business, not the engines'.
//! Each engine also publishes its `WorkingSet`: what the memory planner adds to its weights.

const MIB: u64 = 1 << 20;

/// Working memory of one run of an audio or text engine beyond its weights, in f32: a fixed part
/// plus a part per second of audio (generous upper bounds: kv caches of both guidance passes, the
/// codec's conv stacks at the output rate). The planner (`models::planner::media`) scales it by
/// the element size and the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingSet {
    pub fixed_bytes: u64,
    pub per_second_bytes: u64,
}

impl WorkingSet {
    pub const fn mib(fixed: u64, per_second: u64) -> Self {
        Self {
            fixed_bytes: fixed * MIB,
            per_second_bytes: per_second * MIB,
        }
    }
}

/// Mono audio, samples in -1..1.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl AudioClip {
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// One timed piece of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// What speech-to-text produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The language spoken, as Whisper's code ("en"), when the model detected or was told it.
    pub language: Option<String>,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// The whole text as transformers' pipeline gives it: the segments' texts concatenated, each
    /// with its own leading space (Whisper's tokens carry it) and nothing added between them, so
    /// Chinese and Japanese come out without spurious spaces.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .filter(|t| !t.trim().is_empty())
            .collect()
    }

    /// Keeps every cue inside the clip: Whisper's last timestamp can point past the audio's end.
    pub fn clamp_to(&mut self, duration_s: f64) {
        let end = duration_s.max(0.0);
        for s in &mut self.segments {
            s.start_s = s.start_s.clamp(0.0, end);
            s.end_s = s.end_s.clamp(s.start_s, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_follows_the_rate() {
        let clip = AudioClip {
            samples: vec![0.0; 24_000],
            sample_rate: 16_000,
        };
        assert!((clip.duration_s() - 1.5).abs() < 1e-12);
    }

    fn segment(start_s: f64, end_s: f64, text: &str) -> Segment {
        Segment {
            start_s,
            end_s,
            text: text.into(),
        }
    }

    #[test]
    fn transcript_text_concatenates_segments_like_transformers() {
        let t = Transcript {
            language: None,
            segments: vec![
                segment(0.0, 1.0, " Hello"),
                segment(1.0, 1.5, "  "),
                segment(1.5, 2.0, " world."),
            ],
        };
        assert_eq!(t.text(), " Hello world.");
        let ja = Transcript {
            language: Some("ja".into()),
            segments: vec![
                segment(0.0, 1.0, "こんにちは。"),
                segment(1.0, 2.0, "元気です。"),
            ],
        };
        assert_eq!(ja.text(), "こんにちは。元気です。");
    }

    #[test]
    fn cues_are_clamped_to_the_clip() {
        let mut t = Transcript {
            language: None,
            segments: vec![
                segment(0.0, 1.0, " a"),
                segment(2.5, 4.0, " b"),
                segment(3.5, 5.0, " c"),
            ],
        };
        t.clamp_to(3.0);
        let times: Vec<(f64, f64)> = t.segments.iter().map(|s| (s.start_s, s.end_s)).collect();
        assert_eq!(times, vec![(0.0, 1.0), (2.5, 3.0), (3.0, 3.0)]);
    }
}
