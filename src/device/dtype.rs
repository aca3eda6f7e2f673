//! Which dtypes each device runs well, and `--dtype` resolution.
//! Facts: f16/bf16 on the CPU are emulated (slow); Metal has no f64, and bf16 on Metal needs
//! macOS 14+ and an M2 or newer (M1 has no native bf16, whatever `supports_bf16` says);
//! CUDA bf16 is native from compute capability 8.0 (Ampere) on.

use candle_core::DType;
use serde::Serialize;

use super::SelectedDevice;
use crate::platform::{MacVersion, PlatformInfo};
use crate::vocab::{Backend, DtypeChoice};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "level", content = "note", rename_all = "lowercase")]
pub enum Support {
    Native,
    /// Works, but emulated or widened: slow.
    Slow(String),
    Unsupported(String),
}

/// Support for each floating dtype on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtypeSupport {
    pub f32: Support,
    pub f16: Support,
    pub bf16: Support,
    pub f64: Support,
}

impl DtypeSupport {
    pub fn of(&self, dtype: DType) -> Support {
        match dtype {
            DType::F16 => self.f16.clone(),
            DType::BF16 => self.bf16.clone(),
            DType::F64 => self.f64.clone(),
            DType::F32 => self.f32.clone(),
            other => Support::Unsupported(format!("{other:?} is not a compute dtype here")),
        }
    }

    /// The dtypes that run natively, for reports.
    pub fn native(&self) -> Vec<&'static str> {
        [
            ("f32", &self.f32),
            ("f16", &self.f16),
            ("bf16", &self.bf16),
            ("f64", &self.f64),
        ]
        .into_iter()
        .filter(|(_, s)| **s == Support::Native)
        .map(|(n, _)| n)
        .collect()
    }
}

const MIN_BF16_MACOS: MacVersion = MacVersion {
    major: 14,
    minor: 0,
    patch: 0,
};

/// Which dtypes `kind` supports on this platform. For CUDA, bf16 depends on the card:
/// pass its compute capability when known (`SelectedDevice::compute_capability`).
pub fn dtype_support(kind: Backend, platform: &PlatformInfo) -> DtypeSupport {
    dtype_support_with_cc(kind, platform, None)
}

fn dtype_support_with_cc(
    kind: Backend,
    platform: &PlatformInfo,
    compute_capability: Option<(u32, u32)>,
) -> DtypeSupport {
    match kind {
        Backend::Cpu => DtypeSupport {
            f32: Support::Native,
            f16: Support::Slow("f16 on the CPU is emulated and slow; f32 is faster".into()),
            // candle's CPU matmul has no bf16 kernel: a bf16 job would fail at its first layer.
            bf16: Support::Unsupported(
                "the CPU has no bf16 matrix multiply: use --dtype f32 (fastest on the CPU) or f16"
                    .into(),
            ),
            f64: Support::Native,
        },
        Backend::Cuda => DtypeSupport {
            f32: Support::Native,
            f16: Support::Native,
            bf16: match compute_capability {
                Some((major, minor)) if major < 8 => Support::Unsupported(format!(
                    "this GPU (compute capability {major}.{minor}) has no native bf16: use --dtype f16"
                )),
                _ => Support::Native,
            },
            f64: Support::Native,
        },
        Backend::Metal => DtypeSupport {
            f32: Support::Native,
            f16: Support::Native,
            bf16: metal_bf16(platform),
            f64: Support::Unsupported("Metal has no f64: use f32".into()),
        },
    }
}

fn metal_bf16(platform: &PlatformInfo) -> Support {
    if platform.is_m1() {
        return Support::Unsupported(format!(
            "the {} has no native bf16: use --dtype f16 (or f32)",
            platform.chip.as_deref().unwrap_or("M1")
        ));
    }
    match platform.macos_version {
        Some(v) if v < MIN_BF16_MACOS => Support::Unsupported(format!(
            "bf16 on Metal needs macOS 14 or newer (this Mac runs {v}): update macOS or use --dtype f16"
        )),
        _ => Support::Native,
    }
}

