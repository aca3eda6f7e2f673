//! The machine we run on: OS, arch, Apple Silicon chip, macOS version, SSH/tmux session,
//! the environment set-up done before any device exists, the keep-awake guard, and the
//! PALLAIDIUM_* switches (`switches`, read once in main and passed down).

pub mod disk;
pub mod fd_input;
pub mod heap;
pub mod keep_awake;
pub mod macos;
pub mod mapped_alloc;
pub mod memory;
pub mod paths;
pub mod process;
pub mod switches;

use std::path::Path;

use serde::Serialize;

pub use keep_awake::{KeepAwake, KeepAwakeMethod};
pub use macos::MacVersion;

/// What `detect()` learns about the machine. Cheap enough to call once per command.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformInfo {
    /// `std::env::consts::OS`: `macos`, `linux`, `windows`, ...
    pub os: String,
    /// The architecture this binary was built for (`aarch64`, `x86_64`).
    pub arch: String,
    /// The hardware is Apple Silicon (`hw.optional.arm64`), even when this binary runs under Rosetta.
    pub apple_silicon: bool,
    /// An x86_64 build running translated on Apple Silicon: Metal and speed suffer.
    pub rosetta: bool,
    /// Apple chip name (`Apple M2 Pro`), only on Apple Silicon.
    pub chip: Option<String>,
    /// Apple Silicon generation (1 for M1, 2 for M2, ...).
    pub chip_generation: Option<u32>,
    /// CPU brand as sysinfo reports it (on every OS).
    pub cpu: String,
    pub cpu_cores: usize,
    pub macos_version: Option<MacVersion>,
    /// Running inside an SSH session (SSH_CONNECTION, SSH_CLIENT or SSH_TTY set).
    pub ssh: bool,
    /// Running inside tmux (TMUX set).
    pub tmux: bool,
}

/// SSH and tmux detection from environment values (pure, so it is testable).
pub fn session_from_env(var: impl Fn(&str) -> Option<String>) -> (bool, bool) {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let ssh = set("SSH_CONNECTION") || set("SSH_CLIENT") || set("SSH_TTY");
    (ssh, set("TMUX"))
}

impl PlatformInfo {
    /// Probes the machine: sysinfo everywhere, plus `sysctl`/`sw_vers` on macOS.
    pub fn detect() -> Self {
        let os = std::env::consts::OS.to_string();
        let arch = std::env::consts::ARCH.to_string();
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let cpu = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown CPU".to_string());
        let cpu_cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (ssh, tmux) = session_from_env(|k| std::env::var(k).ok());

        let mut info = Self {
            os,
            arch,
            apple_silicon: false,
            rosetta: false,
            chip: None,
            chip_generation: None,
            cpu,
            cpu_cores,
            macos_version: None,
            ssh,
            tmux,
        };
        if cfg!(target_os = "macos") {
            info.detect_macos();
        }
        info
    }

    fn detect_macos(&mut self) {
        self.apple_silicon = macos::sysctl("hw.optional.arm64")
            .and_then(|o| macos::parse_sysctl_flag(&o))
            .unwrap_or(self.arch == "aarch64");
        self.rosetta = macos::sysctl("sysctl.proc_translated")
            .and_then(|o| macos::parse_sysctl_flag(&o))
            .unwrap_or(false);
        let brand =
            macos::sysctl("machdep.cpu.brand_string").and_then(|o| macos::parse_brand_string(&o));
        if self.apple_silicon {
            self.chip_generation = brand.as_deref().and_then(macos::apple_chip_generation);
            self.chip = brand.clone();
        }
        if let Some(brand) = brand {
            self.cpu = brand;
        }
        self.macos_version = macos::run_tool("sw_vers", &[]).and_then(|o| macos::parse_sw_vers(&o));
    }

    /// The M1 family lacks native bf16, whatever Metal claims.
    pub fn is_m1(&self) -> bool {
        self.chip_generation == Some(1)
    }

    /// A short one-line description for logs and reports.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", self.os, self.arch);
        if let Some(v) = self.macos_version {
            s.push_str(&format!(" (macOS {v})"));
        }
        s.push_str(&format!(", {}", self.chip.as_deref().unwrap_or(&self.cpu)));
        if self.rosetta {
            s.push_str(", under Rosetta");
        }
        s
    }
}

