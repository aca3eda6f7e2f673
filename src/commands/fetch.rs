//! `pallaidium fetch MODEL [--dtype D]`: download a registry model into the Hugging Face cache.

use std::io::IsTerminal;

use crate::cli::GlobalArgs;
use crate::engines::CancelToken;
use crate::jobs::run::config::RunSettings;
use crate::models::fetch::net::NetTimeouts;
use crate::models::fetch::{self, FetchOptions, StderrBar};
use crate::models::{ModelEntry, Registry};
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::vocab::DtypeChoice;
use crate::{Error, Result};

/// Whether this dtype loads the fp16 weight variants; `auto` asks the device it would run on.
fn wants_fp16(settings: &RunSettings, switches: &Switches, dtype: DtypeChoice) -> Result<bool> {
    let backend = match dtype.fixed() {
        Some(fixed) => return Ok(fixed.wants_fp16_weights()),
        None => {
            let request = crate::device::DeviceRequest::parse(&settings.device)?;
            crate::device::select(&request, switches)?.kind
        }
    };
    Ok(dtype.on(backend).wants_fp16_weights())
}

fn find_entry<'r>(registry: &'r Registry, model: &str) -> Result<&'r ModelEntry> {
    registry
        .get(model)
        .or_else(|| registry.entries().iter().find(|e| e.repo == model))
        .ok_or_else(|| {
            Error::bad_input(format!(
                "unknown model `{model}`: `pallaidium fetch` takes a registry id or its repo \
                 (`pallaidium models` lists them); add other repos to a models file (--models FILE)"
            ))
        })
}

/// The fetch itself, for the TUI and the headless runner too (on-demand downloads); `cancel`
/// ends it at once (so do SIGINT and SIGTERM).
pub fn fetch_model(
    settings: &RunSettings,
    switches: &Switches,
    model: &str,
    dtype: DtypeChoice,
    progress: &mut dyn fetch::FetchProgress,
    cancel: &CancelToken,
) -> Result<fetch::FetchReport> {
    let registry = Registry::load(settings.models_file.as_deref())?;
    let entry = find_entry(&registry, model)?;
    let paths = Paths::resolve(settings.out.as_deref(), switches)?;
    let opts = FetchOptions {
        cache_dir: paths.hf_cache.clone(),
        token: fetch::read_token(&paths.hf_token_file),
        offline: fetch::offline_requested(settings.offline),
        endpoint: std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty()),
        timeouts: NetTimeouts::from_switches(switches),
        cancel: cancel.clone(),
    };
    // Offline needs no device: report what is missing for the asked variant (f16 if auto is unsure).
    let fp16 = if opts.offline && dtype == DtypeChoice::Auto {
        true
    } else {
        wants_fp16(settings, switches, dtype)?
    };
    fetch::fetch_entry(entry, fp16, &opts, progress)
}

/// Entry point for `pallaidium fetch`: 0 when every file is in the cache afterwards.
pub fn run(
    global: &GlobalArgs,
    switches: &Switches,
    model: &str,
    dtype: DtypeChoice,
) -> anyhow::Result<i32> {
    let mut bar = StderrBar::new(std::io::stderr().is_terminal());
    let report = fetch_model(
        &global.run_settings(),
        switches,
        model,
        dtype,
        &mut bar,
        &CancelToken::new(),
    )?;
    println!(
        "{} ({} @ {}): {} downloaded ({}), {} already cached; snapshot {}",
        model,
        report.repo,
        report.revision,
        report.downloaded.len(),
        crate::device::memory::format_bytes(report.downloaded_bytes),
        report.already_cached.len(),
        report.snapshot.display()
    );
    Ok(0)
}
