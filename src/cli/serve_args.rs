//! The flags of `pallaidium serve` (DESIGN.md, "serving:"): where to listen, the bearer token,
//! the body limit, and the device, registry and output flags the runner takes.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{DeviceScope, GlobalArgs, OfflineFlag, OutFlag};

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free one); an address other than loopback
    /// needs --token-file.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7860")]
    pub listen: SocketAddr,
    /// A file holding the bearer token every request must send (`Authorization: Bearer
    /// TOKEN`), compared in constant time and never logged [default: none; loopback only].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Largest request body, e.g. 32MiB; a larger one is refused with 413 [default: 32MiB].
    #[arg(long, value_name = "SIZE", default_value = "32MiB")]
    pub max_body: String,
    /// Keep the jobs in a shared PostgreSQL queue (postgres://USER:PASSWORD@HOST:PORT/DB)
    /// that `pallaidium worker`s run, instead of running them here on the SQLite queue
    /// [default: none].
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    #[command(flatten)]
    pub scope: DeviceScope,
    #[command(flatten)]
    pub out: OutFlag,
    #[command(flatten)]
    pub offline: OfflineFlag,
}

impl ServeArgs {
    /// Lays the serve command's own device, registry, output and offline flags over `g`.
    pub fn apply(&self, g: &mut GlobalArgs) {
        self.scope.apply(g);
        self.out.apply(g);
        self.offline.apply(g);
    }
}
