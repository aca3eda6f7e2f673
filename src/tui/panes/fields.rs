//! The fields of the parameters form and which of them each kind of model takes.

use crate::models::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamField {
    Model,
    Steps,
    Guidance,
    Seed,
    Size,
    Batch,
    Scheduler,
    Strength,
    InitImage,
    Mask,
    Dtype,
    Residency,
    Device,
    /// Text to speech: how the voice sounds.
    Voice,
    /// Seconds of audio (music), or the most (speech).
    Duration,
    /// Speech to text: the audio file.
    Audio,
    Language,
    Translate,
    /// LoRAs (`--lora`), chosen in the LoRA picker.
    Loras,
    /// Upscale after the job (`--upscale`): off, x2, x4.
    Upscale,
    /// The upscaler of that step (`--upscaler`).
    Upscaler,
    /// A ControlNet (`--controlnet`), its image, scale and preprocessing.
    ControlNet,
    ControlImage,
    ControlScale,
    ControlPreprocess,
    /// Video: frames of the clip (`--frames`, Wan 4n+1).
    Frames,
    /// Video: frames per second of the MP4 (`--fps`).
    Fps,
}

/// The fields of image models (the form as it was before audio and text).
const IMAGE_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Steps,
    ParamField::Guidance,
    ParamField::Seed,
    ParamField::Size,
    ParamField::Batch,
    ParamField::Scheduler,
    ParamField::Strength,
    ParamField::InitImage,
    ParamField::Mask,
    ParamField::Loras,
    ParamField::Upscale,
    ParamField::Upscaler,
    ParamField::ControlNet,
    ParamField::ControlImage,
    ParamField::ControlScale,
    ParamField::ControlPreprocess,
    ParamField::Dtype,
    ParamField::Residency,
    ParamField::Device,
];
const TTS_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Voice,
    ParamField::Duration,
    ParamField::Seed,
    ParamField::Dtype,
    ParamField::Device,
];
const MUSIC_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Duration,
    ParamField::Guidance,
    ParamField::Seed,
    ParamField::Dtype,
    ParamField::Device,
];
const STT_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Audio,
    ParamField::Language,
    ParamField::Translate,
    ParamField::Dtype,
    ParamField::Device,
];
const CAPTION_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::InitImage,
    ParamField::Dtype,
    ParamField::Device,
];
/// Video models: the clip's size, length and rate, steps and guidance.
const VIDEO_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Steps,
    ParamField::Guidance,
    ParamField::Seed,
    ParamField::Size,
    ParamField::Frames,
    ParamField::Fps,
    ParamField::Dtype,
    ParamField::Device,
];
/// Image-to-video models (Wan 2.2 TI2V, Wan 2.1 I2V): the video fields and the first frame
/// (empty: text to video where the model makes it).
const IMAGE_VIDEO_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::InitImage,
    ParamField::Steps,
    ParamField::Guidance,
    ParamField::Seed,
    ParamField::Size,
    ParamField::Frames,
    ParamField::Fps,
    ParamField::Dtype,
    ParamField::Device,
];
const TEXT_FIELDS: &[ParamField] = &[
    ParamField::Model,
    ParamField::Seed,
    ParamField::Dtype,
    ParamField::Device,
];

/// The fields a model of `kind` takes, in display order; `None` (no model, or a local folder
/// not in the registry) is an image model.
pub fn fields_for(kind: Option<Kind>) -> &'static [ParamField] {
    match kind {
        None | Some(Kind::Txt2img | Kind::Img2img | Kind::Inpaint) => IMAGE_FIELDS,
        Some(Kind::Tts) => TTS_FIELDS,
        Some(Kind::Music) => MUSIC_FIELDS,
        Some(Kind::Stt) => STT_FIELDS,
        // An upscaler reads one image, as a captioner does.
        Some(Kind::Caption | Kind::Upscale) => CAPTION_FIELDS,
        Some(Kind::Text) => TEXT_FIELDS,
        Some(Kind::Txt2vid) => VIDEO_FIELDS,
        Some(Kind::Img2vid) => IMAGE_VIDEO_FIELDS,
    }
}

