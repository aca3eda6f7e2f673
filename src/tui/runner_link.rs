//! Starting the job runner for the TUI: the same device, model lookup and cache rules as
//! `--headless`, so a job queued here runs exactly as it would there.

use super::planning::FormPlanner;
use super::sampler::DeviceProbe;
use crate::cli::Cli;
use std::sync::Arc;

use crate::jobs::RunnerConfig;
use crate::jobs::run::setup::FetchDisplay;
use crate::models::Registry;
use crate::platform::paths::Paths;
use crate::vocab::Backend;

/// Emit a latent preview this often (steps) so the preview pane moves while a job runs.
pub const PREVIEW_EVERY: u32 = 2;

/// Everything the TUI takes from the runner's setup.
pub struct RunnerLink {
    pub config: RunnerConfig,
    /// Device memory for the gauges.
    pub probe: DeviceProbe,
    /// The backend jobs run on (the compatibility checks' backend).
    pub backend: Backend,
    /// e.g. "cpu:0", "cuda:0": shown read-only in the parameters (fixed for the session).
    pub device: String,
    /// Plans the form's job like the runner plans queued ones.
    pub planner: FormPlanner,
    /// Cancels an on-demand download in progress (quitting must not wait for one).
    pub downloads: crate::engines::CancelToken,
}

/// The runner's configuration, the device it chose, and a planner and memory probe for it.
pub fn runner_link(
    cli: &Cli,
    paths: &Paths,
    switches: &crate::platform::switches::Switches,
    registry: &Registry,
) -> crate::Result<RunnerLink> {
    // The TUI owns the screen: downloads report to the log, not a stderr bar.
    let setup = crate::jobs::run::setup::runner_setup(
        &cli.global.run_settings(),
        paths,
        switches,
        PREVIEW_EVERY,
        FetchDisplay::LogOnly,
    )?;
    let budget_cap =
        crate::device::memory::parse_memory_budget(cli.global.memory_budget.as_deref())?;
    let planner = FormPlanner::new(
        &setup,
        budget_cap,
        Arc::new(registry.clone()),
        paths.hf_cache.clone(),
    );
    let backend = setup.selected.kind;
    let device = format!("{}:{}", setup.selected.kind, setup.selected.ordinal);
    let probe = super::sampler::device_probe(setup.selected, setup.platform);
    let downloads = setup.downloads;
    Ok(RunnerLink {
        config: setup.config,
        probe,
        backend,
        device,
        planner,
        downloads,
    })
}
