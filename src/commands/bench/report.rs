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
