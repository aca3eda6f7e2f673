//! Compute dtypes: what `--dtype` asks for (`DtypeChoice`, with auto) and what a job runs in
//! (`Dtype`). The auto rule lives here, once: f16 on a GPU (CUDA, Metal), f32 on the CPU.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::Backend;

/// A floating dtype a job computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// Half-precision dtypes load the fp16 weight variants.
    pub fn wants_fp16_weights(self) -> bool {
        matches!(self, Self::F16 | Self::Bf16)
    }

    /// The engine boundary: the candle dtype tensors are made in.
    pub fn to_candle(self) -> candle_core::DType {
        match self {
            Self::F32 => candle_core::DType::F32,
            Self::F16 => candle_core::DType::F16,
            Self::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// `--dtype` (and a job's `dtype` key): a dtype, or auto to let the device decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtypeChoice {
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl DtypeChoice {
    /// The dtype asked for, or None for auto.
    pub fn fixed(self) -> Option<Dtype> {
        match self {
            Self::Auto => None,
            Self::F32 => Some(Dtype::F32),
            Self::F16 => Some(Dtype::F16),
            Self::Bf16 => Some(Dtype::Bf16),
        }
    }

    /// The dtype a job runs in on `backend`: auto is f16 on CUDA and Metal, f32 on the CPU
    /// (f16 is emulated there, and slow). Whether the device supports it is `device::resolve_dtype`'s.
    pub fn on(self, backend: Backend) -> Dtype {
        self.fixed().unwrap_or(match backend {
            Backend::Cpu => Dtype::F32,
            Backend::Cuda | Backend::Metal => Dtype::F16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_f16_on_a_gpu_and_f32_on_the_cpu() {
        assert_eq!(DtypeChoice::Auto.on(Backend::Cpu), Dtype::F32);
        assert_eq!(DtypeChoice::Auto.on(Backend::Cuda), Dtype::F16);
        assert_eq!(DtypeChoice::Auto.on(Backend::Metal), Dtype::F16);
        assert_eq!(DtypeChoice::default(), DtypeChoice::Auto);
    }

    #[test]
    fn a_fixed_choice_is_kept_on_every_backend() {
        for backend in [Backend::Cpu, Backend::Cuda, Backend::Metal] {
            assert_eq!(DtypeChoice::F32.on(backend), Dtype::F32);
            assert_eq!(DtypeChoice::F16.on(backend), Dtype::F16);
            assert_eq!(DtypeChoice::Bf16.on(backend), Dtype::Bf16);
        }
    }

    #[test]
    fn names_are_the_same_for_flags_and_storage() {
        for choice in DtypeChoice::value_variants() {
            let flag = choice.to_possible_value().map(|v| v.get_name().to_owned());
            let stored = serde_json::to_value(choice).ok();
            assert_eq!(flag.map(serde_json::Value::String), stored);
            if let Some(dtype) = choice.fixed() {
                assert_eq!(
                    serde_json::to_value(dtype).ok(),
                    Some(dtype.as_str().into())
                );
            }
        }
    }
}
