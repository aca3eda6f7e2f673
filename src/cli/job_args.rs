//! The flags of one job and of batches, grouped under the help headings `--help` shows them in.

use std::path::PathBuf;

use clap::Args;

use crate::jobs::spec::JobOverrides;

const MEMORY: &str = "Memory";
const OUTPUT: &str = "Output";
const BATCH: &str = "Batch";

/// Flags that describe one job (declared once, in `jobs::spec::JobOverrides`); in the TUI they
/// pre-fill the form.
#[derive(Debug, Args, Clone, Default)]
pub struct JobArgs {
    #[command(flatten)]
    pub job: JobOverrides,
    /// Print the memory plan and exit without running [default: off].
    #[arg(long, help_heading = MEMORY)]
    pub plan: bool,
    /// Show the finished image inline in the terminal (headless); with `serve`, make latent
    /// previews for clients [default: off].
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
