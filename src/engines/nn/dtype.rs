//! candle dtypes as reports, bench JSON and plans name them.

use candle_core::DType;

/// f16 widened to f32, every other dtype kept: the rule for text encoders whose activations
/// overflow f16 (T5, Qwen) while their bf16 checkpoints run fine in bf16.
pub fn widen_f16(dtype: DType) -> DType {
    if dtype == DType::F16 {
        DType::F32
    } else {
        dtype
    }
}

/// The compute dtype a request runs at, for reporting.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}
