//! `pallaidium models [--json]`: every registry entry with its kind, family, whether its files are in
//! the Hugging Face cache, and the compatibility verdict for the chosen device and dtype.

use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::device::{self, DeviceRequest};
use crate::models::compat::{self, CompatContext, CompatFinding, Severity, Verdict};
use crate::models::entry::{ModelEntry, Os};
use crate::models::{Registry, hf_cache};
use crate::platform::PlatformInfo;
use crate::platform::paths::Paths;

#[derive(Debug, Serialize)]
struct ModelRow<'a> {
    id: &'a str,
    name: &'a str,
    kind: &'a str,
    family: &'a str,
    repo: &'a str,
    revision: &'a str,
    /// The files the chosen dtype needs are all in the cache.
    cached: bool,
    cached_variants: CachedVariants,
    /// Quantized variants (`fetch --quant`), and the one a job would use from the cache.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quants: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_quant: Option<String>,
    verdict: Verdict,
    findings: Vec<CompatFinding>,
}

#[derive(Debug, Serialize)]
struct CachedVariants {
    full: bool,
    fp16: bool,
}

/// The device, dtype and limits every entry is checked against.
struct Target {
    ctx: CompatContext,
    device_name: String,
    /// A dtype the device refused: reported on every entry rather than aborting the listing.
    dtype_problem: Option<String>,
}

pub fn run(
    global: &GlobalArgs,
    switches: &crate::platform::switches::Switches,
    json: bool,
) -> anyhow::Result<i32> {
    let listing = Listing::load(global, switches)?;
    let (rows, target, paths) = (listing.rows(), &listing.target, &listing.paths);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        // Ids, names and notes come from the models file: no control characters reach the terminal.
        let table = table(&rows, target, paths);
        print!("{}", crate::terminal_text::escape_controls(&table));
    }
    Ok(0)
}

/// The registry and what its entries are checked against.
struct Listing {
    registry: Registry,
    paths: Paths,
    target: Target,
}

impl Listing {
    fn load(
        global: &GlobalArgs,
        switches: &crate::platform::switches::Switches,
    ) -> crate::Result<Self> {
        let registry = Registry::load(global.models_file.as_deref())?;
        let paths = Paths::resolve(global.out.as_deref(), switches)?;
        let target = target(global, switches, &paths)?;
        Ok(Self {
            registry,
            paths,
            target,
        })
    }

    fn rows(&self) -> Vec<ModelRow<'_>> {
        self.registry
            .entries()
            .iter()
            .map(|e| row(e, &self.target, &self.paths))
            .collect()
    }
}

/// The rows `models --json` prints, as one JSON list (the HTTP API's `/api/v1/models`).
pub fn listing(
    global: &GlobalArgs,
    switches: &crate::platform::switches::Switches,
) -> crate::Result<serde_json::Value> {
    serde_json::to_value(Listing::load(global, switches)?.rows())
        .map_err(|e| crate::Error::job_failed(format!("cannot list the models: {e}")))
}

fn target(
    global: &GlobalArgs,
    switches: &crate::platform::switches::Switches,
    paths: &Paths,
) -> crate::Result<Target> {
    let platform = PlatformInfo::detect();
    let selected = device::select(&DeviceRequest::parse(&global.device)?, switches)?;
    let backend = selected.kind;
    let dtype = global.dtype.on(backend);
    // A refused dtype keeps the listing going: the refusal becomes a finding on every entry.
    let dtype_problem = device::resolve_dtype(global.dtype, &selected, &platform)
        .err()
        .map(|e| e.to_string());
    let cap = device::memory::parse_memory_budget(global.memory_budget.as_deref())?;
    let budget = device::memory::query(&selected, &platform).capped_budget(cap);
    let mut ctx = CompatContext::new(backend, dtype);
    ctx.os = match platform.os.as_str() {
        "macos" => Os::Macos,
        "linux" => Os::Linux,
        "windows" => Os::Windows,
        _ => Os::Other,
    };
    ctx.chip = platform.chip.clone();
    ctx.macos_version = platform.macos_version.map(|v| v.to_string());
    ctx.memory_budget_bytes = Some(budget);
    ctx.hf_token_present = hf_cache::token_present(Some(&paths.hf_token_file));
    Ok(Target {
        ctx,
        device_name: selected.name,
        dtype_problem,
    })
}

fn row<'e>(entry: &'e ModelEntry, target: &Target, paths: &Paths) -> ModelRow<'e> {
    let mut findings = compat::check(&target.ctx, Some(entry));
    if let Some(problem) = &target.dtype_problem {
        findings.insert(
            0,
            CompatFinding {
                severity: Severity::Error,
                message: problem.clone(),
                fix: "pick another --dtype (or leave it at auto)".to_owned(),
            },
        );
    }
    let full = hf_cache::is_cached(&paths.hf_cache, entry, false);
    let fp16 = hf_cache::is_cached(&paths.hf_cache, entry, true);
    ModelRow {
        id: &entry.id,
        name: &entry.name,
        kind: entry.kind.as_str(),
        family: entry.family.as_str(),
        repo: &entry.repo,
        revision: &entry.revision,
        cached: if target.ctx.dtype.wants_fp16_weights() {
            fp16
        } else {
            full
        },
        cached_variants: CachedVariants { full, fp16 },
        quants: crate::models::quant::names(entry),
        cached_quant: if full || fp16 {
            None
        } else {
            crate::models::quant::first_cached(&paths.hf_cache, entry).map(|(name, _)| name)
        },
        verdict: compat::verdict(&findings),
        findings,
    }
}

fn table(rows: &[ModelRow<'_>], target: &Target, paths: &Paths) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let ctx = &target.ctx;
    let _ = writeln!(
        s,
        "Checked for {} ({}), dtype {}, memory budget {}; cache {}",
        target.device_name,
        ctx.backend.as_str(),
        ctx.dtype.as_str(),
        ctx.memory_budget_bytes
            .map_or_else(|| "unknown".to_owned(), device::memory::format_bytes),
        paths.hf_cache.display()
    );
    let _ = writeln!(s);
    let id_w = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let fam_w = rows
        .iter()
        .map(|r| r.family.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        s,
        "{:<id_w$}  {:<8}  {:<fam_w$}  {:<6}  {:<7}  NOTE",
        "ID", "KIND", "FAMILY", "CACHED", "VERDICT"
    );
    for r in rows {
        let note = r
            .findings
            .first()
            .map_or_else(String::new, |f| format!("{} ({})", f.message, f.fix));
        let _ = writeln!(
            s,
            "{:<id_w$}  {:<8}  {:<fam_w$}  {:<6}  {:<7}  {note}",
            r.id,
            r.kind,
            r.family,
            match (&r.cached_quant, r.cached) {
                (_, true) => "yes",
                (Some(q), false) => q.as_str(),
                (None, false) => "no",
            },
            r.verdict.as_str(),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "`pallaidium fetch ID` downloads a model; `--model ID` (or a diffusers folder) picks one for a job."
    );
    s
}
