//! The command line: the one place where flag names live (see DESIGN.md, "The command line").
//! Flags are grouped under help headings; each subcommand takes only the flags it uses (given
//! before the subcommand, the top-level ones still apply: `pallaidium --offline fetch sd15`).

mod job_args;
mod remote_args;
mod scoped;
mod serve_args;
mod worker_args;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::vocab::DtypeChoice;
use crate::vocab::RunSettings;
pub use job_args::{BatchArgs, JobArgs};
pub use remote_args::RemoteArgs;
pub use serve_args::ServeArgs;
pub use worker_args::{QueueFlags, WorkerArgs};

pub use scoped::{
    BudgetFlag, DeviceFlag, DeviceScope, DtypeFlag, OfflineFlag, OutFlag, RegistryFlag,
};

const GLOBAL: &str = "Global";
const MEMORY: &str = "Memory";
const OUTPUT: &str = "Output";

#[derive(Debug, Parser)]
#[command(
    name = "pallaidium",
    version,
    about = "A terminal workbench for local generative AI",
    long_about = "Generate images, audio and text with local models on CUDA, Metal or the CPU.\n\
                  With no subcommand the TUI opens; --headless runs jobs from the command line.",
    // `--height -1` reaches the value parser and is told what the flag takes.
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run the job(s) without the TUI: JSON lines on stdout (when --json or not a terminal),
    /// progress on stderr [default: off, the TUI opens].
    #[arg(long, help_heading = GLOBAL)]
    pub headless: bool,

    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub job: JobArgs,

    #[command(flatten)]
    pub batch: BatchArgs,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Platform, devices, memory, backends, paths, problems and their fixes.
    Doctor {
        /// Print one JSON object instead of a report [default: off].
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: DeviceScope,
        #[command(flatten)]
        out: OutFlag,
    },
    /// The model registry with a compatibility verdict per model for the chosen device.
    Models {
        /// Print a JSON list instead of a table [default: off].
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: DeviceScope,
    },
    /// Download a model into the Hugging Face cache (timeouts: PALLAIDIUM_CONNECT_TIMEOUT,
    /// PALLAIDIUM_READ_TIMEOUT in seconds).
    Fetch {
        /// Registry id or Hugging Face repo id.
        model: String,
        /// Fetch the files this dtype needs (fp16 variants for f16/bf16; auto asks the device).
        #[arg(long, value_enum, default_value_t = DtypeChoice::Auto)]
        dtype: DtypeChoice,
        /// Fetch a quantized variant (GGUF files, e.g. q4_k_s for FLUX) instead of the full
        /// weights of the components it replaces; `pallaidium models` lists each model's
        /// [default: none].
        #[arg(long, value_name = "Q")]
        quant: Option<String>,
        #[command(flatten)]
        device: DeviceFlag,
        #[command(flatten)]
        registry: RegistryFlag,
        #[command(flatten)]
        offline: OfflineFlag,
    },
    /// Benchmarks on full-size configurations with random weights (the work is the same as with
    /// trained weights): JSON and a table.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// The parameters stored in an output file.
    Info {
        /// A PNG, or a WAV/SRT/TXT output with its JSON sidecar.
        file: PathBuf,
        /// Print the stored JobSpec as JSON [default: off].
        #[arg(long)]
        json: bool,
    },
    /// Serve the queue over HTTP: the native JSON API under /api/v1 (jobs, SSE events,
    /// outputs, models, doctor; OpenAPI at /api/v1/openapi.json) and OpenAI- and A1111-style
    /// subsets. Job flags given before `serve` are every request's defaults.
    Serve(ServeArgs),
    /// Run jobs from a shared PostgreSQL queue (no UI; logs with tracing): many workers on
    /// many machines take jobs one at a time; `serve --queue` with the same URL takes them in.
    Worker(WorkerArgs),
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
    /// One flow-model transformer step (flux-schnell, flux-dev, z-image-turbo, sd35-medium) from a diffusers
    /// transformer/ folder (--weights) or a GGUF (--gguf): median and min over --runs timed runs.
    Transformer(BenchArgs),
}

