//! The shape of one registry entry (one `[[models]]` table of models.toml).
//! Every struct denies unknown keys so a typo in a user's models file is an error, not a silent default.

use serde::{Deserialize, Serialize};

use super::compat::Severity;
use crate::vocab::{Backend, Dtype, JobKind, Scheduler};

/// What a model makes; the TUI and the job runner pick engines by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Txt2img,
    Img2img,
    Inpaint,
    Tts,
    Music,
    Stt,
    Caption,
    Text,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Txt2img => "txt2img",
            Self::Img2img => "img2img",
            Self::Inpaint => "inpaint",
            Self::Tts => "tts",
            Self::Music => "music",
            Self::Stt => "stt",
            Self::Caption => "caption",
            Self::Text => "text",
        }
    }
}

impl Kind {
    /// The kind of the models that run jobs of this kind (language models enhance prompts).
    pub fn for_job(kind: JobKind) -> Self {
        match kind {
            JobKind::Txt2img => Self::Txt2img,
            JobKind::Img2img => Self::Img2img,
            JobKind::Inpaint => Self::Inpaint,
            JobKind::Tts => Self::Tts,
            JobKind::Music => Self::Music,
            JobKind::Stt => Self::Stt,
            JobKind::Caption => Self::Caption,
            JobKind::Enhance => Self::Text,
        }
    }

    /// The job a model of this kind runs when the job does not say (image models: txt2img).
    pub fn job_kind(self) -> JobKind {
        match self {
            Self::Txt2img | Self::Img2img | Self::Inpaint => JobKind::Txt2img,
            Self::Tts => JobKind::Tts,
            Self::Music => JobKind::Music,
            Self::Stt => JobKind::Stt,
            Self::Caption => JobKind::Caption,
            Self::Text => JobKind::Enhance,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The architecture family: decides which engine and which config shapes apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Sd1,
    Sd2,
    Sdxl,
    /// Parler-TTS: T5 description encoder, decoder over DAC codes.
    ParlerTts,
    /// MusicGen: T5 text encoder, decoder over EnCodec codes.
    Musicgen,
    /// Whisper speech recognition.
    Whisper,
    /// BLIP image captioning.
    Blip,
    /// A small instruct language model in one GGUF file (Qwen2, Llama/SmolLM2).
    GgufLlm,
    /// FLUX.1 (schnell, dev): a flow-matching MMDiT transformer, CLIP-L + T5 text encoders.
    Flux,
    /// Z-Image(-Turbo): a flow-matching single-stream DiT conditioned on Qwen3 states.
    ZImage,
    /// Stable Diffusion 3.5 (Medium, Large, Large Turbo): a flow-matching MMDiT transformer,
    /// CLIP-L + OpenCLIP bigG + optional T5 text encoders.
    Sd3,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sd1 => "sd1",
            Self::Sd2 => "sd2",
            Self::Sdxl => "sdxl",
            Self::ParlerTts => "parler-tts",
            Self::Musicgen => "musicgen",
            Self::Whisper => "whisper",
            Self::Blip => "blip",
            Self::GgufLlm => "gguf-llm",
            Self::Flux => "flux",
            Self::ZImage => "z-image",
            Self::Sd3 => "sd3",
        }
    }

    /// Families that make images from a diffusers pipeline folder (Stable Diffusion, FLUX,
    /// Z-Image).
    pub fn is_diffusion(self) -> bool {
        matches!(
            self,
            Self::Sd1 | Self::Sd2 | Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3
        )
    }

    /// Flow-matching transformer families (FLUX, Z-Image, SD 3.5): sizes in multiples of 16, the
    /// flow-euler scheduler, long-context text encoders.
    pub fn is_flow(self) -> bool {
        matches!(self, Self::Flux | Self::ZImage | Self::Sd3)
    }

    /// What a model of this family makes when no registry entry says.
    pub fn kind(self) -> Kind {
        match self {
            Self::Sd1 | Self::Sd2 | Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3 => {
                Kind::Txt2img
            }
            Self::ParlerTts => Kind::Tts,
            Self::Musicgen => Kind::Music,
            Self::Whisper => Kind::Stt,
            Self::Blip => Kind::Caption,
            Self::GgufLlm => Kind::Text,
        }
    }

    /// The side of the square images the family was trained on (SD2's 768 is the v-prediction model;
    /// see `ModelLayout::default_params` for the 512 epsilon variant); 0 for families without images.
    pub fn native_side(self) -> u32 {
        match self {
            Self::Sd1 => 512,
            Self::Sd2 => 768,
            Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3 => 1024,
            _ => 0,
        }
    }

    /// Parameters for a local folder that is not in the registry.
    pub fn default_params(self) -> Defaults {
        let side = self.native_side();
        let mut d = Defaults {
            steps: 30,
            guidance: 7.5,
            width: side,
            height: side,
            scheduler: match self {
                Self::Sdxl => Scheduler::Euler,
                _ => Scheduler::Ddim,
            },
            ..Defaults::default()
        };
        match self {
            Self::Musicgen => {
                d.guidance = 3.0;
                d.duration = Some(8.0);
            }
            Self::ParlerTts => {
                d.guidance = 0.0;
                d.duration = Some(30.0);
                d.voice = Some(DEFAULT_VOICE.to_owned());
            }
            Self::Whisper | Self::Blip | Self::GgufLlm => d.guidance = 0.0,
            // dev's defaults (28 steps, embedded guidance 3.5); a schnell folder's are set by
            // `ModelLayout::default_params` from its transformer config.
            Self::Flux => {
                d.steps = 28;
                d.guidance = 3.5;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(512);
                d.embedded_guidance = Some(true);
            }
            // Z-Image-Turbo's model card: 9 steps, no guidance; 512 Qwen3 tokens (diffusers).
            Self::ZImage => {
                d.steps = 9;
                d.guidance = 0.0;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(512);
            }
            // SD 3.5 Large's (28 steps, CFG 3.5, 256 T5 tokens); a Medium folder's are set by
            // `ModelLayout::default_params` from its transformer config.
            Self::Sd3 => {
                d.steps = 28;
                d.guidance = 3.5;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(256);
            }
            Self::Sd1 | Self::Sd2 | Self::Sdxl => {}
        }
        d
    }
}

