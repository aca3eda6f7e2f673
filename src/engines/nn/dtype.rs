//! candle dtypes as reports, bench JSON and plans name them.

use candle_core::DType;

/// The compute dtype a request runs at, for reporting.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}
