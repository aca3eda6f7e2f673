//! Each family's parameters of a prepared job, typed and filled: what the engine gets, what the
//! queue stores and what every output records. Only the values the family uses exist here, so an
//! output never claims a setting its job did not use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::vocab::{AttentionSlicing, ResidencyChoice, Scheduler, Toggle};

/// The parameters of one family of jobs. (An image job's are the largest by far; a spec is built
/// once per job and cloned rarely, so they are not boxed.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Params {
    /// txt2img, img2img and inpaint.
    Image(ImageParams),
    /// Text to speech.
    Speech(SpeechParams),
    Music(MusicParams),
    /// Speech to text.
    Transcribe(TranscribeParams),
    /// Image to text.
    Caption(CaptionParams),
    /// A prompt rewritten by a text model.
    Enhance(EnhanceParams),
    /// An image made larger (Real-ESRGAN).
    Upscale(UpscaleParams),
    /// txt2vid and img2vid.
    Video(VideoParams),
}

/// A diffusion video job (Wan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoParams {
    pub negative: String,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    /// Frames the clip has (Wan: 4n + 1).
    pub frames: u32,
    /// Frames per second of the MP4.
    pub fps: u32,
    /// Each frame also written as PNG (`--save-frames`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub save_frames: bool,
    /// img2vid: the first frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<PathBuf>,
    /// img2vid on a first-last-frame model (`--last-image`): the last frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_image: Option<PathBuf>,
    /// The 5-D noise diffusers would draw (1, C, latent frames, H/8, W/8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_latents: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sequence_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_tiling: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyChoice>,
    /// UMT5 from a GGUF file (`--text-encoder-2`), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder_2: Option<PathBuf>,
    /// LTX-Video: the VAE's decode timestep and noise mix (`--decode-timestep`,
    /// `--decode-noise-scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_timestep: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_noise_scale: Option<f64>,
}

/// A diffusion image job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageParams {
    pub negative: String,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    pub batch: u32,
    pub scheduler: Scheduler,
    /// How much of the init image is repainted (1 for txt2img).
    pub strength: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_latents: Option<PathBuf>,
    /// Prompt tokens the text encoder reads (`--max-sequence-length`); absent: all it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sequence_length: Option<u32>,
    /// FLUX: true CFG scale with the negative prompt (`--true-cfg`); absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_cfg: Option<f64>,
    /// FLUX: the transformer / T5 weights replacing the model's (`--transformer`,
    /// `--text-encoder-2`), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder_2: Option<PathBuf>,
    /// SD 3.5: T5 left out (`--no-t5`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_t5: bool,
    /// LoRAs merged into the model (`--lora`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<super::lora::LoraRef>,
    /// ControlNets steering the image (`--controlnet`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controlnets: Vec<super::controlnet::ControlNetRef>,
    /// Memory modes pinned by the job; absent: the planner's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_slicing: Option<AttentionSlicing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_tiling: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyChoice>,
    /// The prompt is rewritten by a text model first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhance: Option<Enhancement>,
    /// Each image is upscaled before it is written (`--upscale N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale: Option<UpscaleStep>,
}

impl Default for ImageParams {
    fn default() -> Self {
        Self {
            negative: String::new(),
            steps: 25,
            guidance: 7.5,
            width: 512,
            height: 512,
            batch: 1,
            scheduler: Scheduler::Euler,
            strength: 1.0,
            init_image: None,
            mask: None,
            init_latents: None,
            max_sequence_length: None,
            true_cfg: None,
            transformer: None,
            text_encoder_2: None,
            no_t5: false,
            loras: vec![],
            controlnets: vec![],
            attention_slicing: None,
            vae_tiling: None,
            residency: None,
            enhance: None,
            upscale: None,
        }
    }
}

/// `--upscale N` after an image job: the upscaler and its scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpscaleStep {
    pub scale: u32,
    /// Registry id or absolute file of the upscaler.
    pub model: String,
    /// Input pixels a tile (`--tile`); absent: the memory plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
}

/// `--enhance` on an image job: the enhancer and, once it has run, the idea it started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enhancement {
    /// Registry id or absolute folder of the text model.
    pub enhancer: String,
    /// The idea the job's prompt was enhanced from (set once the enhancer has run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Text to speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechParams {
    pub voice: String,
    /// The most seconds the speech may run.
    pub duration: f64,
    pub batch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MusicParams {
    pub duration: f64,
    pub guidance: f64,
    pub batch: u32,
}

/// Speech to text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeParams {
    pub audio: PathBuf,
    /// Whisper's language code; detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub translate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Image to text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionParams {
    pub image: PathBuf,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnhanceParams {
    pub max_tokens: u32,
}

/// An image upscaled by a Real-ESRGAN network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpscaleParams {
    /// The input image, absolute.
    pub image: PathBuf,
    /// 2 or 4: the model's own scale.
    pub scale: u32,
    /// Input pixels a tile (`--tile`); absent: the memory plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
}
