//! The shape of one registry entry (one `[[models]]` table of models.toml).
//! Every struct denies unknown keys so a typo in a user's models file is an error, not a silent default.

use serde::{Deserialize, Serialize};

use super::compat::Severity;
pub use super::family::{DEFAULT_VOICE, Family};
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
    /// Image upscaling (Real-ESRGAN).
    Upscale,
    /// Text to video (Wan 2.1 T2V).
    Txt2vid,
    /// Image to video (and text to video: Wan 2.2 TI2V).
    Img2vid,
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
            Self::Upscale => "upscale",
            Self::Txt2vid => "txt2vid",
            Self::Img2vid => "img2vid",
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
            JobKind::Upscale => Self::Upscale,
            JobKind::Txt2vid => Self::Txt2vid,
            JobKind::Img2vid => Self::Img2vid,
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
            Self::Upscale => JobKind::Upscale,
            Self::Txt2vid | Self::Img2vid => JobKind::Txt2vid,
        }
    }
}

impl std::fmt::Display for Kind {
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
    /// An upscaler's scale (2 or 4): what `--scale` must be with this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// A video model's frame count and frame rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
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
            scale: None,
            frames: None,
            fps: None,
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
