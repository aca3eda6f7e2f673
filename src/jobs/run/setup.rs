//! A runner configured from the command line: the device, the model lookup, the engine cache size
//! and the memory planner, the same for `--headless` and the TUI, so a job runs alike in both.

use std::path::Path;
use std::sync::Arc;

use crate::device::SelectedDevice;
use crate::jobs::run::config::{DtypeResolver, ModelLookup};
use crate::jobs::run::planning::JobPlanner;
use crate::jobs::{ModelInfo, RunnerConfig, WorkerDevice};
use crate::platform::PlatformInfo;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::vocab::RunSettings;

/// The runner's configuration plus the device it chose (the TUI's gauges probe it).
pub struct RunnerSetup {
    pub config: RunnerConfig,
    pub selected: Arc<SelectedDevice>,
    pub platform: Arc<PlatformInfo>,
    /// Cancels an on-demand download in progress (the TUI's quit).
    pub downloads: crate::engines::CancelToken,
}

/// How a model missing from the cache is downloaded on demand (never when offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDisplay {
    /// A progress bar on stderr (headless).
    StderrBar,
    /// Log lines only (the TUI owns the screen).
    LogOnly,
}

pub fn runner_setup(
    settings: &RunSettings,
    paths: &Paths,
    switches: &Switches,
    preview_every: u32,
    fetch: FetchDisplay,
) -> crate::Result<RunnerSetup> {
    let budget_cap = crate::device::memory::parse_memory_budget(settings.memory_budget.as_deref())?;
    let request = crate::device::DeviceRequest::parse(&settings.device)?;
    let selected = Arc::new(crate::device::select(&request, switches)?);
    let platform = Arc::new(PlatformInfo::detect());
    let memory = crate::device::memory::query(&selected, &platform);
    // Loaded engines stay up to --memory-budget, or three quarters of the device's memory.
    let cache_capacity_bytes = budget_cap.unwrap_or(memory.total() / 4 * 3);
    let run_dtype = settings.dtype;
    let (chosen, plat) = (Arc::clone(&selected), Arc::clone(&platform));
    let dtype: DtypeResolver = Arc::new(move |job_dtype| {
        crate::device::resolve_dtype(job_dtype.unwrap_or(run_dtype), &chosen, &plat)
    });
    let device = WorkerDevice {
        device: selected.device.clone(),
        name: format!("{}:{}", selected.kind, selected.ordinal),
        dtype,
    };
    let downloads = crate::engines::CancelToken::new();
    let config = RunnerConfig {
        out_dir: paths.outputs.clone(),
        device,
        models: model_lookup(settings, switches, &paths.hf_cache, fetch, &downloads)?,
        cache_capacity_bytes,
        preview_every,
        planner: Some(Arc::new(JobPlanner::new(
            Arc::clone(&selected),
            Arc::clone(&platform),
            budget_cap,
            switches.stock_kernels,
        ))),
        switches: switches.clone(),
    };
    Ok(RunnerSetup {
        config,
        selected,
        platform,
        downloads,
    })
}

fn model_lookup(
    settings: &RunSettings,
    switches: &Switches,
    hf_cache: &Path,
    fetch: FetchDisplay,
    downloads: &crate::engines::CancelToken,
) -> crate::Result<ModelLookup> {
    let registry = Arc::new(crate::models::Registry::load(
        settings.models_file.as_deref(),
    )?);
    let hf_cache = hf_cache.to_path_buf();
    let global = settings.clone();
    let switches = switches.clone();
    let offline = crate::models::fetch::offline_requested(global.offline);
    let downloads = downloads.clone();
    Ok(Arc::new(move |model: &str| {
        let resolved = match crate::models::resolve(&registry, model, &hf_cache) {
            Ok(resolved) => resolved,
            // A registry model not in the cache is downloaded first, unless offline.
            Err(missing) if !offline && registry.get(model).is_some() => {
                tracing::info!(model, "not in the Hugging Face cache: downloading it");
                let fetched = match fetch {
                    FetchDisplay::StderrBar => {
                        let mut bar = crate::models::fetch::StderrBar::new(
                            std::io::IsTerminal::is_terminal(&std::io::stderr()),
                        );
                        crate::models::fetch::fetch_model(
                            &global,
                            &switches,
                            model,
                            global.dtype,
                            None,
                            &mut bar,
                            &downloads,
                        )
                    }
                    FetchDisplay::LogOnly => crate::models::fetch::fetch_model(
                        &global,
                        &switches,
                        model,
                        global.dtype,
                        None,
                        &mut crate::models::fetch::progress::Silent,
                        &downloads,
                    ),
                };
                // A cancel stays a cancel (130) and a network failure a failure (1): only what
                // the user must change is bad input (2).
                match fetched {
                    Ok(_) => {}
                    Err(crate::Error::Cancelled) => return Err(crate::Error::Cancelled),
                    Err(err @ crate::Error::BadInput { .. }) => {
                        tracing::info!(model, %err, "download failed");
                        return Err(crate::Error::bad_input(format!(
                            "{missing}; downloading it failed: {err}"
                        )));
                    }
                    Err(err) => {
                        tracing::info!(model, %err, "download failed");
                        return Err(crate::Error::job_failed(format!(
                            "{missing}; downloading it failed: {err}"
                        )));
                    }
                }
                crate::models::resolve(&registry, model, &hf_cache)?
            }
            Err(err) => return Err(err),
        };
        // Configs the engine would divide or index by are checked before anything is queued.
        crate::jobs::spec::model_check::check_model_configs(&resolved.dir, resolved.family)?;
        Ok(ModelInfo {
            id: resolved.id,
            dir: resolved.dir,
            defaults: resolved.defaults,
            family: resolved.family,
            kind: resolved.kind,
            weights: resolved.weights,
        })
    }))
}
