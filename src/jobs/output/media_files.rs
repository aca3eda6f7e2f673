//! What audio and text outputs carry: WAV (16-bit PCM mono) with a RIFF `LIST`/`INFO` chunk (title,
//! comment, software, date: players and tag editors show them) plus a JSON sidecar with the whole
//! JobSpec beside every audio or text output; SRT subtitles; and reading all of it back.

use std::path::{Path, PathBuf};

use crate::engines::media::{AudioClip, Transcript};
use crate::jobs::spec::JobSpec;

/// The JSON sidecar of an output: `<stem>.json` next to it.
pub fn sidecar_path(output: &Path) -> PathBuf {
    output.with_extension("json")
}

/// What a sidecar holds: the resolved spec, the outputs it describes, and the text of text jobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sidecar {
    pub pallaidium: String,
    pub spec: JobSpec,
    pub outputs: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The PALLAIDIUM_* switches set when it was made (`platform::switches`), if any.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub switches: std::collections::BTreeMap<String, String>,
}

impl Sidecar {
    /// `switches`: the run's recorded PALLAIDIUM_* switches (`OutputWriter::switches`).
    pub fn new(
        spec: &JobSpec,
        outputs: Vec<PathBuf>,
        switches: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        Self {
            pallaidium: env!("CARGO_PKG_VERSION").to_owned(),
            spec: spec.clone(),
            outputs,
            text: None,
            duration_s: None,
            switches: switches.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the sidecar of `output` (or `output` itself when it is the .json).
    pub fn read(output: &Path) -> crate::Result<Self> {
        let path = if output.extension().is_some_and(|e| e == "json") {
            output.to_path_buf()
        } else {
            sidecar_path(output)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            crate::Error::bad_input(format!(
                "{}: cannot read the parameters sidecar {} ({e}); pallaidium writes one beside \
                 every audio and text output",
                output.display(),
                path.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            crate::Error::bad_input(format!("{}: not a pallaidium sidecar: {e}", path.display()))
        })
    }
}

/// The text fields of the WAV `INFO` chunk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WavInfo {
    /// INAM: the prompt (or the spoken text).
    pub title: String,
    /// ICMT: how it was made, in one line.
    pub comment: String,
    /// ISFT.
    pub software: String,
    /// ICRD: creation date, YYYY-MM-DD.
    pub date: String,
}

/// The one-line description stored as the WAV comment.
pub fn wav_comment(spec: &JobSpec) -> String {
    let mut parts = vec![format!("Model: {}", spec.model)];
    if let crate::jobs::spec::Params::Speech(p) = &spec.params {
        parts.push(format!("Voice: {}", p.voice));
    }
    if let Some(seed) = spec.seed {
        parts.push(format!("Seed: {seed}"));
    }
    if let Some(d) = spec.duration() {
        parts.push(format!("Duration: {d}s"));
    }
    if let Some(g) = spec.guidance() {
        parts.push(format!("Guidance: {g}"));
    }
    parts.join(", ")
}

/// Encodes `clip` as a 16-bit PCM mono WAV with an `INFO` list after the data chunk.
pub fn encode_wav(clip: &AudioClip, info: &WavInfo) -> Vec<u8> {
    let data_len = clip.samples.len() * 2;
    let mut list = Vec::new();
    list.extend_from_slice(b"INFO");
    for (id, text) in [
        (b"INAM", &info.title),
        (b"ICMT", &info.comment),
        (b"ISFT", &info.software),
        (b"ICRD", &info.date),
    ] {
        if text.is_empty() {
            continue;
        }
        // Zero-terminated, padded to an even size as RIFF requires.
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        list.extend_from_slice(id);
        list.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        list.extend_from_slice(&bytes);
    }
    let mut out = Vec::with_capacity(44 + data_len + list.len() + 8);
    let riff_len = 4 + (8 + 16) + (8 + data_len) + (8 + list.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(riff_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&clip.sample_rate.to_le_bytes());
    out.extend_from_slice(&(clip.sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for &s in &clip.samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"LIST");
    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
    out.extend_from_slice(&list);
    out
}

/// Reads the `INFO` list of a WAV file (None when it has none).
pub fn read_wav_info(bytes: &[u8]) -> Option<WavInfo> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = bytes.get(at + 8..at + 8 + len)?;
        if id == b"LIST" && body.starts_with(b"INFO") {
            return Some(parse_info(&body[4..]));
        }
        at += 8 + len + (len % 2);
    }
    None
}

fn parse_info(mut body: &[u8]) -> WavInfo {
    let mut info = WavInfo::default();
    while body.len() >= 8 {
        let id = &body[0..4];
        let len = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let Some(raw) = body.get(8..8 + len) else {
            break;
        };
        let text = String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_owned();
        match id {
            b"INAM" => info.title = text,
            b"ICMT" => info.comment = text,
            b"ISFT" => info.software = text,
            b"ICRD" => info.date = text,
            _ => {}
        }
        let step = 8 + len + (len % 2);
        body = body.get(step..).unwrap_or_default();
    }
    info
}

/// `HH:MM:SS,mmm`.
fn srt_time(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02},{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// SubRip subtitles: numbered cues, `start --> end`, the text, a blank line. Empty segments are
/// skipped; a cue never ends before it starts.
pub fn to_srt(transcript: &Transcript) -> String {
    let mut out = String::new();
    let mut n = 0;
    for seg in &transcript.segments {
        let text = seg.text.trim();
        if text.is_empty() {
            continue;
        }
        n += 1;
        let end = seg.end_s.max(seg.start_s);
        out.push_str(&format!(
            "{n}\n{} --> {}\n{text}\n\n",
            srt_time(seg.start_s),
            srt_time(end)
        ));
    }
    out
}

/// Plain text with a `[start - end]` timestamp before each segment.
pub fn to_timed_text(transcript: &Transcript) -> String {
    transcript
        .segments
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| format!("[{:.2} - {:.2}] {}\n", s.start_s, s.end_s, s.text.trim()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::media::Segment;

    fn clip() -> AudioClip {
        AudioClip {
            samples: (0..1600).map(|i| (i as f32 * 0.05).sin() * 0.5).collect(),
            sample_rate: 16_000,
        }
    }

    #[test]
    fn wav_is_read_by_a_real_decoder_and_keeps_its_info() {
        let info = WavInfo {
            title: "a lighthouse".into(),
            comment: "Model: tiny, Seed: 3".into(),
            software: "pallaidium".into(),
            date: "2026-12-01".into(),
        };
        let bytes = encode_wav(&clip(), &info);
        let mut reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 16_000, 16)
        );
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(samples.len(), 1600);
        assert_eq!(
            samples[10],
            ((10.0f32 * 0.05).sin() * 0.5 * 32767.0).round() as i16
        );
        assert_eq!(read_wav_info(&bytes).unwrap(), info);
        let riff_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff_len + 8, bytes.len());
    }

    #[test]
    fn odd_length_info_text_is_padded() {
        let info = WavInfo {
            title: "ab".into(),
            ..WavInfo::default()
        };
        let bytes = encode_wav(&clip(), &info);
        assert_eq!(bytes.len() % 2, 0);
        assert_eq!(read_wav_info(&bytes).unwrap().title, "ab");
        assert!(read_wav_info(b"not a wav").is_none());
    }

    #[test]
    fn srt_has_numbered_cues_and_comma_millis() {
        let t = Transcript {
            language: Some("en".into()),
            segments: vec![
                Segment {
                    start_s: 0.0,
                    end_s: 1.5,
                    text: " Hello.".into(),
                },
                Segment {
                    start_s: 1.5,
                    end_s: 1.5,
                    text: "  ".into(),
                },
                Segment {
                    start_s: 3661.25,
                    end_s: 3662.0,
                    text: "Later".into(),
                },
            ],
        };
        assert_eq!(
            to_srt(&t),
            "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nLater\n\n"
        );
        assert_eq!(
            to_timed_text(&t),
            "[0.00 - 1.50] Hello.\n[3661.25 - 3662.00] Later\n"
        );
    }

    #[test]
    fn sidecar_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("1_x.wav");
        let mut car = Sidecar::new(&JobSpec::default(), vec![wav.clone()], &Default::default());
        car.duration_s = Some(2.0);
        std::fs::write(sidecar_path(&wav), car.to_json()).unwrap();
        assert_eq!(Sidecar::read(&wav).unwrap(), car);
        let err = Sidecar::read(&dir.path().join("nope.wav")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
