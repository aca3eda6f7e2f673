//! What a benchmark reports: timing statistics, peak memory, versions; as JSON or a table.

use std::time::Duration;

/// The candle version this crate is built against. Checked against Cargo.lock by a test, so a
/// candle upgrade that forgets this constant fails `cargo test`.
pub const CANDLE_VERSION: &str = "0.11.1";

/// Median and minimum of timed runs, in seconds.
pub fn median_min(times: &[Duration]) -> (f64, f64) {
    let mut s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0])
}

/// A `/proc/self/status` field in bytes (Linux; None elsewhere).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&text, field).map(|kb| kb * 1024)
}

fn parse_status_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Peak resident set size of this process so far (VmHWM).
pub fn peak_rss() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// Resident set size now (VmRSS).
pub fn current_rss() -> Option<u64> {
    proc_status_bytes("VmRSS")
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so the next peak covers only what follows.
/// Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Starts a peak-memory measurement: the process's RSS on the CPU, the CUDA memory pool's
/// high-water marks on CUDA. Returns whether it worked.
pub fn reset_peak(device: &candle_core::Device) -> bool {
    if device.is_cpu() {
        reset_peak_rss()
    } else {
        crate::device::cuda_pool::reset_peak(device)
    }
}

/// Peak memory since `reset_peak` (or since start when that failed): `(peak_bytes,
/// peak_reserved_bytes, what they measure)`.
pub fn peak(device: &candle_core::Device, reset: bool) -> (Option<u64>, Option<u64>, &'static str) {
    if device.is_cpu() {
        let kind = if reset {
            "process VmHWM since the reset (includes the weights)"
        } else {
            "process VmHWM since start"
        };
        return (peak_rss(), None, kind);
    }
    match crate::device::cuda_pool::peak(device) {
        Some(p) => (
            Some(p.used),
            Some(p.reserved),
            "CUDA memory pool high-water marks since the reset: used (as torch.cuda.max_memory_allocated, includes the weights) and reserved (as max_memory_reserved)",
        ),
        None => (None, None, "not measured on this device"),
    }
}

/// CPU model and logical cores, for the record.
pub fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} threads")
}

pub fn bytes_or_na(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".into(), crate::device::memory::format_bytes)
}

/// What `timed_runs` measured.
pub struct TimedRuns {
    pub times: Vec<Duration>,
    pub median_s: f64,
    pub min_s: f64,
    /// The device's peak over the timed runs (see `peak`).
    pub peak_bytes: Option<u64>,
    pub peak_reserved_bytes: Option<u64>,
    pub peak_kind: &'static str,
    /// The process's peak RSS before the timed runs (load and warm-up).
    pub peak_rss_load_and_warmup: Option<u64>,
}

impl TimedRuns {
    pub fn times_s(&self) -> Vec<f64> {
        self.times.iter().map(Duration::as_secs_f64).collect()
    }
}

/// `warmup` untimed calls of `step`, then `runs` (at least one) timed ones, each logged as
/// `what`; the device's peak memory is reset between the two.
pub fn timed_runs(
    device: &candle_core::Device,
    (warmup, runs): (u32, u32),
    what: &str,
    mut step: impl FnMut() -> crate::Result<()>,
) -> crate::Result<TimedRuns> {
    for i in 0..warmup {
        let t = std::time::Instant::now();
        step()?;
        tracing::info!(run = i, secs = t.elapsed().as_secs_f64(), "warm-up {what}");
    }
    let peak_rss_load_and_warmup = peak_rss();
    let reset = reset_peak(device);
    let mut times = Vec::with_capacity(runs as usize);
    for i in 0..runs.max(1) {
        let t = std::time::Instant::now();
        step()?;
        let d = t.elapsed();
        tracing::info!(run = i, secs = d.as_secs_f64(), "timed {what}");
        times.push(d);
    }
    let (median_s, min_s) = median_min(&times);
    let (peak_bytes, peak_reserved_bytes, peak_kind) = peak(device, reset);
    Ok(TimedRuns {
        times,
        median_s,
        min_s,
        peak_bytes,
        peak_reserved_bytes,
        peak_kind,
        peak_rss_load_and_warmup,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = |s: f64| Duration::from_secs_f64(s);
        assert_eq!(median_min(&[d(3.0), d(1.0), d(2.0)]), (2.0, 1.0));
        assert_eq!(median_min(&[d(4.0), d(1.0), d(2.0), d(3.0)]), (2.5, 1.0));
        assert!(median_min(&[]).0.is_nan());
    }

    #[test]
    fn status_fields_parse_in_kib() {
        let text = "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(123456));
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(100));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn candle_version_matches_cargo_lock() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        let entry = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"candle-core\""))
            .unwrap();
        assert!(
            entry.contains(&format!("version = \"{CANDLE_VERSION}\"")),
            "Cargo.lock has another candle-core: update CANDLE_VERSION\n{entry}"
        );
    }
}
