//! What the audio and text engines hand back: a mono clip, a transcript with timestamps.
//! Writing them to files (WAV, SRT, text) is the job runner's business, not the engines'.

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
    /// The whole text, segments joined by single spaces.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
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

    #[test]
    fn transcript_text_joins_trimmed_segments() {
        let t = Transcript {
            language: None,
            segments: vec![
                Segment {
                    start_s: 0.0,
                    end_s: 1.0,
                    text: " Hello".into(),
                },
                Segment {
                    start_s: 1.0,
                    end_s: 2.0,
                    text: "world. ".into(),
                },
            ],
        };
        assert_eq!(t.text(), "Hello world.");
    }
}