/// The voice description used when a speech job gives none.
pub const DEFAULT_VOICE: &str = "A female speaker delivers a slightly expressive and animated speech \
with a moderate speed and pitch. The recording is of very high quality, with the speaker's voice \
sounding clear and very close up.";

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Job parameters a model runs best with; flags override them. Image models give steps, guidance,
/// size and scheduler; audio and text models the keys that apply to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    pub scheduler: Scheduler,
    /// Seconds of audio (music), or the most a speech clip may last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The voice description of a speech model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Most tokens a text model generates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Prompt tokens the (T5) text encoder reads when the job does not say (FLUX: schnell 256,
    /// dev 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sequence_length: Option<u32>,
    /// FLUX: whether the transformer takes `--guidance` as an embedded input (dev: true) or
    /// ignores it (schnell: false). None for families with classifier-free guidance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_guidance: Option<bool>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            steps: 30,
            guidance: 7.5,
            width: 512,
            height: 512,
            scheduler: Scheduler::Ddim,
            duration: None,
            voice: None,
            max_tokens: None,
            max_sequence_length: None,
            embedded_guidance: None,
        }
    }
}

/// The files of one pipeline component, as paths inside the repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler, pipeline, ...
    pub name: String,
    /// Files needed whatever the dtype (configs, tokenizer vocabularies).
    #[serde(default)]
    pub files: Vec<String>,
    /// Full-precision weights.
    #[serde(default)]
    pub weights: Option<String>,
    /// The fp16 variant of `weights` (diffusers' `variant="fp16"` naming), when the repo has one.
    #[serde(default)]
    pub weights_fp16: Option<String>,
}

impl Component {
    /// The files this component needs; `fp16` picks the fp16 weights where they exist.
    pub fn required_files(&self, fp16: bool) -> Vec<&str> {
        let weights = if fp16 {
            self.weights_fp16.as_ref().or(self.weights.as_ref())
        } else {
            self.weights.as_ref()
        };
        self.files
            .iter()
            .chain(weights)
            .map(String::as_str)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerFormat {
    /// CLIP's byte-pair encoding: vocab.json + merges.txt.
    ClipBpe,
    /// A Hugging Face tokenizers `tokenizer.json`.
    TokenizerJson,
}

/// Where the tokenizer comes from: folders of the model's own repo unless `repo` names another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSource {
    pub format: TokenizerFormat,
    #[serde(default)]
    pub repo: Option<String>,
    pub folders: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Macos,
    Linux,
    Windows,
    Other,
}

impl Os {
    /// The OS this binary was built for.
    pub fn current() -> Self {
        match std::env::consts::OS {
            "macos" => Self::Macos,
            "linux" => Self::Linux,
            "windows" => Self::Windows,
            _ => Self::Other,
        }
    }
}

/// A known problem of a model under some conditions. Every condition given must hold; a rule with
/// none always applies. macOS bounds compare only as many components as they give ("13" = any 13.x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownIssue {
    #[serde(default)]
    pub backend: Option<Backend>,
    #[serde(default)]
    pub dtype: Option<Dtype>,
    #[serde(default)]
    pub os: Option<Os>,
    /// A word of the chip name, e.g. "M1" matches "Apple M1 Pro" but not "Apple M2".
    #[serde(default)]
    pub chip: Option<String>,
    #[serde(default)]
    pub min_macos: Option<String>,
    #[serde(default)]
    pub max_macos: Option<String>,
    /// Applies when the job's guidance is above this.
    #[serde(default)]
    pub guidance_above: Option<f64>,
    /// Applies when the job's step count is above this.
    #[serde(default)]
    pub steps_above: Option<u32>,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

pub(super) fn default_revision() -> String {
    "main".to_owned()
}

/// One model users can pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub family: Family,
    /// Hugging Face repo id, `org/name`.
    pub repo: String,
    /// Branch, tag or commit hash.
    #[serde(default = "default_revision")]
    pub revision: String,
    pub license: String,
    pub license_url: String,
    pub gated: bool,
    /// Width and height the model was trained at (image models only).
    #[serde(default)]
    pub native_resolution: [u32; 2],
    pub defaults: Defaults,
    /// Where the tokenizer comes from (image models; audio and text models carry theirs in `files`).
    #[serde(default)]
    pub tokenizer: Option<TokenizerSource>,
    pub components: Vec<Component>,
    #[serde(default)]
    pub known_issues: Vec<KnownIssue>,
    /// Quantized variants: GGUF files (often in another repo) that replace a component's
    /// weights (`pallaidium fetch MODEL --quant NAME`). Several rows with one name make one
    /// variant (FLUX: the transformer and T5).
    #[serde(default)]
    pub quants: Vec<super::quant::QuantFile>,
    /// Where the entry was read from ("file:line"); filled by the registry, not the file.
    #[serde(skip)]
    pub source: String,
}

impl ModelEntry {
    /// Every file (repo-relative) the entry needs for the given weight variant.
    pub fn required_files(&self, fp16: bool) -> Vec<&str> {
        self.components
            .iter()
            .flat_map(|c| c.required_files(fp16))
            .collect()
    }
}
