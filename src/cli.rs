//! The command line: the one place where flag names live (see DESIGN.md, "The command line").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pallaidium",
    version,
    about = "A terminal workbench for local generative AI",
    long_about = "Generate images (and later audio and text) with local models on CUDA, Metal or the CPU.\n\
                  With no subcommand the TUI opens; --headless runs jobs from the command line."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run the job(s) without the TUI: JSON lines on stdout (when --json or not a terminal), progress on stderr.
    #[arg(long)]
    pub headless: bool,

    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub job: JobArgs,

    #[command(flatten)]
    pub batch: BatchArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Platform, devices, memory, backends, paths, problems and their fixes.
    Doctor {
        /// Print one JSON object instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// The model registry with a compatibility verdict per model for the chosen device.
    Models {
        /// Print a JSON list instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download a model into the Hugging Face cache.
    Fetch {
        /// Registry id or Hugging Face repo id.
        model: String,
        /// Fetch the files this dtype needs (fp16 variants for f16/bf16).
        #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
        dtype: DtypeArg,
    },
    /// Benchmarks on full-size configurations with random weights (the work is the same as with
    /// trained weights): JSON and a table.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// The parameters stored in an output file.
    Info {
        file: PathBuf,
        /// Print the stored JobSpec as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand, Clone)]
pub enum BenchCommand {
    /// One UNet step (median and min over --runs timed runs after warm-up).
    Unet(BenchArgs),
    /// A whole generation: load, encode, all steps, decode, with per-stage times.
    Image(BenchArgs),
    /// The hot layers one at a time (GroupNorm, convolutions, attention, GEGLU, the VAE's
    /// full-resolution layers), candle's stock kernels against ours: times and differences.
    Ops(BenchArgs),
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Registry id whose full-size architecture to build (sd15, sd21, sdxl), or a diffusers folder.
    #[arg(long, default_value = "sd15")]
    pub model: String,
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Denoising steps (bench image).
    #[arg(long, default_value_t = 20)]
    pub steps: u32,
    /// Attention slicing: auto, off, or a query chunk size in tokens.
    #[arg(long, value_name = "auto|off|N")]
    pub attention_slicing: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags every command understands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// auto|cpu|cuda[:N]|metal[:N]; auto prefers CUDA, then Metal, then the CPU.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
    /// Compute dtype; auto picks per device (f16 on CUDA/Metal, f32 on the CPU).
    #[arg(long, global = true, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// An extra models file merged over the shipped registry.
    #[arg(long = "models", global = true, value_name = "FILE")]
    pub models_file: Option<PathBuf>,
    /// Never touch the network (also HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Cap on the memory jobs may use, e.g. 6GiB, 512MiB.
    #[arg(long, global = true, value_name = "SIZE")]
    pub memory_budget: Option<String>,
    /// error|warn|info|debug|trace, or an EnvFilter (PALLAIDIUM_LOG overrides).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// TUI theme: dark (default), light, high-contrast, or a themes/NAME.toml.
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,
    /// Inline image protocol: auto (probe the terminal), kitty, iterm, sixel, halfblocks or none.
    #[arg(
        long,
        global = true,
        env = "PALLAIDIUM_PREVIEW_PROTOCOL",
        default_value = "auto",
        value_name = "auto|kitty|iterm|sixel|halfblocks|none"
    )]
    pub preview_protocol: String,
    /// Output folder (default: $PALLAIDIUM_HOME/outputs).
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Flags that describe one job; in the TUI they pre-fill the form.
#[derive(Debug, Args, Clone, Default)]
pub struct JobArgs {
    /// Registry id (see `pallaidium models`) or a local diffusers folder.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub prompt: Option<String>,
    #[arg(long)]
    pub negative: Option<String>,
    #[arg(long)]
    pub steps: Option<u32>,
    #[arg(long)]
    pub guidance: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
    /// Images per job; seeds seed, seed+1, ...
    #[arg(long)]
    pub batch: Option<u32>,
    /// ddim|euler|euler-a|dpm++2m|dpm++2m-karras|unipc
    #[arg(long)]
    pub scheduler: Option<String>,
    /// img2img source image.
    #[arg(long, value_name = "PATH")]
    pub init_image: Option<PathBuf>,
    /// How much of the init image to repaint, 0..1.
    #[arg(long)]
    pub strength: Option<f64>,
    /// Inpainting mask (white = repaint).
    #[arg(long, value_name = "PATH")]
    pub mask: Option<PathBuf>,
    /// Initial latents (.npy or .safetensors, 1x4xH/8xW/8) for exact reproduction.
    #[arg(long, value_name = "PATH")]
    pub init_latents: Option<PathBuf>,
    /// Show the finished image inline in the terminal (headless).
    #[arg(long)]
    pub preview: bool,
    /// Print the memory plan and exit without running.
    #[arg(long)]
    pub plan: bool,
    /// JSON lines on stdout (the default when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
    /// Attention slicing: auto, off, or a query chunk size in tokens.
    #[arg(long, value_name = "auto|off|N")]
    pub attention_slicing: Option<String>,
    /// VAE tiling for large images.
    #[arg(long, value_enum)]
    pub vae_tiling: Option<Toggle>,
    /// resident keeps every component loaded; staged loads text encoders, UNet and VAE one at a time.
    #[arg(long, value_enum)]
    pub residency: Option<ResidencyArg>,
    /// What to make; by default it follows the model (an image model: txt2img, img2img with
    /// --init-image, inpaint with --mask) and the inputs (--audio: stt, --caption: caption).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Text to speech: how the voice sounds ("a calm female voice, close to the microphone").
    #[arg(long, value_name = "TEXT")]
    pub voice: Option<String>,
    /// Seconds of audio to make (music; the most speech may run).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Speech to text: the audio file to transcribe (wav, flac, mp3, ogg).
    #[arg(long, value_name = "PATH")]
    pub audio: Option<PathBuf>,
    /// Speech to text: the spoken language (Whisper code, e.g. en, de); detected when absent.
    #[arg(long, value_name = "CODE")]
    pub language: Option<String>,
    /// Speech to text: translate into English instead of transcribing.
    #[arg(long)]
    pub translate: bool,
    /// Image to text: caption this image (BLIP); the caption is written as text.
    #[arg(long, value_name = "PATH")]
    pub caption: Option<PathBuf>,
    /// Rewrite the prompt into a detailed image prompt with the enhancer model before generating.
    #[arg(long)]
    pub enhance: bool,
    /// The prompt-enhancer model (registry id or folder) for --enhance and --kind enhance.
    #[arg(long, value_name = "ID|DIR")]
    pub enhancer: Option<String>,
    /// Most tokens a text model may generate (captions, enhanced prompts, transcripts).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
}

/// What a job makes (`--kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindArg {
    Txt2img,
    Img2img,
    Inpaint,
    /// Text to speech (Parler-TTS).
    #[value(alias = "speech")]
    Tts,
    /// Text to music (MusicGen).
    Music,
    /// Speech to text (Whisper).
    #[value(alias = "transcribe")]
    Stt,
    /// Image to text (BLIP).
    Caption,
    /// Prompt enhancement (a small instruct LLM, GGUF).
    Enhance,
}

/// Flags that make many jobs at once.
#[derive(Debug, Args, Clone, Default)]
pub struct BatchArgs {
    /// TOML [[job]] tables or JSON lines, any job flag as a key.
    #[arg(long, value_name = "FILE")]
    pub jobs: Option<PathBuf>,
    /// One prompt a line; the other job flags are shared.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Re-run with the parameters stored in an output (a PNG, or a WAV/SRT/TXT with its sidecar).
    #[arg(long, value_name = "OUTPUT")]
    pub from_image: Option<PathBuf>,
    /// Finish queued and interrupted jobs.
    #[arg(long)]
    pub resume: bool,
    /// List the job history.
    #[arg(long)]
    pub history: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DtypeArg {
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResidencyArg {
    Auto,
    Resident,
    Staged,
}
