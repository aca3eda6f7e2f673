//! `JobSpec`: everything one job needs, as the user asked for it (defaults not yet applied).
//! Stored in the queue database and in every output's JSON chunk.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::{DtypeArg, JobArgs, KindArg, ResidencyArg, Toggle};

/// What a job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Txt2img,
    Img2img,
    Inpaint,
    /// Text to speech: `prompt` is the text, `voice` describes the speaker. WAV.
    #[serde(alias = "speech")]
    Tts,
    /// Text to music: `prompt` describes it, `duration` in seconds. WAV.
    Music,
    /// Speech to text: `audio` is the input. SRT + text.
    #[serde(alias = "transcribe")]
    Stt,
    /// Image to text: `init_image` is the input. Text.
    Caption,
    /// Prompt enhancement: `prompt` is the idea. Text.
    Enhance,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Txt2img => "txt2img",
            Self::Img2img => "img2img",
            Self::Inpaint => "inpaint",
            Self::Tts => "tts",
            Self::Music => "music",
            Self::Stt => "stt",
            Self::Caption => "caption",
            Self::Enhance => "enhance",
        }
    }

    /// Images come out of txt2img, img2img and inpaint; the rest make audio or text.
    pub fn makes_images(self) -> bool {
        matches!(self, Self::Txt2img | Self::Img2img | Self::Inpaint)
    }

    pub fn makes_audio(self) -> bool {
        matches!(self, Self::Tts | Self::Music)
    }

    pub fn makes_text(self) -> bool {
        matches!(self, Self::Stt | Self::Caption | Self::Enhance)
    }
}

impl From<KindArg> for JobKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Txt2img => Self::Txt2img,
            KindArg::Img2img => Self::Img2img,
            KindArg::Inpaint => Self::Inpaint,
            KindArg::Tts => Self::Tts,
            KindArg::Music => Self::Music,
            KindArg::Stt => Self::Stt,
            KindArg::Caption => Self::Caption,
            KindArg::Enhance => Self::Enhance,
        }
    }
}

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
    pub scheduler: Option<String>,
    pub init_image: Option<PathBuf>,
    pub strength: Option<f64>,
    pub mask: Option<PathBuf>,
    pub init_latents: Option<PathBuf>,
    pub dtype: Option<DtypeArg>,
    pub attention_slicing: Option<String>,
    pub vae_tiling: Option<Toggle>,
    pub residency: Option<ResidencyArg>,
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

impl JobSpec {
    /// A spec from command-line job flags. Without --kind the kind follows the inputs (--audio,
    /// --caption, --mask, --init-image); the runner corrects txt2img to the model's own kind
    /// (a MusicGen model makes music) when the model is resolved.
    pub fn from_args(args: &JobArgs) -> Self {
        let kind = if let Some(kind) = args.kind {
            JobKind::from(kind)
        } else if args.audio.is_some() {
            JobKind::Stt
        } else if args.caption.is_some() {
            JobKind::Caption
        } else if args.mask.is_some() {
            JobKind::Inpaint
        } else if args.init_image.is_some() {
            JobKind::Img2img
        } else {
            JobKind::Txt2img
        };
        let init_image = args.caption.clone().or_else(|| args.init_image.clone());
        Self {
            kind,
            model: args.model.clone().unwrap_or_default(),
            prompt: args.prompt.clone().unwrap_or_default(),
            negative: args.negative.clone().unwrap_or_default(),
            steps: args.steps,
            guidance: args.guidance,
            seed: args.seed,
            width: args.width,
            height: args.height,
            batch: args.batch,
            scheduler: args.scheduler.clone(),
            init_image,
            strength: args.strength,
            mask: args.mask.clone(),
            init_latents: args.init_latents.clone(),
            dtype: None,
            attention_slicing: args.attention_slicing.clone(),
            vae_tiling: args.vae_tiling,
            residency: args.residency,
            voice: args.voice.clone(),
            duration: args.duration,
            audio: args.audio.clone(),
            language: args.language.clone(),
            translate: args.translate,
            enhance: args.enhance,
            enhancer: args.enhancer.clone(),
            enhanced_from: None,
            max_tokens: args.max_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_the_inputs() {
        let mut args = JobArgs::default();
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Txt2img);
        args.init_image = Some("a.png".into());
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Img2img);
        args.mask = Some("m.png".into());
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Inpaint);
        let mut args = JobArgs {
            audio: Some("talk.wav".into()),
            ..JobArgs::default()
        };
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Stt);
        args.audio = None;
        args.caption = Some("photo.png".into());
        let spec = JobSpec::from_args(&args);
        assert_eq!(spec.kind, JobKind::Caption);
        assert_eq!(spec.init_image, Some("photo.png".into()));
        args.kind = Some(KindArg::Music);
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Music);
    }

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