impl BenchCommand {
    pub fn args(&self) -> &BenchArgs {
        match self {
            Self::Unet(a) | Self::Image(a) | Self::Ops(a) | Self::Transformer(a) => a,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Registry id whose full-size architecture to build (sd15, sd21, sdxl), or a diffusers folder.
    #[arg(long, default_value = "sd15")]
    pub model: String,
    /// Image width in pixels.
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Images per step.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Denoising steps (bench image).
    #[arg(long, default_value_t = 20)]
    pub steps: u32,
    /// Attention slicing: auto, off, or a query chunk size in tokens [default: auto].
    #[arg(long, value_name = "auto|off|N")]
    pub attention_slicing: Option<String>,
    /// Print one JSON object instead of a table [default: off].
    #[arg(long)]
    pub json: bool,
    /// bench transformer: a GGUF (city96 FLUX, Z-Image) whose weights to use (kept quantized)
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub gguf: Option<PathBuf>,
    /// bench transformer: a diffusers transformer/ folder (config.json + safetensors) whose
    /// weights to use [default: none; one of --gguf or --weights is needed].
    #[arg(long, value_name = "DIR")]
    pub weights: Option<PathBuf>,
    /// bench transformer: text tokens [default: T5's 256 for flux-schnell, 512 for flux-dev;
    /// 128 Qwen3 features for z-image-turbo; 77 CLIP + 256 T5 for sd35-medium].
    #[arg(long, value_name = "N")]
    pub text_tokens: Option<u32>,
    #[command(flatten)]
    pub device: DeviceFlag,
    #[command(flatten)]
    pub dtype: DtypeFlag,
    #[command(flatten)]
    pub out: OutFlag,
}

/// Flags for the TUI and headless runs; subcommands take the ones they use (`scoped`), and only
/// --log-level applies everywhere.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// auto|cpu|cuda[:N]|metal[:N]; auto prefers CUDA, then Metal, then the CPU.
    #[arg(long, default_value = "auto", value_name = "DEVICE", help_heading = GLOBAL)]
    pub device: String,
    /// Compute dtype; auto picks per device (f16 on CUDA/Metal, f32 on the CPU).
    #[arg(long, value_enum, default_value_t = DtypeChoice::Auto, help_heading = GLOBAL)]
    pub dtype: DtypeChoice,
    /// An extra models file merged over the shipped registry [default: none].
    #[arg(long = "models", value_name = "FILE", help_heading = GLOBAL)]
    pub models_file: Option<PathBuf>,
    /// Never touch the network (also HF_HUB_OFFLINE=1) [default: off].
    #[arg(long, help_heading = GLOBAL)]
    pub offline: bool,
    /// Cap on the memory jobs may use, e.g. 6GiB, 512MiB [default: the device's budget].
    #[arg(long, value_name = "SIZE", help_heading = MEMORY)]
    pub memory_budget: Option<String>,
    /// error|warn|info|debug|trace, or an EnvFilter like pallaidium=debug,info (PALLAIDIUM_LOG
    /// overrides) [default: info in the log file, warn on stderr].
    #[arg(long, global = true, value_name = "LEVEL", value_parser = log_level, help_heading = GLOBAL)]
    pub log_level: Option<String>,
    /// TUI theme: dark, light, high-contrast, or a themes/NAME.toml [default: dark].
    #[arg(long, value_name = "NAME", help_heading = OUTPUT)]
    pub theme: Option<String>,
    /// Inline image protocol: auto (probe the terminal), kitty, iterm, sixel, halfblocks or none
    /// [default: PALLAIDIUM_PREVIEW_PROTOCOL, else auto]
    #[arg(
        long,
        value_name = "auto|kitty|iterm|sixel|halfblocks|none",
        help_heading = OUTPUT
    )]
    pub preview_protocol: Option<String>,
    /// Output folder [default: $PALLAIDIUM_HOME/outputs].
    #[arg(long, value_name = "DIR", help_heading = OUTPUT)]
    pub out: Option<PathBuf>,
}

impl GlobalArgs {
    /// What the run was asked for, as the runner takes it.
    pub fn run_settings(&self) -> RunSettings {
        RunSettings {
            device: self.device.clone(),
            dtype: self.dtype,
            models_file: self.models_file.clone(),
            offline: self.offline,
            memory_budget: self.memory_budget.clone(),
            out: self.out.clone(),
        }
    }
}

impl Cli {
    /// The global flags as the command sees them: a subcommand's own flags override the ones
    /// given before it.
    pub fn effective_global(&self) -> GlobalArgs {
        let mut g = self.global.clone();
        match &self.command {
            Some(Command::Doctor { scope, out, .. }) => {
                scope.apply(&mut g);
                out.apply(&mut g);
            }
            Some(Command::Models { scope, .. }) => scope.apply(&mut g),
            Some(Command::Fetch {
                device,
                registry,
                offline,
                ..
            }) => {
                device.apply(&mut g);
                registry.apply(&mut g);
                offline.apply(&mut g);
            }
            Some(Command::Bench { what }) => {
                let a = what.args();
                a.device.apply(&mut g);
                a.dtype.apply(&mut g);
                a.out.apply(&mut g);
            }
            Some(Command::Serve(args)) => args.apply(&mut g),
            Some(Command::Worker(args)) => args.apply(&mut g),
            Some(Command::Info { .. }) | None => {}
        }
        g
    }
}

/// `--log-level`: a level or an EnvFilter directive list that parses.
fn log_level(s: &str) -> Result<String, String> {
    crate::logging::check_filter(s).map(|()| s.to_owned())
}