impl ParamField {
    pub fn label(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Steps => "steps",
            Self::Guidance => "guidance",
            Self::Seed => "seed",
            Self::Size => "size",
            Self::Batch => "batch",
            Self::Scheduler => "scheduler",
            Self::Strength => "strength",
            Self::InitImage => "init image",
            Self::Mask => "mask",
            Self::Dtype => "dtype",
            Self::Residency => "residency",
            Self::Device => "device",
            Self::Voice => "voice",
            Self::Duration => "duration",
            Self::Audio => "audio",
            Self::Language => "language",
            Self::Translate => "translate",
            Self::Loras => "loras",
            Self::Upscale => "upscale",
            Self::Upscaler => "upscaler",
            Self::ControlNet => "controlnet",
            Self::ControlImage => "ctrl image",
            Self::ControlScale => "ctrl scale",
            Self::ControlPreprocess => "ctrl prep",
            Self::Frames => "frames",
            Self::Fps => "fps",
        }
    }

    /// The label as a model of `kind` shows it (a captioner's init image is just its image).
    pub fn label_for(self, kind: Option<Kind>) -> &'static str {
        match (self, kind) {
            (Self::InitImage, Some(Kind::Caption | Kind::Upscale)) => "image",
            (Self::Duration, Some(Kind::Tts)) => "max secs",
            _ => self.label(),
        }
    }

    /// What an empty field means, for the fields whose default is not the model's.
    pub fn placeholder(self, kind: Option<Kind>) -> Option<&'static str> {
        Some(match (self, kind) {
            (Self::Voice, _) => "the model's default voice",
            (Self::Duration, Some(Kind::Tts)) => "until the text is spoken",
            (Self::Duration, _) => "the model's default",
            (Self::Audio, _) => "none (Enter, then a .wav path)",
            (Self::Language, _) => "detect",
            (Self::Translate, _) => "off (transcribe as spoken)",
            (Self::Loras, _) => "none (Enter: choose)",
            (Self::Upscale, _) => "off (←→: x2, x4)",
            (Self::ControlNet, _) => "none (Enter, then a ControlNet folder)",
            (Self::ControlImage, _) => "none (Enter, then an image path)",
            (Self::ControlScale, _) => "1",
            (Self::ControlPreprocess, _) => "none (←→: canny edges)",
            (Self::InitImage, Some(Kind::Caption | Kind::Upscale)) => {
                "none (Enter, then an image path)"
            }
            _ => return None,
        })
    }

    /// (step, min, max, decimals) of the number fields that Left/Right nudge.
    pub fn nudge_range(self) -> Option<(f64, f64, f64, usize)> {
        Some(match self {
            Self::Steps => (1.0, 1.0, 500.0, 0),
            Self::Batch => (1.0, 1.0, 64.0, 0),
            Self::Guidance => (0.5, 0.0, 30.0, 1),
            Self::Strength => (0.05, 0.0, 1.0, 2),
            Self::Duration => (1.0, 1.0, 300.0, 0),
            Self::ControlScale => (0.05, 0.0, 10.0, 2),
            // Wan's 4n+1 frames (the nudge takes the model family's step).
            Self::Frames => (4.0, 1.0, f64::from(crate::jobs::spec::video::MAX_FRAMES), 0),
            Self::Fps => (1.0, 1.0, f64::from(crate::jobs::spec::video::MAX_FPS), 0),
            _ => return None,
        })
    }

    pub fn is_path(self) -> bool {
        matches!(
            self,
            Self::InitImage
                | Self::Mask
                | Self::Audio
                | Self::Upscaler
                | Self::ControlNet
                | Self::ControlImage
        )
    }
}