/// One environment variable `prepare_environment` set, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvChange {
    pub name: String,
    pub value: String,
    pub why: String,
}

/// The environment variables to set, from the current values (pure, so it is testable).
/// Only variables the user has not set are touched; nothing here changes results, only set-up.
pub fn planned_env(
    cuda_compiled: bool,
    home: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Vec<EnvChange> {
    let mut changes = Vec::new();
    let unset = |name: &str| var(name).is_none_or(|v| v.is_empty());
    if cuda_compiled {
        // Load kernels on first use: candle ships hundreds and eager loading costs device memory.
        // (It is the driver's default from CUDA 12.2 on; older drivers need asking.)
        if unset("CUDA_MODULE_LOADING") {
            changes.push(EnvChange {
                name: "CUDA_MODULE_LOADING".into(),
                value: "LAZY".into(),
                why: "load CUDA kernels on first use to save device memory".into(),
            });
        }
        // Keep the driver's JIT cache (PTX -> SASS) with our data, so it survives and can be wiped with it.
        if unset("CUDA_CACHE_PATH") {
            changes.push(EnvChange {
                name: "CUDA_CACHE_PATH".into(),
                value: home.join("cuda-cache").display().to_string(),
                why: "keep the CUDA kernel JIT cache under PALLAIDIUM_HOME".into(),
            });
        }
    }
    changes
}

/// Sets up the process environment before any device is created; returns what it changed (logged).
///
/// Call it at the start of `main`, before any thread is spawned: setting environment variables
/// while other threads read them is undefined behaviour on Unix.
pub fn prepare_environment(info: &PlatformInfo, switches: &switches::Switches) -> Vec<EnvChange> {
    heap::keep_freed_memory(switches.malloc_defaults);
    let home = match paths::Paths::resolve(None, switches) {
        Ok(p) => p.home,
        Err(err) => {
            tracing::debug!(%err, "no data folder; environment left as it is");
            return Vec::new();
        }
    };
    let changes = planned_env(candle_core::utils::cuda_is_available(), &home, |k| {
        std::env::var(k).ok()
    });
    for change in &changes {
        // SAFETY: documented precondition: called before other threads exist.
        unsafe { std::env::set_var(&change.name, &change.value) };
        tracing::debug!(name = %change.name, value = %change.value, why = %change.why, "environment set");
    }
    tracing::debug!(platform = %info.summary(), changed = changes.len(), "environment prepared");
    changes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn ssh_and_tmux_from_env() {
        assert_eq!(session_from_env(env(&[])), (false, false));
        assert_eq!(
            session_from_env(env(&[("SSH_CONNECTION", "10.0.0.2 51234 10.0.0.5 22")])),
            (true, false)
        );
        assert_eq!(
            session_from_env(env(&[("SSH_TTY", "/dev/ttys001")])),
            (true, false)
        );
        assert_eq!(
            session_from_env(env(&[("TMUX", "/private/tmp/tmux-501/default,1234,0")])),
            (false, true)
        );
        assert_eq!(
            session_from_env(env(&[("SSH_CLIENT", " "), ("TMUX", "")])),
            (false, false)
        );
    }

    #[test]
    fn env_setup_only_touches_unset_cuda_vars() {
        let home = Path::new("/data/pallaidium");
        assert!(planned_env(false, home, env(&[])).is_empty());
        let all = planned_env(true, home, env(&[]));
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["CUDA_MODULE_LOADING", "CUDA_CACHE_PATH"]);
        assert_eq!(all[1].value, "/data/pallaidium/cuda-cache");
        let user_set = planned_env(true, home, env(&[("CUDA_CACHE_PATH", "/scratch/nv")]));
        assert_eq!(user_set.len(), 1);
        assert_eq!(user_set[0].name, "CUDA_MODULE_LOADING");
    }

    #[test]
    fn detect_reports_this_machine() {
        let info = PlatformInfo::detect();
        assert_eq!(info.os, std::env::consts::OS);
        assert_eq!(info.arch, std::env::consts::ARCH);
        assert!(info.cpu_cores >= 1);
        if !cfg!(target_os = "macos") {
            assert!(!info.apple_silicon && info.chip.is_none() && info.macos_version.is_none());
        }
    }
}
