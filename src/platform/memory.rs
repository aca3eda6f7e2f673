//! RAM, swap and process memory from sysinfo (which reads /proc/meminfo on Linux, host_statistics on macOS).

use serde::Serialize;

/// A snapshot of the machine's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SystemMemory {
    /// Physical RAM of the host (MemTotal on Linux, hw.memsize on macOS).
    pub ram_total: u64,
    pub ram_available: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    /// The memory limit of our cgroup (containers, systemd slices), when one is set below RAM.
    pub cgroup_limit: Option<u64>,
    /// What our cgroup still has free, when limited.
    pub cgroup_free: Option<u64>,
}

impl SystemMemory {
    pub fn query() -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let limits = sys
            .cgroup_limits()
            .filter(|l| l.total_memory < sys.total_memory());
        Self {
            ram_total: sys.total_memory(),
            ram_available: sys.available_memory(),
            swap_total: sys.total_swap(),
            swap_used: sys.used_swap(),
            cgroup_limit: limits.as_ref().map(|l| l.total_memory),
            cgroup_free: limits.as_ref().map(|l| l.free_memory),
        }
    }

    /// Total memory this process may use: RAM, or the cgroup limit when lower.
    pub fn usable_total(&self) -> u64 {
        self.cgroup_limit
            .map_or(self.ram_total, |l| l.min(self.ram_total))
    }

    /// Memory available to this process now: available RAM, or the cgroup's free memory when lower.
    pub fn usable_available(&self) -> u64 {
        self.cgroup_free
            .map_or(self.ram_available, |f| f.min(self.ram_available))
    }
}

/// Resident set size of this process, in bytes (`None` if the OS would not say).
pub fn process_rss() -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
    let pid = sysinfo::get_current_pid().ok()?;
    let mut sys = sysinfo::System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(sysinfo::Process::memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_consistent() {
        let m = SystemMemory::query();
        assert!(m.ram_total > 0);
        assert!(m.ram_available <= m.ram_total);
        assert!(m.swap_used <= m.swap_total);
        assert!(m.usable_total() <= m.ram_total);
        assert!(m.usable_available() <= m.usable_total());
    }

    #[test]
    fn rss_grows_with_a_touched_allocation() {
        // Other tests in this process allocate and free at the same time, so one reading can be
        // masked by their frees: an attempt of five must see the 64 MiB block (at least half).
        let mut seen = Vec::new();
        for _ in 0..5 {
            let before = process_rss().unwrap_or(0);
            assert!(before > 0);
            let block = vec![1u8; 64 << 20];
            let after = process_rss().unwrap_or(0);
            assert!(block.iter().all(|&b| b == 1));
            if after >= before + (32 << 20) {
                return;
            }
            seen.push((before, after));
        }
        panic!("rss never grew by 32 MiB with 64 MiB touched: {seen:?}");
    }
}
