//! Parsers of macOS tool output (`sysctl -n`, `sw_vers`, `vm_stat`) and the calls that run them.
//! The parsers are pure so they are tested on recorded samples: no Mac runs the tests.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Serialize;

/// A macOS release, as `sw_vers -productVersion` prints it (`14.4.1`, `15.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MacVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for MacVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl MacVersion {
    /// Parses `14`, `14.4` or `14.4.1`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

/// `sysctl -n hw.optional.arm64` (or `sysctl.proc_translated`): `1` is true, `0` false.
pub fn parse_sysctl_flag(output: &str) -> Option<bool> {
    match output.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// `sysctl -n machdep.cpu.brand_string`: the chip name, e.g. `Apple M2 Pro`; empty output is `None`.
pub fn parse_brand_string(output: &str) -> Option<String> {
    let name = output.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `sysctl -n hw.memsize`: physical RAM in bytes.
pub fn parse_sysctl_u64(output: &str) -> Option<u64> {
    output.trim().parse().ok()
}

/// The product version from the full `sw_vers` output (`ProductVersion:\t14.4.1`).
pub fn parse_sw_vers(output: &str) -> Option<MacVersion> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "ProductVersion")
            .then(|| MacVersion::parse(value))
            .flatten()
    })
}

/// The Apple Silicon generation from a chip name: `Apple M2 Pro` -> 2. `None` for Intel names.
pub fn apple_chip_generation(chip: &str) -> Option<u32> {
    let rest = chip.trim().strip_prefix("Apple M")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `vm_stat` output: the page size and every `Pages ...` counter, keyed by its label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmStat {
    pub page_size: u64,
    pub pages: BTreeMap<String, u64>,
}

impl VmStat {
    fn bytes(&self, key: &str) -> u64 {
        self.pages
            .get(key)
            .copied()
            .unwrap_or(0)
            .saturating_mul(self.page_size)
    }

    pub fn free_bytes(&self) -> u64 {
        self.bytes("Pages free")
    }

    /// Wired memory cannot be paged out: the GPU's working set lives here on Apple Silicon.
    pub fn wired_bytes(&self) -> u64 {
        self.bytes("Pages wired down")
    }

    /// Memory held by the compressor: a high value means the Mac is already under pressure.
    pub fn compressed_bytes(&self) -> u64 {
        self.bytes("Pages occupied by compressor")
    }

    /// What could be handed out without swapping: free + inactive + speculative pages.
    pub fn available_bytes(&self) -> u64 {
        self.free_bytes() + self.bytes("Pages inactive") + self.bytes("Pages speculative")
    }
}

/// Parses `vm_stat`; `None` when the header with the page size is missing.
pub fn parse_vm_stat(output: &str) -> Option<VmStat> {
    let mut lines = output.lines();
    let header = lines.next()?;
    let after = header.split_once("page size of")?.1;
    let page_size = after.split_whitespace().next()?.parse().ok()?;
    let pages = lines
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(':')?;
            let value = value.trim().trim_end_matches('.').parse().ok()?;
            Some((key.trim().trim_matches('"').to_string(), value))
        })
        .collect();
    Some(VmStat { page_size, pages })
}

/// Runs a tool and returns its stdout, or `None` (logged at debug) when it is missing or fails.
pub(crate) fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            tracing::debug!(program, ?args, status = %out.status, "platform probe failed");
            None
        }
        Err(err) => {
            tracing::debug!(program, ?args, %err, "platform probe could not run");
            None
        }
    }
}

pub(crate) fn sysctl(name: &str) -> Option<String> {
    run_tool("sysctl", &["-n", name])
}

