//! What a job makes (`--kind`, a job's `kind` key, the stored spec's `kind`).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// What a job makes. The doc comments are `--kind`'s help; what each kind reads is noted beside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Txt2img,
    Img2img,
    Inpaint,
    // `prompt` is the text, `voice` describes the speaker. WAV.
    /// Text to speech (Parler-TTS).
    #[value(alias = "speech")]
    #[serde(alias = "speech")]
    Tts,
    // `prompt` describes it, `duration` in seconds. WAV.
    /// Text to music (MusicGen).
    Music,
    // `audio` is the input. SRT + text.
    /// Speech to text (Whisper).
    #[value(alias = "transcribe")]
    #[serde(alias = "transcribe")]
    Stt,
    // `init_image` is the input. Text.
    /// Image to text (BLIP).
    Caption,
    // `prompt` is the idea. Text.
    /// Prompt enhancement (a small instruct LLM, GGUF).
    Enhance,
    // `image` is the input, `scale` 2 or 4. PNG.
    /// Image upscaling (Real-ESRGAN).
    Upscale,
    // `prompt` describes it, `frames` at `fps`. MP4 + JSON sidecar.
    /// Text to video (Wan).
    Txt2vid,
    // `init_image` is the first frame. MP4 + JSON sidecar.
    /// Image to video (an image-to-video model, e.g. Wan 2.2 TI2V).
    Img2vid,
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
            Self::Upscale => "upscale",
            Self::Txt2vid => "txt2vid",
            Self::Img2vid => "img2vid",
        }
    }

    /// Images come out of txt2img, img2img and inpaint; the rest make audio or text.
    pub fn makes_images(self) -> bool {
        matches!(self, Self::Txt2img | Self::Img2img | Self::Inpaint)
    }

    /// Video clips come out of txt2vid and img2vid.
    pub fn makes_video(self) -> bool {
        matches!(self, Self::Txt2vid | Self::Img2vid)
    }

    pub fn makes_audio(self) -> bool {
        matches!(self, Self::Tts | Self::Music)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_stored_names_and_aliases_agree() {
        for kind in JobKind::value_variants() {
            let flag = kind.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(flag.as_deref(), Some(kind.as_str()));
            assert_eq!(serde_json::to_value(kind).ok(), Some(kind.as_str().into()));
        }
        for (alias, kind) in [("speech", JobKind::Tts), ("transcribe", JobKind::Stt)] {
            assert_eq!(JobKind::from_str(alias, false), Ok(kind));
            let stored: Option<JobKind> = serde_json::from_value(alias.into()).ok();
            assert_eq!(stored, Some(kind));
        }
    }
}
