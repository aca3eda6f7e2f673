//! `JobOverrides`: one job as asked, every value optional (absent = the model's default). The one
//! declaration of the job flags: clap reads it from the command line (the help text below is
//! `--help`), serde from job files (kebab-case keys like the flags, snake_case accepted), the TUI
//! form fills one, `--from-image` rebuilds one from a stored spec, and `merge` lays one over
//! another. `prepare` (jobs::run) turns it into a `JobSpec` once the model is known.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::controlnet::ControlPreprocess;
use crate::vocab::values;
use crate::vocab::{AttentionSlicing, DtypeChoice, JobKind, ResidencyChoice, Scheduler, Toggle};

const JOB: &str = "Job";
const IMAGE: &str = "Image";
const MEDIA: &str = "Audio and text";
const MEMORY: &str = "Memory";
const UPSCALE: &str = "Upscaling";
const CONTROL: &str = "ControlNet";
const VIDEO: &str = "Video";

/// One job as asked; see the module header.
#[derive(Debug, Clone, PartialEq, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobOverrides {
    /// Registry id (see `pallaidium models`) or a local diffusers folder [default: none; the
    /// kind's default model for --kind, --audio and --caption jobs].
    #[arg(long, value_name = "ID|DIR", help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What to generate (text to image, speech or music); the idea to enhance [default: empty].
    #[arg(long, value_name = "TEXT", help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// What to steer away from (images) [default: empty].
    #[arg(long, value_name = "TEXT", help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative: Option<String>,
    /// Denoising steps [default: the model's, e.g. 25 for sd15].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Classifier-free guidance scale [default: the model's, e.g. 7.5].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f64>,
    /// Random seed; a job records the one it used [default: random].
    #[arg(long, value_name = "N", value_parser = values::seed, help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// ddim|euler|euler-a|dpm++2m|dpm++2m-karras|unipc; flow-euler for FLUX [default: the model's].
    #[arg(long, value_name = "NAME", value_parser = Scheduler::parse_flag, help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    /// What to make [default: follows the model (txt2img, img2img with --init-image, inpaint
    /// with --mask) and the inputs (--audio: stt, --caption: caption)].
    #[arg(long, value_enum, help_heading = JOB)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Image width in pixels, a multiple of 8 (16 for FLUX) [default: the model's, e.g. 512].
    #[arg(long, value_name = "N", value_parser = values::side, help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels, a multiple of 8 (16 for FLUX) [default: the model's, e.g. 512].
    #[arg(long, value_name = "N", value_parser = values::side, help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Images per job, seeds seed, seed+1, ... [default: 1].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// img2img source image [default: none].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    #[serde(alias = "init_image", skip_serializing_if = "Option::is_none")]
    pub init_image: Option<PathBuf>,
    /// How much of the init image to repaint, 0..1 [default: 0.8 for img2img, 1 for inpainting].
    #[arg(long, value_name = "F", value_parser = values::fraction, help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
    /// Inpainting mask, white = repaint [default: none].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<PathBuf>,
    /// Initial latents (.npy or .safetensors, 1x4xH/8xW/8) for exact reproduction [default:
    /// seeded noise].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    #[serde(alias = "init_latents", skip_serializing_if = "Option::is_none")]
    pub init_latents: Option<PathBuf>,
    /// Text to speech: how the voice sounds ("a calm female voice, close to the microphone")
    /// [default: the model's].
    #[arg(long, value_name = "TEXT", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Seconds of audio to make (music; the most speech may run) [default: the model's].
    #[arg(long, value_name = "SECONDS", value_parser = values::seconds, help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Speech to text: the audio file to transcribe (wav, flac, mp3, ogg) [default: none].
    #[arg(long, value_name = "PATH", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<PathBuf>,
    /// Speech to text: the spoken language (Whisper code, e.g. en, de) [default: detected].
    #[arg(long, value_name = "CODE", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Speech to text: translate into English instead of transcribing [default: off].
    #[arg(long, num_args = 0, default_missing_value = "true", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translate: Option<bool>,
    /// Image to text: caption this image (BLIP); the caption is written as text [default: none].
    #[arg(long, value_name = "PATH", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<PathBuf>,
    /// Rewrite the prompt into a detailed image prompt with the enhancer before generating
    /// [default: off].
    #[arg(long, num_args = 0, default_missing_value = "true", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhance: Option<bool>,
    /// The prompt-enhancer model (registry id or folder) for --enhance, --kind enhance and the
    /// TUI's Ctrl-E [default: qwen2.5-1.5b-instruct].
    #[arg(long, value_name = "ID|DIR", help_heading = MEDIA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhancer: Option<String>,
    /// Most tokens a text model may generate (captions, enhanced prompts, transcripts)
    /// [default: the model's].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = MEDIA)]
    #[serde(alias = "max_tokens", skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Most prompt tokens the text encoder reads, start and end tokens included: longer prompts
    /// are cut, shorter ones padded to it [default: the encoder's, 77 for CLIP; FLUX's T5 256
    /// (schnell) or 512 (dev)].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = IMAGE)]
    #[serde(alias = "max_sequence_length", skip_serializing_if = "Option::is_none")]
    pub max_sequence_length: Option<u32>,
    /// FLUX: true classifier-free guidance with --negative, two transformer passes a step;
    /// above 1 it applies [default: off].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = IMAGE)]
    #[serde(alias = "true_cfg", skip_serializing_if = "Option::is_none")]
    pub true_cfg: Option<f64>,
    /// FLUX: the transformer's weights from this file (a GGUF such as
    /// flux1-schnell-Q4_K_S.gguf, or a .safetensors) instead of the model's transformer/
    /// [default: the model's].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformer: Option<PathBuf>,
    /// Flow models: the big text encoder's weights from this llama.cpp GGUF instead of the
    /// model's: T5 for FLUX and SD 3.5 (e.g. t5-v1_1-xxl-encoder-Q8_0.gguf), Qwen3 for Z-Image
    /// (e.g. Qwen3-4B-Q8_0.gguf), UMT5 for Wan (e.g. umt5-xxl-encoder-Q8_0.gguf) [default: the
    /// model's].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    #[serde(alias = "text_encoder_2", skip_serializing_if = "Option::is_none")]
    pub text_encoder_2: Option<PathBuf>,
    /// SD 1.x/2.x, SDXL, FLUX: a LoRA merged into the UNet or transformer and the CLIP text
    /// encoders (beside a GGUF transformer's layers), a .safetensors file (kohya/A1111 or
    /// diffusers/PEFT naming, LyCORIS LoHa/LoKr) or REPO:FILE in the Hugging Face cache, at
    /// WEIGHT (default 1); repeat for several [default: none].
    #[arg(long, value_name = "PATH|REPO:FILE[@WEIGHT]", help_heading = IMAGE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<Vec<String>>,
    /// SD 1.x/2.x, SDXL: a ControlNet steering the image (a diffusers ControlNetModel folder,
    /// or a repo in the Hugging Face cache); repeat for several, each with its --control-image
    /// [default: none].
    #[arg(long, value_name = "ID|DIR", help_heading = CONTROL)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controlnet: Option<Vec<String>>,
    /// The control image of each --controlnet, in order; resized to the job's size
    /// [default: none].
    #[arg(long, value_name = "PATH", help_heading = CONTROL)]
    #[serde(alias = "control_image", skip_serializing_if = "Option::is_none")]
    pub control_image: Option<Vec<PathBuf>>,
    /// How strongly each ControlNet steers, 0..10; once for all or once per --controlnet
    /// [default: 1].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = CONTROL)]
    #[serde(alias = "control_scale", skip_serializing_if = "Option::is_none")]
    pub control_scale: Option<Vec<f64>>,
    /// The fraction of the steps where each ControlNet starts acting, 0..1 [default: 0].
    #[arg(long, value_name = "F", value_parser = values::fraction, help_heading = CONTROL)]
    #[serde(alias = "control_start", skip_serializing_if = "Option::is_none")]
    pub control_start: Option<Vec<f64>>,
    /// The fraction of the steps where each ControlNet stops acting, 0..1 [default: 1].
    #[arg(long, value_name = "F", value_parser = values::fraction, help_heading = CONTROL)]
    #[serde(alias = "control_end", skip_serializing_if = "Option::is_none")]
    pub control_end: Option<Vec<f64>>,
    /// canny: Canny edges of the control image are the input; none: the image as given
    /// [default: none].
    #[arg(long, value_name = "canny|none", value_parser = ControlPreprocess::parse_flag, help_heading = CONTROL)]
    #[serde(alias = "control_preprocess", skip_serializing_if = "Option::is_none")]
    pub control_preprocess: Option<Vec<ControlPreprocess>>,
    /// Canny's lower hysteresis threshold (as OpenCV's cv2.Canny) [default: 100].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = CONTROL)]
    #[serde(alias = "canny_low", skip_serializing_if = "Option::is_none")]
    pub canny_low: Option<Vec<f64>>,
    /// Canny's upper hysteresis threshold [default: 200].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = CONTROL)]
    #[serde(alias = "canny_high", skip_serializing_if = "Option::is_none")]
    pub canny_high: Option<Vec<f64>>,
    /// SD 3.5: leave the T5 text encoder out (zeros in its place, as diffusers without
    /// text_encoder_3): less memory and time, weaker prompt following [default: off].
    #[arg(long = "no-t5", num_args = 0, default_missing_value = "true", help_heading = IMAGE)]
    #[serde(alias = "no_t5", skip_serializing_if = "Option::is_none")]
    pub no_t5: Option<bool>,
    /// Attention slicing: auto, off, or a query chunk size in tokens [default: auto].
    #[arg(long, value_name = "auto|off|N", value_parser = AttentionSlicing::parse_flag, help_heading = MEMORY)]
    #[serde(alias = "attention_slicing", skip_serializing_if = "Option::is_none")]
    pub attention_slicing: Option<AttentionSlicing>,
    /// VAE tiling for large images [default: auto].
    #[arg(long, value_enum, help_heading = MEMORY)]
    #[serde(alias = "vae_tiling", skip_serializing_if = "Option::is_none")]
    pub vae_tiling: Option<Toggle>,
    /// resident keeps every component loaded; staged loads text encoders, UNet and VAE one at a
    /// time [default: auto, the planner's choice].
    #[arg(long, value_enum, help_heading = MEMORY)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyChoice>,
    /// The image to upscale (Real-ESRGAN; implies --kind upscale) [default: none].
    #[arg(long, value_name = "PATH", help_heading = UPSCALE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    /// 2 or 4; picks realesrgan-x2plus or realesrgan-x4plus when no --model is given,
    /// and must be a given model's own scale [default: the model's, else 4].
    #[arg(long, value_name = "2|4", value_parser = values::count, help_heading = UPSCALE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Upscale each image of an image job by 2 or 4 before it is written; the PNG records both
    /// jobs' parameters [default: off].
    #[arg(long, value_name = "2|4", value_parser = values::count, help_heading = UPSCALE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upscale: Option<u32>,
    /// The upscaler for --upscale (registry id or .safetensors file) [default:
    /// realesrgan-x2plus for 2, realesrgan-x4plus for 4].
    #[arg(long, value_name = "ID|FILE", help_heading = UPSCALE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upscaler: Option<String>,
    /// Input pixels a tile side, at least 32 (tiles overlap by 10 pixels of context)
    /// [default: the largest the memory plan allows].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = UPSCALE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    /// Video: frames of the clip (Wan: 4n+1, e.g. 33 or 81) [default: the model's, 81 for Wan].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = VIDEO)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Video: frames per second of the MP4, 1..240 [default: the model's, 16 for Wan].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = VIDEO)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Video: also write every frame as PNG (listed after the .mp4) [default: off].
    #[arg(long, num_args = 0, default_missing_value = "true", help_heading = VIDEO)]
    #[serde(alias = "save_frames", skip_serializing_if = "Option::is_none")]
    pub save_frames: Option<bool>,
    /// Video: the last frame of an img2vid clip that starts at --init-image (Wan 2.1 FLF2V
    /// first-last-frame models) [default: none].
    #[arg(long, value_name = "PATH", help_heading = VIDEO)]
    #[serde(alias = "last_image", skip_serializing_if = "Option::is_none")]
    pub last_image: Option<PathBuf>,
    /// Video: the timestep a timestep-conditioned LTX-Video VAE decodes at, 0..1 (LTX-Video
    /// 0.9.1+ model cards: 0.03) [default: 0].
    #[arg(long, value_name = "T", value_parser = values::fraction, help_heading = VIDEO)]
    #[serde(alias = "decode_timestep", skip_serializing_if = "Option::is_none")]
    pub decode_timestep: Option<f64>,
    /// Video: how much fresh noise is mixed into the latents before such a decode, 0..1
    /// (0.9.1+ model cards: 0.025) [default: the decode timestep].
    #[arg(long, value_name = "F", value_parser = values::fraction, help_heading = VIDEO)]
    #[serde(alias = "decode_noise_scale", skip_serializing_if = "Option::is_none")]
    pub decode_noise_scale: Option<f64>,
    /// The compute dtype of this job (a job-file key; on the command line --dtype applies to all).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DtypeChoice>,
    /// The idea an enhanced prompt came from: set only when re-running a stored output, so its
    /// enhanced prompt is used as it is (a new --prompt clears it). Not a flag or a key.
    #[arg(skip)]
    #[serde(skip)]
    pub enhanced_from: Option<String>,
}