/// `vm_stat` on this Mac; `None` elsewhere or when it fails.
pub fn read_vm_stat() -> Option<VmStat> {
    if !cfg!(target_os = "macos") {
        return None;
    }
    parse_vm_stat(&run_tool("vm_stat", &[])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SW_VERS_SONOMA: &str =
        "ProductName:\t\tmacOS\nProductVersion:\t\t14.4.1\nBuildVersion:\t\t23E224\n";
    const SW_VERS_SEQUOIA: &str =
        "ProductName:\t\tmacOS\nProductVersion:\t\t15.0\nBuildVersion:\t\t24A335\n";
    const SW_VERS_CATALINA: &str =
        "ProductName:\tMac OS X\nProductVersion:\t10.15.7\nBuildVersion:\t19H2026\n";

    // Recorded on a 16 GB Mac mini (M2) with 16 KiB pages.
    const VM_STAT: &str = "Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                                5102.
Pages active:                            301044.
Pages inactive:                          296391.
Pages speculative:                         4419.
Pages throttled:                              0.
Pages wired down:                        143250.
Pages purgeable:                           9418.
\"Translation faults\":                 419561302.
Pages copy-on-write:                    9962401.
Pages zero filled:                    181447735.
Pages reactivated:                      2317208.
Pages purged:                            905519.
File-backed pages:                       187001.
Anonymous pages:                         414853.
Pages stored in compressor:              498331.
Pages occupied by compressor:            226218.
Decompressions:                         3022105.
Compressions:                           4624188.
Pageins:                                4823511.
Pageouts:                                 51207.
Swapins:                                  12066.
Swapouts:                                 63104.
";

    #[test]
    fn sw_vers_versions() {
        assert_eq!(
            parse_sw_vers(SW_VERS_SONOMA),
            Some(MacVersion {
                major: 14,
                minor: 4,
                patch: 1
            })
        );
        assert_eq!(
            parse_sw_vers(SW_VERS_SEQUOIA),
            Some(MacVersion {
                major: 15,
                minor: 0,
                patch: 0
            })
        );
        assert_eq!(
            parse_sw_vers(SW_VERS_CATALINA),
            Some(MacVersion {
                major: 10,
                minor: 15,
                patch: 7
            })
        );
        assert_eq!(parse_sw_vers("ProductName: macOS\n"), None);
        assert_eq!(parse_sw_vers("ProductVersion: fourteen\n"), None);
    }

    #[test]
    fn mac_versions_order_and_print() {
        let old = MacVersion::parse("13.6.7");
        let new = MacVersion::parse("14");
        assert!(old < new);
        assert_eq!(new.map(|v| v.to_string()).as_deref(), Some("14.0.0"));
        assert_eq!(MacVersion::parse("14.1.2.3"), None);
        assert_eq!(MacVersion::parse(""), None);
    }

    #[test]
    fn sysctl_outputs() {
        assert_eq!(parse_sysctl_flag("1\n"), Some(true));
        assert_eq!(parse_sysctl_flag("0\n"), Some(false));
        assert_eq!(parse_sysctl_flag(""), None);
        assert_eq!(
            parse_brand_string("Apple M2 Pro\n").as_deref(),
            Some("Apple M2 Pro")
        );
        assert_eq!(parse_brand_string("  \n"), None);
        assert_eq!(parse_sysctl_u64("17179869184\n"), Some(17_179_869_184));
    }

    #[test]
    fn chip_generations() {
        assert_eq!(apple_chip_generation("Apple M1"), Some(1));
        assert_eq!(apple_chip_generation("Apple M1 Max"), Some(1));
        assert_eq!(apple_chip_generation("Apple M2 Pro"), Some(2));
        assert_eq!(apple_chip_generation("Apple M10"), Some(10));
        assert_eq!(
            apple_chip_generation("Intel(R) Core(TM) i7-8700B CPU @ 3.20GHz"),
            None
        );
    }

    #[test]
    fn vm_stat_sample() {
        let stat = parse_vm_stat(VM_STAT);
        let stat = stat.as_ref();
        assert_eq!(stat.map(|s| s.page_size), Some(16_384));
        assert_eq!(stat.map(VmStat::free_bytes), Some(5_102 * 16_384));
        assert_eq!(stat.map(VmStat::wired_bytes), Some(143_250 * 16_384));
        assert_eq!(stat.map(VmStat::compressed_bytes), Some(226_218 * 16_384));
        assert_eq!(
            stat.map(VmStat::available_bytes),
            Some((5_102 + 296_391 + 4_419) * 16_384)
        );
        assert_eq!(
            stat.and_then(|s| s.pages.get("Translation faults").copied()),
            Some(419_561_302)
        );
        assert_eq!(parse_vm_stat("Pages free: 12.\n"), None);
    }
}
