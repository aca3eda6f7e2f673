//! Starting the job runner for the TUI: the same device, model lookup and cache rules as
//! `--headless`, so a job queued here runs exactly as it would there.

use std::path::Path;
use std::sync::Arc;

use super::sampler::{DeviceGauge, DeviceProbe};
use crate::cli::Cli;
use crate::device::DeviceMemory;
use crate::jobs::config::{DtypeChoice, ModelLookup};
use crate::jobs::{ModelInfo, RunnerConfig, WorkerDevice};
use crate::platform::paths::Paths;

/// Emit a latent preview this often (steps) so the preview pane moves while a job runs.
const PREVIEW_EVERY: u32 = 2;

/// The runner's configuration and a probe of its device's memory for the gauges.
pub fn runner_config(cli: &Cli, paths: &Paths) -> crate::Result<(RunnerConfig, DeviceProbe)> {
    let (device, selected) = worker_device(cli)?;
    let platform = crate::platform::PlatformInfo::detect();
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
    let config = RunnerConfig {
        out_dir: paths.outputs.clone(),
        device,
        models: model_lookup(cli, &paths.hf_cache)?,
        cache_capacity_bytes: cache_capacity(cli)?,
        preview_every: PREVIEW_EVERY,
    };
    Ok((config, probe))
}

type Selected = Arc<crate::device::SelectedDevice>;

fn worker_device(cli: &Cli) -> crate::Result<(WorkerDevice, Selected)> {
    let request = crate::device::DeviceRequest::parse(&cli.global.device)?;
    let selected = Arc::new(crate::device::select(&request)?);
    let platform = Arc::new(crate::platform::PlatformInfo::detect());
    let run_dtype = cli.global.dtype;
    let chosen = Arc::clone(&selected);
    let dtype: DtypeChoice = Arc::new(move |job_dtype| {
        crate::device::resolve_dtype(job_dtype.unwrap_or(run_dtype), &chosen, &platform)
    });
    let worker = WorkerDevice {
        device: selected.device.clone(),
        name: selected.name.clone(),
        dtype,
    };
    Ok((worker, selected))
}

fn model_lookup(cli: &Cli, hf_cache: &Path) -> crate::Result<ModelLookup> {
    let registry = Arc::new(crate::models::Registry::load(
        cli.global.models_file.as_deref(),
    )?);
    let hf_cache = hf_cache.to_path_buf();
    Ok(Arc::new(move |model: &str| {
        let resolved = crate::models::resolve(&registry, model, &hf_cache)?;
        Ok(ModelInfo {
            id: resolved.id,
            dir: resolved.dir,
            defaults: resolved.defaults,
        })
    }))
}

/// Engines stay loaded up to --memory-budget, or three quarters of the usable memory.
pub fn cache_capacity(cli: &Cli) -> crate::Result<u64> {
    if let Some(text) = &cli.global.memory_budget {
        return crate::device::parse_size(text);
    }
    let memory = crate::platform::memory::SystemMemory::query();
    Ok(memory.usable_total() / 4 * 3)
}
