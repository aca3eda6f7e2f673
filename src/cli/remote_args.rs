//! The flags that point a headless run at a `pallaidium serve` elsewhere (DESIGN.md, "serving:").

use std::path::PathBuf;

use clap::Args;

const REMOTE: &str = "Remote";

#[derive(Debug, Args, Clone, Default)]
pub struct RemoteArgs {
    /// Run the jobs on a `pallaidium serve` at this URL (e.g. http://gpu-box:7860) instead of
    /// here: --headless submits them, streams their events (reconnecting after a dropped
    /// connection) and downloads the outputs into --out; the TUI drives that server's queue
    /// (its gauges, log and outputs) [default: none, run here].
    #[arg(long, value_name = "URL", help_heading = REMOTE)]
    pub host: Option<String>,
    /// With --host: a file holding the server's bearer token [default: none].
    #[arg(long = "token-file", value_name = "PATH", requires = "host", help_heading = REMOTE)]
    pub token_file: Option<PathBuf>,
}
