//! `pallaidium doctor [--json]`: what this machine offers (platform, backends, devices, memory,
//! folders) and what stands in the way of generating, each problem with its fix.
//! Exit 1 when a problem blocks generation, else 0; a bad `--device` is bad input (exit 2).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::device::memory::parse_memory_budget;
use crate::device::{self, DeviceRequest, FoundDevice};
use crate::platform::memory::SystemMemory;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::platform::{PlatformInfo, disk, keep_awake};

mod render;
mod rules;

pub use render::render;
pub use rules::find_problems;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    /// Blocks generation: doctor exits 1.
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct DeviceRow {
    pub kind: String,
    pub ordinal: usize,
    pub name: String,
    pub memory_total: u64,
    /// What a job may use now (free VRAM, Metal's working-set budget minus use, available RAM).
    pub memory_free: u64,
    pub memory: device::DeviceMemory,
}

#[derive(Debug, Serialize)]
pub struct SelectedRow {
    pub kind: String,
    pub ordinal: usize,
    pub name: String,
    pub reason: String,
    pub native_dtypes: Vec<&'static str>,
    /// What jobs may use: the device's budget, capped by --memory-budget.
    pub memory_budget: u64,
    pub memory_budget_cap: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PathRow {
    pub path: PathBuf,
    pub exists: bool,
    pub writable: bool,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PathsReport {
    pub home: PathRow,
    pub outputs: PathRow,
    pub logs: PathRow,
    pub queue_db: PathRow,
    pub hf_cache: PathRow,
}

#[derive(Debug, Serialize)]
pub struct RegistryStatus {
    /// `ok` or `error`.
    pub status: &'static str,
    pub entries: Option<usize>,
    pub models_file: Option<PathBuf>,
    pub error: Option<String>,
}

/// The queue database: `ok`, `absent` (created by the first run) or `unusable` (see problems).
#[derive(Debug, Serialize)]
pub struct QueueDbStatus {
    pub status: &'static str,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub os: String,
    pub arch: String,
    pub cpu: String,
    pub cpu_cores: usize,
    pub chip: Option<String>,
    pub apple_silicon: bool,
    pub rosetta: bool,
    pub macos_version: Option<String>,
    pub ssh: bool,
    pub tmux: bool,
    pub keep_awake_tool: bool,
    pub backends: Vec<&'static str>,
    pub devices: Vec<DeviceRow>,
    pub selected_device: SelectedRow,
    /// The resolved compute dtype, or null when `--dtype` is refused on this device (see problems).
    pub dtype: Option<String>,
    pub memory: SystemMemory,
    pub paths: Option<PathsReport>,
    pub hf_token_set: bool,
    pub registry: RegistryStatus,
    pub queue_db: QueueDbStatus,
    pub problems: Vec<Problem>,
}

pub(crate) fn problem(
    severity: Severity,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Problem {
    Problem {
        severity,
        message: message.into(),
        fix: fix.into(),
    }
}

fn path_row(path: &Path) -> PathRow {
    PathRow {
        path: path.to_path_buf(),
        exists: path.exists(),
        writable: disk::writable(path),
        free_bytes: disk::free_bytes(path),
    }
}

fn device_row(d: FoundDevice) -> DeviceRow {
    DeviceRow {
        kind: d.kind.to_string(),
        ordinal: d.ordinal,
        name: d.name,
        memory_total: d.memory.total(),
        memory_free: d.memory.budget_bytes(),
        memory: d.memory,
    }
}

fn registry_status(models_file: Option<&Path>) -> RegistryStatus {
    match crate::models::Registry::load(models_file) {
        Ok(r) => RegistryStatus {
            status: "ok",
            entries: Some(r.entries().len()),
            models_file: models_file.map(Path::to_path_buf),
            error: None,
        },
        Err(e) => RegistryStatus {
            status: "error",
            entries: None,
            models_file: models_file.map(Path::to_path_buf),
            error: Some(e.to_string()),
        },
    }
}

/// Opens an existing queue database read-only and runs SQLite's quick_check; a damaged one is a
/// problem whose fix names the file to move aside.
fn queue_db_status(path: &Path, problems: &mut Vec<Problem>) -> QueueDbStatus {
    match crate::jobs::store::health::check(path) {
        Ok(()) if path.exists() => QueueDbStatus {
            status: "ok",
            error: None,
        },
        Ok(()) => QueueDbStatus {
            status: "absent",
            error: None,
        },
        Err(u) => {
            problems.push(problem(Severity::Error, u.problem.clone(), u.fix.clone()));
            QueueDbStatus {
                status: "unusable",
                error: Some(u.to_string()),
            }
        }
    }
}

/// Whether an NVIDIA driver is loaded (Linux), to suggest `--features cuda` when it is missing.
fn nvidia_driver_present() -> bool {
    Path::new("/proc/driver/nvidia/version").exists() || Path::new("/dev/nvidia0").exists()
}

/// Gathers everything. Errors only for bad flags (`--device`, `--memory-budget`): exit 2.
pub fn collect(global: &GlobalArgs, switches: &Switches) -> crate::Result<Report> {
    let platform = PlatformInfo::detect();
    let request = DeviceRequest::parse(&global.device)?;
    let cap = parse_memory_budget(global.memory_budget.as_deref())?;
    let selected = device::select(&request, switches)?;
    let mut problems = Vec::new();

    let dtype = match device::resolve_dtype(global.dtype, &selected, &platform) {
        Ok(d) => Some(d.as_str().to_string()),
        Err(e) => {
            problems.push(problem(
                Severity::Error,
                e.to_string(),
                "pick another --dtype (or leave it at auto)",
            ));
            None
        }
    };
    let selected_memory = device::memory::query(&selected, &platform);
    let selected_row = SelectedRow {
        kind: selected.kind.to_string(),
        ordinal: selected.ordinal,
        name: selected.name.clone(),
        reason: selected.reason.clone(),
        native_dtypes: device::dtype_support(selected.kind, &platform).native(),
        memory_budget: selected_memory.capped_budget(cap),
        memory_budget_cap: cap,
    };
    let devices: Vec<DeviceRow> = device::list(&platform, switches)
        .into_iter()
        .map(device_row)
        .collect();

    let resolved = Paths::resolve(global.out.as_deref(), switches);
    let queue_db = match &resolved {
        Ok(p) => queue_db_status(&p.queue_db, &mut problems),
        Err(_) => QueueDbStatus {
            status: "unusable",
            error: None,
        },
    };
    let (paths, hf_token_set) = match resolved {
        Ok(p) => (
            Some(PathsReport {
                home: path_row(&p.home),
                outputs: path_row(&p.outputs),
                logs: path_row(&p.logs),
                queue_db: path_row(&p.queue_db),
                hf_cache: path_row(&p.hf_cache),
            }),
            p.hf_token_set(),
        ),
        Err(e) => {
            problems.push(problem(
                Severity::Error,
                e.to_string(),
                "set PALLAIDIUM_HOME",
            ));
            (None, false)
        }
    };

    let mut report = Report {
        version: env!("CARGO_PKG_VERSION"),
        os: platform.os.clone(),
        arch: platform.arch.clone(),
        cpu: platform.cpu.clone(),
        cpu_cores: platform.cpu_cores,
        chip: platform.chip.clone(),
        apple_silicon: platform.apple_silicon,
        rosetta: platform.rosetta,
        macos_version: platform.macos_version.map(|v| v.to_string()),
        ssh: platform.ssh,
        tmux: platform.tmux,
        keep_awake_tool: keep_awake::tool_available(),
        backends: device::compiled_backends(),
        devices,
        selected_device: selected_row,
        dtype,
        memory: SystemMemory::query(),
        paths,
        hf_token_set,
        registry: registry_status(global.models_file.as_deref()),
        queue_db,
        problems,
    };
    let found = find_problems(&report, nvidia_driver_present());
    report.problems.extend(found);
    report
        .problems
        .sort_by_key(|p| std::cmp::Reverse(p.severity));
    Ok(report)
}

/// `pallaidium doctor`: prints the report; returns 1 when something blocks generation, else 0.
pub fn run(global: &GlobalArgs, switches: &Switches, json: bool) -> anyhow::Result<i32> {
    let report = collect(global, switches)?;
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        // Paths and registry errors quote user text: no control characters reach the terminal.
        crate::terminal_text::escape_controls(&render(&report)).into_owned()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`doctor | head`) is the reader's choice, not our failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(exit_code(&report))
}

/// 2 when the home or the queue database cannot be used (every run would fail the same way
/// until the named fix is made), 1 when another problem blocks generation, else 0.
pub fn exit_code(report: &Report) -> i32 {
    let storage = report.queue_db.status == "unusable"
        || report.paths.as_ref().is_none_or(|p| !p.home.writable);
    let blocked = report
        .problems
        .iter()
        .any(|p| p.severity == Severity::Error);
    if storage { 2 } else { i32::from(blocked) }
}

#[cfg(test)]
mod tests;
