//! Logging with `tracing`: a daily file under the log folder always, plus stderr (headless) or
//! the tui-logger widget (TUI). `PALLAIDIUM_LOG` (EnvFilter syntax) overrides `--log-level`.
//! Stages are wrapped in `stage(..)` guards that log their duration and memory at the end.

use std::path::{Path, PathBuf};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::device::DeviceMemory;
use crate::device::memory::format_bytes;
use crate::platform::PlatformInfo;
use crate::platform::memory::{SystemMemory, process_rss};
use crate::{Error, Result};

/// Where log lines go besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// Headless runs and subcommands: stderr and the file.
    Headless,
    /// The TUI owns the screen: the file and tui-logger's widget, never stderr.
    Tui,
    /// The file only.
    Quiet,
}

#[derive(Debug, Clone)]
pub struct LogOptions {
    /// `--log-level`: a level (`debug`) or an EnvFilter (`pallaidium=debug,hf_hub=warn`).
    pub level: Option<String>,
    /// PALLAIDIUM_LOG (`Switches::log`): overrides `level` when set.
    pub env_filter: Option<String>,
    pub log_dir: PathBuf,
    pub mode: LogMode,
    /// Also keep the newest lines here (`serve` hands one over for `GET /api/v1/logs`).
    pub ring: Option<std::sync::Arc<crate::log_ring::LogRing>>,
}

/// Keeps the file writer alive: drop it last, at the end of `main`, to flush the file.
#[must_use = "dropping the guard stops the file writer"]
#[derive(Debug)]
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
    log_dir: Option<PathBuf>,
}

impl LogGuard {
    /// The folder the daily log files go to; `None` when it could not be created (see the warning logged).
    pub fn log_dir(&self) -> Option<&Path> {
        self.log_dir.as_deref()
    }
}

/// Daily files are named `pallaidium.YYYY-MM-DD.log`; the oldest beyond this many are deleted.
const KEEP_LOG_FILES: usize = 30;
pub const LOG_FILE_PREFIX: &str = "pallaidium";

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A level, or comma-separated EnvFilter directives each ending in a level
/// (`pallaidium=debug,info`). EnvFilter alone would take any bare word (`garbage`) as a target
/// and log everything for it; that is refused here.
pub fn check_filter(text: &str) -> std::result::Result<(), String> {
    let hint = "use error, warn, info, debug or trace, or a filter like pallaidium=debug,info";
    let directives: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(format!("no log level given: {hint}"));
    }
    for d in directives {
        let level = d
            .rsplit_once('=')
            .map_or(d, |(_, l)| l)
            .to_ascii_lowercase();
        if !LEVELS.contains(&level.as_str()) {
            return Err(format!("{d:?} names no log level: {hint}"));
        }
        d.parse::<tracing_subscriber::filter::Directive>()
            .map_err(|e| format!("{d:?} is not a log filter ({e}): {hint}"))?;
    }
    Ok(())
}

/// The filter from PALLAIDIUM_LOG (when set and not empty), else `--log-level`, else `info`.
pub fn build_filter(env_value: Option<&str>, level: Option<&str>) -> Result<EnvFilter> {
    let (source, text) = match (env_value.filter(|v| !v.trim().is_empty()), level) {
        (Some(v), _) => ("PALLAIDIUM_LOG", v),
        (None, Some(l)) => ("--log-level", l),
        (None, None) => ("default", "info"),
    };
    check_filter(text).map_err(|why| Error::bad_input(format!("{source} {why}")))?;
    EnvFilter::try_new(text).map_err(|e| {
        Error::bad_input(format!(
            "{source} {text:?} is not a log filter ({e}): use error, warn, info, debug or trace, \
             or a filter like pallaidium=debug,info"
        ))
    })
}

/// Installs the global subscriber. Safe to call twice: the second call returns an error.
/// A log folder that cannot be created is not an error: the run goes on without the file.
pub fn init(opts: &LogOptions) -> Result<LogGuard> {
    let env_value = opts.env_filter.clone();
    let filter = build_filter(env_value.as_deref(), opts.level.as_deref())?;
    // A log folder we cannot write must not stop the run (doctor has to report exactly that):
    // fall back to the other layer and say why once logging is up.
    let (file, guard, file_error) = match file_writer(&opts.log_dir) {
        Ok((writer, guard)) => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(true)
                .with_file(true)
                .with_line_number(true)
                .with_thread_names(true);
            (Some(layer), Some(guard), None)
        }
        Err(err) => (None, None, Some(err)),
    };
    // stderr carries the progress bar (or sits beside JSON lines): only warnings and errors there
    // unless the user asked for a level; the file keeps everything the filter lets through.
    let explicit =
        env_value.as_deref().is_some_and(|v| !v.trim().is_empty()) || opts.level.is_some();
    let stderr_filter = if explicit {
        build_filter(env_value.as_deref(), opts.level.as_deref())?
    } else {
        EnvFilter::new("warn")
    };
    let stderr = (opts.mode == LogMode::Headless).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .compact()
            .with_filter(stderr_filter)
    });
    let tui = (opts.mode == LogMode::Tui).then_some(tui_logger::TuiTracingSubscriberLayer);
    let ring = opts.ring.as_ref().map(crate::log_ring::LogRing::layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(file)
        .with(stderr)
        .with(tui)
        .with(ring)
        .try_init()
        .map_err(|e| {
            Error::job_failed(format!("logging is already set up in this process ({e})"))
        })?;
    if opts.mode == LogMode::Tui {
        // The widget filters by its own level; the EnvFilter above already did the filtering.
        tui_logger::init_logger(tui_logger::LevelFilter::Trace)
            .map_err(|e| Error::job_failed(format!("the TUI log widget could not start: {e}")))?;
    }
    match &file_error {
        None => {
            tracing::debug!(dir = %opts.log_dir.display(), mode = ?opts.mode, "logging started")
        }
        Some(err) => {
            tracing::warn!(%err, "no log file this run; set PALLAIDIUM_HOME to a writable folder")
        }
    }
    Ok(LogGuard {
        _file: guard,
        log_dir: file_error.is_none().then(|| opts.log_dir.clone()),
    })
}

