//! The server's machine as its clients' gauges show it (`GET /api/v1/system`): memory, CPU and
//! the device's memory, sampled on request, plus the device jobs run on.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::tui::sampler::{DeviceProbe, Sampler, SysSnapshot};
use crate::vocab::Backend;

/// What `GET /api/v1/system` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemReport {
    /// The device jobs run on, e.g. "cpu:0", "cuda:0".
    pub device: String,
    pub backend: Backend,
    pub machine: SysSnapshot,
    /// The newest event's id: a client streams events after it (`?after=`) to see only what
    /// happens from now on.
    pub last_event_id: String,
}

pub struct Machine {
    sampler: Mutex<Sampler>,
    device: String,
    backend: Backend,
}

impl Machine {
    pub fn new(probe: Option<DeviceProbe>, device: String, backend: Backend) -> Self {
        Self {
            sampler: Mutex::new(Sampler::new(probe)),
            device,
            backend,
        }
    }

    /// One sample now (blocking: reads /proc and the device).
    pub fn report(&self, last_event_id: String) -> SystemReport {
        let machine = self
            .sampler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .sample();
        SystemReport {
            device: self.device.clone(),
            backend: self.backend,
            machine,
            last_event_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_json() {
        let machine = Machine::new(
            Some(Box::new(|| {
                Some(crate::tui::sampler::DeviceGauge::Discrete {
                    name: "gpu".into(),
                    total: 10,
                    free: 4,
                })
            })),
            "cuda:0".into(),
            Backend::Cuda,
        );
        let report = machine.report("5-1".into());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["device"], "cuda:0");
        assert_eq!(json["machine"]["device"]["memory"], "discrete");
        assert_eq!(json["machine"]["device"]["free"], 4);
        assert!(json["machine"]["ram_total"].as_u64().unwrap() > 0);
        let back: SystemReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
