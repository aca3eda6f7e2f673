//! `JobSpec`: everything one job needs, as the user asked for it (defaults not yet applied).
//! Stored in the queue database and in every output's JSON chunk.

pub mod latents_file;
pub mod media;
pub mod model_check;
pub mod resolve;
pub mod sources;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::vocab::{DtypeChoice, JobKind, ResidencyChoice, Scheduler, Toggle};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JobSpec {
    pub kind: JobKind,
    pub model: String,
    pub prompt: String,
    pub negative: String,
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
    pub seed: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub batch: Option<u32>,
    pub scheduler: Option<Scheduler>,
    pub init_image: Option<PathBuf>,
    pub strength: Option<f64>,
    pub mask: Option<PathBuf>,
    pub init_latents: Option<PathBuf>,
    pub dtype: Option<DtypeChoice>,
    pub attention_slicing: Option<String>,
    pub vae_tiling: Option<Toggle>,
    pub residency: Option<ResidencyChoice>,
    /// Text to speech: the voice description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Seconds of audio (music; the cap for speech).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Speech to text: the audio file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<PathBuf>,
    /// Speech to text: the language code; detected when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Speech to text: translate into English.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub translate: bool,
    /// Image jobs: rewrite the prompt with the enhancer first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enhance: bool,
    /// The enhancer model for `enhance` (and the model of an Enhance job when `model` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhancer: Option<String>,
    /// The idea the prompt was enhanced from (set by the runner once it has rewritten `prompt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_from: Option<String>,
    /// Most tokens a text model may generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_specs_without_the_audio_fields_still_parse() {
        let spec: JobSpec = serde_json::from_str(r#"{"model":"sd15","prompt":"a cat"}"#).unwrap();
        assert_eq!(spec.kind, JobKind::Txt2img);
        assert!(!spec.enhance);
        let text = serde_json::to_string(&spec).unwrap();
        assert!(!text.contains("voice"), "{text}");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = JobSpec {
            model: "sd15".into(),
            prompt: "a cat".into(),
            steps: Some(20),
            ..JobSpec::default()
        };
        let text = serde_json::to_string(&spec).unwrap();
        let back: JobSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(spec, back);
    }
}
