//! How much memory a device has and how much a job may use. One `query` per device; the
//! planner compares its estimates with `budget_bytes`, capped by `--memory-budget`.

use serde::Serialize;

use super::SelectedDevice;
use crate::platform::PlatformInfo;
use crate::platform::memory::SystemMemory;
use crate::vocab::Backend;
use crate::{Error, Result};

/// Memory of one device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DeviceMemory {
    /// A GPU with its own memory (CUDA): the driver's total and free.
    Discrete { total: u64, free: u64 },
    /// Apple Silicon: GPU and CPU share RAM. `budget` is what Metal recommends the GPU may
    /// keep resident (recommendedMaxWorkingSetSize), `used` what this process has allocated.
    Unified { total: u64, budget: u64, used: u64 },
    /// The CPU: RAM (or the cgroup limit when lower) and what is available now.
    System { total: u64, available: u64 },
}

impl DeviceMemory {
    pub fn total(&self) -> u64 {
        match *self {
            Self::Discrete { total, .. }
            | Self::Unified { total, .. }
            | Self::System { total, .. } => total,
        }
    }

    /// What a job may use now, before any `--memory-budget` cap.
    pub fn budget_bytes(&self) -> u64 {
        match *self {
            Self::Discrete { free, .. } => free,
            Self::Unified { budget, used, .. } => budget.saturating_sub(used),
            Self::System { available, .. } => available,
        }
    }

    /// What a job may use with the user's cap applied (the smaller of the two).
    pub fn capped_budget(&self, cap: Option<u64>) -> u64 {
        cap.map_or(self.budget_bytes(), |c| c.min(self.budget_bytes()))
    }
}

/// When Metal cannot tell us its working-set size: leave a third of RAM (at least 4 GiB) to
/// macOS and other apps, close to what Metal itself recommends on 8-32 GB Macs.
pub fn unified_fallback_budget(ram_total: u64) -> u64 {
    let reserve = (ram_total / 3).max(4 << 30);
    ram_total.saturating_sub(reserve)
}