type FileWriter = (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
);

/// The daily rolling file under `dir`, written by a background thread.
fn file_writer(dir: &Path) -> Result<FileWriter> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .filename_suffix("log")
        .max_log_files(KEEP_LOG_FILES)
        .build(dir)
        .map_err(|e| Error::io(dir, std::io::Error::other(e)))?;
    Ok(tracing_appender::non_blocking(appender))
}

/// Logs the platform once at start, so every log file says what machine it came from.
pub fn log_system_info(platform: &PlatformInfo) {
    let mem = SystemMemory::query();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        os = %platform.os,
        arch = %platform.arch,
        cpu = %platform.cpu,
        cores = platform.cpu_cores,
        chip = platform.chip.as_deref().unwrap_or("-"),
        macos = %platform.macos_version.map_or_else(|| "-".to_string(), |v| v.to_string()),
        rosetta = platform.rosetta,
        ssh = platform.ssh,
        tmux = platform.tmux,
        ram = %format_bytes(mem.ram_total),
        ram_available = %format_bytes(mem.ram_available),
        swap_used = %format_bytes(mem.swap_used),
        backends = ?crate::device::compiled_backends(),
        "system"
    );
}

fn describe(mem: &DeviceMemory) -> String {
    match *mem {
        DeviceMemory::Discrete { total, free } => {
            format!("{} free of {}", format_bytes(free), format_bytes(total))
        }
        DeviceMemory::Unified {
            total,
            budget,
            used,
        } => format!(
            "{} used of a {} GPU budget ({} unified)",
            format_bytes(used),
            format_bytes(budget),
            format_bytes(total)
        ),
        DeviceMemory::System { total, available } => {
            format!(
                "{} available of {}",
                format_bytes(available),
                format_bytes(total)
            )
        }
    }
}

/// Logs process RSS and available RAM at a stage boundary.
pub fn log_memory(stage: &str) {
    log_memory_with(stage, None);
}

/// Like `log_memory`, plus the device's memory as just queried.
pub fn log_memory_with(stage: &str, device: Option<&DeviceMemory>) {
    let rss = process_rss().map_or_else(|| "unknown".to_string(), format_bytes);
    let ram = SystemMemory::query();
    match device {
        Some(mem) => {
            tracing::info!(stage, rss = %rss, ram_available = %format_bytes(ram.ram_available), device = %describe(mem), "memory")
        }
        None => {
            tracing::info!(stage, rss = %rss, ram_available = %format_bytes(ram.ram_available), "memory")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_sources() {
        assert_eq!(
            build_filter(None, None)
                .map(|f| f.to_string())
                .ok()
                .as_deref(),
            Some("info")
        );
        assert_eq!(
            build_filter(None, Some("debug"))
                .map(|f| f.to_string())
                .ok()
                .as_deref(),
            Some("debug")
        );
        // PALLAIDIUM_LOG wins over --log-level; an empty one is ignored.
        assert_eq!(
            build_filter(Some("pallaidium=trace"), Some("warn"))
                .map(|f| f.to_string())
                .ok()
                .as_deref(),
            Some("pallaidium=trace")
        );
        assert_eq!(
            build_filter(Some(" "), Some("warn"))
                .map(|f| f.to_string())
                .ok()
                .as_deref(),
            Some("warn")
        );
        let err = build_filter(None, Some("loud[")).err();
        assert_eq!(err.as_ref().map(Error::exit_code), Some(2));
        assert!(err.is_some_and(|e| e.to_string().contains("--log-level")));
    }

    #[test]
    fn bare_words_that_are_no_level_are_refused() {
        for good in [
            "warn",
            "TRACE",
            "pallaidium=debug,info",
            "pallaidium::jobs=trace",
            "off",
        ] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
        for bad in [
            "garbage",
            "",
            " , ",
            "pallaidium",
            "pallaidium=loud",
            "info,garbage",
        ] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
        let err = build_filter(Some("garbage"), None).err();
        assert_eq!(err.as_ref().map(Error::exit_code), Some(2));
        assert!(err.is_some_and(|e| e.to_string().contains("PALLAIDIUM_LOG")));
    }

    // The only test that installs the global subscriber (one per process).
    #[test]
    fn file_layer_writes_daily_file_and_second_init_is_an_error() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else {
            panic!("no temp dir");
        };
        let opts = LogOptions {
            level: Some("info".into()),
            env_filter: None,
            log_dir: dir.path().join("logs"),
            mode: LogMode::Quiet,
            ring: None,
        };
        let guard = init(&opts);
        assert!(guard.is_ok(), "{:?}", guard.err());
        tracing::info!(marker = "xyzzy-logging-test", "hello from the test");
        let second = init(&opts);
        assert!(second.is_err_and(|e| e.to_string().contains("already")));
        drop(guard);
        let files: Vec<PathBuf> = std::fs::read_dir(&opts.log_dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert_eq!(name, format!("pallaidium.{today}.log"));
        let text = std::fs::read_to_string(&files[0]).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains("xyzzy-logging-test"))
            .unwrap_or_default();
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("pallaidium::logging::tests"), "{line}");
        assert!(line.contains("src/logging.rs:"), "{line}");
    }
}
