//! The flags of one job and of batches, grouped under the help headings `--help` shows them in.

use std::path::PathBuf;

use clap::Args;

use super::values;
use crate::vocab::{JobKind, ResidencyChoice, Scheduler, Toggle};

const JOB: &str = "Job";
const IMAGE: &str = "Image";
const MEDIA: &str = "Audio and text";
const MEMORY: &str = "Memory";
const OUTPUT: &str = "Output";
const BATCH: &str = "Batch";

/// Flags that describe one job; in the TUI they pre-fill the form.
#[derive(Debug, Args, Clone, Default)]
pub struct JobArgs {
    /// Registry id (see `pallaidium models`) or a local diffusers folder [default: none; the
    /// kind's default model for --kind, --audio and --caption jobs].
    #[arg(long, value_name = "ID|DIR", help_heading = JOB)]
    pub model: Option<String>,
    /// What to generate (text to image, speech or music); the idea to enhance [default: empty].
    #[arg(long, value_name = "TEXT", help_heading = JOB)]
    pub prompt: Option<String>,
    /// What to steer away from (images) [default: empty].
    #[arg(long, value_name = "TEXT", help_heading = JOB)]
    pub negative: Option<String>,
    /// Denoising steps [default: the model's, e.g. 25 for sd15].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = JOB)]
    pub steps: Option<u32>,
    /// Classifier-free guidance scale [default: the model's, e.g. 7.5].
    #[arg(long, value_name = "F", value_parser = values::non_negative, help_heading = JOB)]
    pub guidance: Option<f64>,
    /// Random seed; a job records the one it used [default: random].
    #[arg(long, value_name = "N", value_parser = values::seed, help_heading = JOB)]
    pub seed: Option<u64>,
    /// ddim|euler|euler-a|dpm++2m|dpm++2m-karras|unipc [default: the model's].
    #[arg(long, value_name = "NAME", value_parser = Scheduler::parse_flag, help_heading = JOB)]
    pub scheduler: Option<Scheduler>,
    /// What to make [default: follows the model (txt2img, img2img with --init-image, inpaint
    /// with --mask) and the inputs (--audio: stt, --caption: caption)].
    #[arg(long, value_enum, help_heading = JOB)]
    pub kind: Option<JobKind>,
    /// Image width in pixels, a multiple of 8 [default: the model's, e.g. 512].
    #[arg(long, value_name = "N", value_parser = values::side, help_heading = IMAGE)]
    pub width: Option<u32>,
    /// Image height in pixels, a multiple of 8 [default: the model's, e.g. 512].
    #[arg(long, value_name = "N", value_parser = values::side, help_heading = IMAGE)]
    pub height: Option<u32>,
    /// Images per job, seeds seed, seed+1, ... [default: 1].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = IMAGE)]
    pub batch: Option<u32>,
    /// img2img source image [default: none].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    pub init_image: Option<PathBuf>,
    /// How much of the init image to repaint, 0..1 [default: 0.8 for img2img, 1 for inpainting].
    #[arg(long, value_name = "F", value_parser = values::fraction, help_heading = IMAGE)]
    pub strength: Option<f64>,
    /// Inpainting mask, white = repaint [default: none].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    pub mask: Option<PathBuf>,
    /// Initial latents (.npy or .safetensors, 1x4xH/8xW/8) for exact reproduction [default:
    /// seeded noise].
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    pub init_latents: Option<PathBuf>,
    /// Text to speech: how the voice sounds ("a calm female voice, close to the microphone")
    /// [default: the model's].
    #[arg(long, value_name = "TEXT", help_heading = MEDIA)]
    pub voice: Option<String>,
    /// Seconds of audio to make (music; the most speech may run) [default: the model's].
    #[arg(long, value_name = "SECONDS", value_parser = values::seconds, help_heading = MEDIA)]
    pub duration: Option<f64>,
    /// Speech to text: the audio file to transcribe (wav, flac, mp3, ogg) [default: none].
    #[arg(long, value_name = "PATH", help_heading = MEDIA)]
    pub audio: Option<PathBuf>,
    /// Speech to text: the spoken language (Whisper code, e.g. en, de) [default: detected].
    #[arg(long, value_name = "CODE", help_heading = MEDIA)]
    pub language: Option<String>,
    /// Speech to text: translate into English instead of transcribing [default: off].
    #[arg(long, help_heading = MEDIA)]
    pub translate: bool,
    /// Image to text: caption this image (BLIP); the caption is written as text [default: none].
    #[arg(long, value_name = "PATH", help_heading = MEDIA)]
    pub caption: Option<PathBuf>,
    /// Rewrite the prompt into a detailed image prompt with the enhancer before generating
    /// [default: off].
    #[arg(long, help_heading = MEDIA)]
    pub enhance: bool,
    /// The prompt-enhancer model (registry id or folder) for --enhance, --kind enhance and the
    /// TUI's Ctrl-E [default: qwen2.5-1.5b-instruct].
    #[arg(long, value_name = "ID|DIR", help_heading = MEDIA)]
    pub enhancer: Option<String>,
    /// Most tokens a text model may generate (captions, enhanced prompts, transcripts)
    /// [default: the model's].
    #[arg(long, value_name = "N", value_parser = values::count, help_heading = MEDIA)]
    pub max_tokens: Option<u32>,
    /// Attention slicing: auto, off, or a query chunk size in tokens [default: auto].
    #[arg(long, value_name = "auto|off|N", help_heading = MEMORY)]
    pub attention_slicing: Option<String>,
    /// VAE tiling for large images [default: auto].
    #[arg(long, value_enum, help_heading = MEMORY)]
    pub vae_tiling: Option<Toggle>,
    /// resident keeps every component loaded; staged loads text encoders, UNet and VAE one at a
    /// time [default: auto, the planner's choice].
    #[arg(long, value_enum, help_heading = MEMORY)]
    pub residency: Option<ResidencyChoice>,
    /// Print the memory plan and exit without running [default: off].
    #[arg(long, help_heading = MEMORY)]
    pub plan: bool,
    /// Show the finished image inline in the terminal (headless) [default: off].
    #[arg(long, help_heading = OUTPUT)]
    pub preview: bool,
    /// JSON lines on stdout [default: on when stdout is not a terminal].
    #[arg(long, help_heading = OUTPUT)]
    pub json: bool,
}

/// Flags that make many jobs at once.
#[derive(Debug, Args, Clone, Default)]
pub struct BatchArgs {
    /// TOML [[job]] tables or JSON lines, any job flag as a key [default: none].
    #[arg(long, value_name = "FILE", help_heading = BATCH)]
    pub jobs: Option<PathBuf>,
    /// One prompt a line; the other job flags are shared [default: none].
    #[arg(long, value_name = "FILE", help_heading = BATCH)]
    pub prompts: Option<PathBuf>,
    /// Re-run with the parameters stored in an output (a PNG, or a WAV/SRT/TXT with its
    /// sidecar) [default: none].
    #[arg(long, value_name = "OUTPUT", help_heading = BATCH)]
    pub from_image: Option<PathBuf>,
    /// Finish queued and interrupted jobs [default: off].
    #[arg(long, help_heading = BATCH)]
    pub resume: bool,
    /// List the job history (--json for JSON lines) [default: off].
    #[arg(long, help_heading = BATCH)]
    pub history: bool,
}
