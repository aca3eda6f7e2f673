//! A registry model fetched by id or repo, for `pallaidium fetch` and for the runner's on-demand
//! downloads (headless and TUI): the registry, the cache folder, the token, the network
//! settings and the weight variant (fp16 or not) worked out from the run's settings.

use crate::engines::CancelToken;
use crate::models::fetch::net::NetTimeouts;
use crate::models::{ModelEntry, Registry};
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::vocab::{DtypeChoice, RunSettings};
use crate::{Error, Result};

use super::FetchOptions;

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
    quant: Option<&str>,
    progress: &mut dyn super::FetchProgress,
    cancel: &CancelToken,
) -> Result<super::FetchReport> {
    let registry = Registry::load(settings.models_file.as_deref())?;
    let entry = find_entry(&registry, model)?;
    let paths = Paths::resolve(settings.out.as_deref(), switches)?;
    let opts = FetchOptions {
        cache_dir: paths.hf_cache.clone(),
        token: super::read_token(&paths.hf_token_file),
        offline: super::offline_requested(settings.offline),
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
    let Some(quant) = quant else {
        return super::fetch_entry(entry, fp16, &opts, progress);
    };
    // A quantized variant: the model's repo without the weights it replaces, then each GGUF
    // from its own repo.
    let files = crate::models::quant::variant(entry, quant)?;
    let base = crate::models::quant::base_without(entry, &files);
    let mut report = super::fetch_entry(&base, fp16, &opts, progress)?;
    for q in files {
        let one = crate::models::quant::file_entry(entry, q);
        let part = super::fetch_entry(&one, false, &opts, progress)?;
        let named = |f: &String| format!("{}:{f}", q.repo);
        report.downloaded.extend(part.downloaded.iter().map(named));
        report
            .already_cached
            .extend(part.already_cached.iter().map(named));
        report.downloaded_bytes += part.downloaded_bytes;
    }
    Ok(report)
}
