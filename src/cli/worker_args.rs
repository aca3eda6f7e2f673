//! The flags of `pallaidium worker` and the shared-queue flags `serve` takes too (DESIGN.md,
//! "serving:"): the PostgreSQL queue, the lease a worker holds on its job, how many jobs it
//! runs and whether it stops when the queue is empty.

use std::time::Duration;

use clap::Args;

use super::{DeviceScope, GlobalArgs, OfflineFlag, OutFlag};

/// The PostgreSQL queue and the lease on a claimed job.
#[derive(Debug, Args, Clone)]
pub struct QueueFlags {
    /// Seconds a claimed job stays this worker's without a heartbeat (heartbeats come every
    /// third of it, at least every 2 s); a worker that dies gives its job back after this
    /// [default: 60].
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub lease_seconds: f64,
}

impl QueueFlags {
    /// The lease, or what is wrong with --lease-seconds.
    pub fn lease(&self) -> crate::Result<Duration> {
        if !(self.lease_seconds.is_finite() && (0.5..=86_400.0).contains(&self.lease_seconds)) {
            return Err(crate::Error::bad_input(format!(
                "--lease-seconds {}: give a number of seconds from 0.5 to 86400 (e.g. 60)",
                self.lease_seconds
            )));
        }
        Ok(Duration::from_secs_f64(self.lease_seconds))
    }
}

#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// The shared queue: postgres://USER:PASSWORD@HOST:PORT/DATABASE. Outputs go to --out,
    /// which every worker and the server should share (e.g. a network folder).
    #[arg(long, value_name = "URL")]
    pub queue: String,
    /// Run at most N jobs, then exit 0 [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<usize>,
    /// Exit 0 once no job is waiting or running anywhere on the queue (Slurm arrays,
    /// Kubernetes Jobs) [default: wait for new jobs].
    #[arg(long)]
    pub exit_when_empty: bool,
    #[command(flatten)]
    pub lease: QueueFlags,
    #[command(flatten)]
    pub scope: DeviceScope,
    #[command(flatten)]
    pub out: OutFlag,
    #[command(flatten)]
    pub offline: OfflineFlag,
}

impl WorkerArgs {
    /// Lays the worker command's own device, registry, output and offline flags over `g`.
    pub fn apply(&self, g: &mut GlobalArgs) {
        self.scope.apply(g);
        self.out.apply(g);
        self.offline.apply(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_must_be_a_sensible_number_of_seconds() {
        let flags = |s| QueueFlags { lease_seconds: s };
        assert_eq!(flags(2.5).lease().unwrap(), Duration::from_millis(2500));
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            let err = flags(bad).lease().unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("--lease-seconds"), "{err}");
        }
    }
}
