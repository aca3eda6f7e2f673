//! Starting the job runner for the TUI: the same device, model lookup and cache rules as
//! `--headless`, so a job queued here runs exactly as it would there.

use super::sampler::{DeviceGauge, DeviceProbe};
use crate::cli::Cli;
use crate::device::DeviceMemory;
use crate::jobs::RunnerConfig;
use crate::platform::paths::Paths;

/// Emit a latent preview this often (steps) so the preview pane moves while a job runs.
const PREVIEW_EVERY: u32 = 2;

/// The runner's configuration and a probe of its device's memory for the gauges.
pub fn runner_config(cli: &Cli, paths: &Paths) -> crate::Result<(RunnerConfig, DeviceProbe)> {
    let setup = crate::jobs::setup::runner_setup(cli, paths, PREVIEW_EVERY)?;
    let (selected, platform) = (setup.selected, setup.platform);
    let probe: DeviceProbe = Box::new(move || {
        let name = selected.name.clone();
        match crate::device::memory::query(&selected, &platform) {
            DeviceMemory::Discrete { total, free } => {
                Some(DeviceGauge::Discrete { name, total, free })
            }
            DeviceMemory::Unified {
                total,
                budget,
                used,
            } => Some(DeviceGauge::Unified {
                name,
                total,
                budget,
                used,
            }),
            DeviceMemory::System { .. } => None,
        }
    });
    Ok((setup.config, probe))
}