/// Queries the memory of a selected device.
pub fn query(device: &SelectedDevice, platform: &PlatformInfo) -> DeviceMemory {
    let system = SystemMemory::query();
    match device.kind {
        Backend::Cuda => {
            cuda_memory(device).unwrap_or(DeviceMemory::Discrete { total: 0, free: 0 })
        }
        Backend::Metal => {
            let (budget, used) =
                metal_working_set(device).unwrap_or((unified_fallback_budget(system.ram_total), 0));
            DeviceMemory::Unified {
                total: system.ram_total,
                budget,
                used,
            }
        }
        Backend::Cpu if platform.apple_silicon => DeviceMemory::System {
            // Unified memory: the CPU shares it with the GPU and the OS; available RAM is the honest number.
            total: system.ram_total,
            available: system.ram_available,
        },
        Backend::Cpu => DeviceMemory::System {
            total: system.usable_total(),
            available: system.usable_available(),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_memory(device: &SelectedDevice) -> Option<DeviceMemory> {
    let cuda = device.device.as_cuda_device().ok()?;
    let stream = cuda.cuda_stream();
    match stream.context().mem_get_info() {
        // Memory our own pool keeps cached (see cuda_pool) is free for our next job.
        Ok((free, total)) => Some(DeviceMemory::Discrete {
            total: total as u64,
            free: (free as u64 + super::cuda_pool::reusable(&device.device)).min(total as u64),
        }),
        Err(err) => {
            tracing::warn!(%err, "CUDA memory query failed");
            None
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_memory(_device: &SelectedDevice) -> Option<DeviceMemory> {
    None
}

#[cfg(feature = "metal")]
fn metal_working_set(device: &SelectedDevice) -> Option<(u64, u64)> {
    let metal = device.device.as_metal_device().ok()?;
    let budget = metal.device().recommended_max_working_set_size() as u64;
    let used = metal.device().current_allocated_size() as u64;
    (budget > 0).then_some((budget, used))
}

#[cfg(not(feature = "metal"))]
fn metal_working_set(_device: &SelectedDevice) -> Option<(u64, u64)> {
    None
}

/// Parses a size such as `6GiB`, `512 MiB`, `1.5GB` or `1000000`. KB/MB/GB/TB are powers of
/// 1000, KiB/MiB/GiB/TiB powers of 1024 (units are case-insensitive; a bare number is bytes).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |why: &str| {
        Error::bad_input(format!(
            "{text:?} is not a size ({why}): write a number and a unit, e.g. 6GiB, 512MiB, 8GB \
             (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad("no number"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err(bad("unknown unit")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad("it must be at least 1 byte"));
    }
    Ok(bytes.round() as u64)
}

/// `--memory-budget` as bytes, or `None` when not given.
pub fn parse_memory_budget(flag: Option<&str>) -> Result<Option<u64>> {
    flag.map(|s| parse_size(s).map_err(|e| Error::bad_input(format!("--memory-budget: {e}"))))
        .transpose()
}

/// Human form of a byte count (`15.2 GiB`), for reports and logs.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The compact form for narrow panes: GiB with one decimal, MiB without (`1.5 GiB`, `512 MiB`).
/// The one other byte formatter; everything else uses [`format_bytes`].
pub fn format_bytes_compact(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let f = bytes as f64;
    if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else {
        format!("{:.0} MiB", f / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok = |s: &str| parse_size(s).ok();
        assert_eq!(ok("6GiB"), Some(6 << 30));
        assert_eq!(ok("6 gib"), Some(6 << 30));
        assert_eq!(ok("512MiB"), Some(512 << 20));
        assert_eq!(ok("8GB"), Some(8_000_000_000));
        assert_eq!(ok("1.5GiB"), Some(3 << 29));
        assert_eq!(ok("2KB"), Some(2_000));
        assert_eq!(ok("2KiB"), Some(2_048));
        assert_eq!(ok("1TB"), Some(1_000_000_000_000));
        assert_eq!(ok("4096"), Some(4096));
        assert_eq!(ok("10B"), Some(10));
    }

    #[test]
    fn bad_sizes_explain_the_form() {
        for bad in [
            "",
            "GiB",
            "6 parsecs",
            "0",
            "0.1B",
            "-1GiB",
            "6GiBs",
            "1..2GB",
        ] {
            let err = parse_size(bad).err();
            assert_eq!(err.as_ref().map(Error::exit_code), Some(2), "{bad:?}");
            assert!(
                err.is_some_and(|e| e.to_string().contains("6GiB")),
                "{bad:?}"
            );
        }
        let flag = parse_memory_budget(Some("lots"))
            .err()
            .map(|e| e.to_string());
        assert!(flag.is_some_and(|m| m.starts_with("--memory-budget")));
        assert!(parse_memory_budget(None).is_ok_and(|b| b.is_none()));
    }

    #[test]
    fn budgets_per_kind() {
        let gpu = DeviceMemory::Discrete {
            total: 80 << 30,
            free: 70 << 30,
        };
        assert_eq!(gpu.budget_bytes(), 70 << 30);
        assert_eq!(gpu.capped_budget(Some(6 << 30)), 6 << 30);
        assert_eq!(gpu.capped_budget(Some(100 << 30)), 70 << 30);
        let mac = DeviceMemory::Unified {
            total: 16 << 30,
            budget: 11 << 30,
            used: 1 << 30,
        };
        assert_eq!(mac.budget_bytes(), 10 << 30);
        assert_eq!(mac.total(), 16 << 30);
        let cpu = DeviceMemory::System {
            total: 24 << 30,
            available: 20 << 30,
        };
        assert_eq!(cpu.capped_budget(None), 20 << 30);
    }

    #[test]
    fn unified_fallback_leaves_room_for_macos() {
        let gib = 1u64 << 30;
        assert_eq!(unified_fallback_budget(8 * gib), 4 * gib);
        assert!(unified_fallback_budget(16 * gib) > 10 * gib);
        assert!(unified_fallback_budget(16 * gib) < 11 * gib);
        assert_eq!(unified_fallback_budget(2 * gib), 0);
    }

    #[test]
    fn cpu_memory_is_real() {
        let platform = PlatformInfo::detect();
        let cpu = super::super::select(
            &super::super::DeviceRequest::Cpu,
            &crate::platform::switches::Switches::default(),
        );
        let mem = cpu.map(|d| query(&d, &platform)).ok();
        assert!(mem.is_some_and(|m| m.total() > 0 && m.budget_bytes() <= m.total()));
    }

    #[test]
    fn bytes_print_for_humans() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(6 << 30), "6.0 GiB");
        assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
    }
}
