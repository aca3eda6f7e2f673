//! Where a UNet step's device time goes, by kind of layer: off unless `PALLAIDIUM_PROFILE=1`
//! (`EngineSwitches::profile`) when the UNet is loaded (kept in the UNet). When on, the device is synchronized
//! around every timed layer, which slows the step itself: the totals say where time goes, not
//! what a step costs (`bench unet` reports them under `profile`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{Device, Result};

/// Accumulated seconds and calls per layer kind.
#[derive(Debug)]
pub struct Probe {
    device: Device,
    enabled: bool,
    totals: Mutex<BTreeMap<&'static str, (f64, u64)>>,
}

impl Probe {
    pub fn new(device: &Device, enabled: bool) -> Self {
        Self {
            device: device.clone(),
            enabled,
            totals: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Runs `f`, timing it (device work included) under `kind` when profiling.
    pub fn time<T>(&self, kind: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.enabled {
            return f();
        }
        self.device.synchronize()?;
        let start = Instant::now();
        let value = f()?;
        self.device.synchronize()?;
        let seconds = start.elapsed().as_secs_f64();
        if let Ok(mut totals) = self.totals.lock() {
            let entry = totals.entry(kind).or_insert((0.0, 0));
            entry.0 += seconds;
            entry.1 += 1;
        }
        Ok(value)
    }

    /// The totals so far (kind, seconds, calls), and a fresh start.
    pub fn take(&self) -> Vec<(&'static str, f64, u64)> {
        match self.totals.lock() {
            Ok(mut totals) => std::mem::take(&mut *totals)
                .into_iter()
                .map(|(kind, (seconds, calls))| (kind, seconds, calls))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn totals_accumulate_per_kind_when_enabled_and_not_otherwise() {
        let mut probe = Probe::new(&Device::Cpu, false);
        probe.enabled = true;
        probe.time("a", || Ok(())).unwrap();
        probe.time("a", || Ok(())).unwrap();
        probe.time("b", || Ok(())).unwrap();
        let totals = probe.take();
        assert_eq!(totals.len(), 2);
        assert_eq!((totals[0].0, totals[0].2), ("a", 2));
        assert!(probe.take().is_empty());
        probe.enabled = false;
        probe.time("a", || Ok(())).unwrap();
        assert!(probe.take().is_empty());
    }
}
