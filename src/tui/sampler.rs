//! The system collector: samples memory and CPU at a fixed rate and sends `SysSnapshot`s; the gauges
//! only ever draw a snapshot (collect, then draw).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::event::AppEvent;
use crate::platform::memory::{SystemMemory, process_rss};

/// Memory of the compute device, as the gauges show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "memory", rename_all = "lowercase")]
pub enum DeviceGauge {
    /// A discrete GPU with its own memory (CUDA).
    Discrete { name: String, total: u64, free: u64 },
    /// Unified memory shared with the CPU (Metal): the budget jobs may use and what is in use.
    Unified {
        name: String,
        total: u64,
        budget: u64,
        used: u64,
    },
}

/// One look at the machine, in bytes and percent (also `GET /api/v1/system`'s `machine`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SysSnapshot {
    pub ram_total: u64,
    pub ram_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub process_rss: Option<u64>,
    /// Average load over every core, 0..100.
    pub cpu_percent: f32,
    pub device: Option<DeviceGauge>,
}

/// How the device's memory is read; the device module supplies one (none on the CPU).
pub type DeviceProbe = Box<dyn FnMut() -> Option<DeviceGauge> + Send>;

/// Reads `selected`'s memory as the gauges show it (nothing for the CPU: RAM shows it).
pub fn device_probe(
    selected: std::sync::Arc<crate::device::SelectedDevice>,
    platform: std::sync::Arc<crate::platform::PlatformInfo>,
) -> DeviceProbe {
    use crate::device::DeviceMemory;
    Box::new(move || {
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
    })
}

/// Samples the machine; keeps a sysinfo `System` between samples because CPU load is a difference.
pub struct Sampler {
    sys: sysinfo::System,
    device: Option<DeviceProbe>,
}

impl Sampler {
    pub fn new(device: Option<DeviceProbe>) -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_usage();
        Self { sys, device }
    }

    pub fn sample(&mut self) -> SysSnapshot {
        let mem = SystemMemory::query();
        self.sys.refresh_cpu_usage();
        let total = mem.usable_total();
        SysSnapshot {
            ram_total: total,
            ram_used: total.saturating_sub(mem.usable_available()),
            swap_total: mem.swap_total,
            swap_used: mem.swap_used,
            process_rss: process_rss(),
            cpu_percent: self.sys.global_cpu_usage(),
            device: self.device.as_mut().and_then(|probe| probe()),
        }
    }

    /// Runs on a blocking thread (sysinfo reads /proc): one snapshot every `every` until the app is gone.
    pub fn spawn(mut self, every: Duration, tx: UnboundedSender<AppEvent>) {
        tokio::task::spawn_blocking(move || {
            loop {
                if tx.send(AppEvent::System(self.sample())).is_err() {
                    break;
                }
                std::thread::sleep(every);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_consistent() {
        let mut sampler = Sampler::new(Some(Box::new(|| {
            Some(DeviceGauge::Discrete {
                name: "gpu".into(),
                total: 10,
                free: 4,
            })
        })));
        let s = sampler.sample();
        assert!(s.ram_total > 0 && s.ram_used <= s.ram_total);
        assert!(s.swap_used <= s.swap_total);
        assert!((0.0..=100.0).contains(&s.cpu_percent));
        assert!(matches!(
            s.device,
            Some(DeviceGauge::Discrete { free: 4, .. })
        ));
    }
}