/// Turns `--dtype` into the compute dtype for this device (auto: `DtypeChoice::on`, always
/// supported). Unsupported combinations are bad input naming the fix; slow ones log a warning.
pub fn resolve_dtype(
    choice: DtypeChoice,
    device: &SelectedDevice,
    platform: &PlatformInfo,
) -> Result<DType> {
    let Some(fixed) = choice.fixed() else {
        return Ok(choice.on(device.kind).to_candle());
    };
    let dtype = fixed.to_candle();
    match dtype_support_with_cc(device.kind, platform, device.compute_capability).of(dtype) {
        Support::Native => Ok(dtype),
        Support::Slow(note) => {
            tracing::warn!(?dtype, device = %device.kind, "{note}");
            Ok(dtype)
        }
        Support::Unsupported(why) => Err(Error::bad_input(format!(
            "--dtype {}: {why}",
            dtype.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(chip: &str, version: &str) -> PlatformInfo {
        let mut p = PlatformInfo::detect();
        p.os = "macos".into();
        p.apple_silicon = true;
        p.chip = Some(chip.into());
        p.chip_generation = crate::platform::macos::apple_chip_generation(chip);
        p.macos_version = MacVersion::parse(version);
        p
    }

    fn fake(kind: Backend, cc: Option<(u32, u32)>) -> SelectedDevice {
        // The candle device is the CPU in every case: resolution only reads `kind`.
        SelectedDevice {
            device: candle_core::Device::Cpu,
            kind,
            ordinal: 0,
            name: "test".into(),
            reason: String::new(),
            compute_capability: cc,
        }
    }

    #[test]
    fn auto_picks_per_device() {
        let p = PlatformInfo::detect();
        let r = |k| resolve_dtype(DtypeChoice::Auto, &fake(k, None), &p).ok();
        assert_eq!(r(Backend::Cpu), Some(DType::F32));
        assert_eq!(r(Backend::Cuda), Some(DType::F16));
        assert_eq!(r(Backend::Metal), Some(DType::F16));
    }

    #[test]
    fn bf16_on_metal_needs_macos_14_and_not_m1() {
        let metal = fake(Backend::Metal, None);
        let r = |p: &PlatformInfo| resolve_dtype(DtypeChoice::Bf16, &metal, p);
        assert_eq!(r(&mac("Apple M2 Pro", "14.4.1")).ok(), Some(DType::BF16));
        let old = r(&mac("Apple M2 Pro", "13.6")).err();
        assert_eq!(old.as_ref().map(Error::exit_code), Some(2));
        assert!(old.is_some_and(|e| e.to_string().contains("macOS 14")));
        let m1 = r(&mac("Apple M1 Max", "15.1")).err().map(|e| e.to_string());
        assert!(m1.is_some_and(|m| m.contains("M1 Max") && m.contains("--dtype f16")));
        assert_eq!(
            resolve_dtype(DtypeChoice::F16, &metal, &mac("Apple M1", "12.0")).ok(),
            Some(DType::F16)
        );
    }

    #[test]
    fn slow_cpu_dtypes_are_allowed_and_bf16_is_refused() {
        let p = PlatformInfo::detect();
        let cpu = fake(Backend::Cpu, None);
        assert_eq!(
            resolve_dtype(DtypeChoice::F16, &cpu, &p).ok(),
            Some(DType::F16)
        );
        let err = resolve_dtype(DtypeChoice::Bf16, &cpu, &p).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--dtype f32"), "{err}");
        assert!(matches!(
            dtype_support(Backend::Cpu, &p).f16,
            Support::Slow(_)
        ));
    }

    #[test]
    fn cuda_bf16_needs_ampere() {
        let p = PlatformInfo::detect();
        let turing = fake(Backend::Cuda, Some((7, 5)));
        let err = resolve_dtype(DtypeChoice::Bf16, &turing, &p)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("7.5")));
        let hopper = fake(Backend::Cuda, Some((9, 0)));
        assert_eq!(
            resolve_dtype(DtypeChoice::Bf16, &hopper, &p).ok(),
            Some(DType::BF16)
        );
    }

    #[test]
    fn metal_has_no_f64() {
        let s = dtype_support(Backend::Metal, &mac("Apple M3", "14.0"));
        assert!(matches!(s.f64, Support::Unsupported(_)));
        assert_eq!(s.native(), ["f32", "f16", "bf16"]);
        assert_eq!(
            dtype_support(Backend::Metal, &mac("Apple M1", "14.0")).native(),
            ["f32", "f16"]
        );
    }
}
