//! How a diffusion transformer multiplies a GGUF's quantized matrices (`PALLAIDIUM_GGUF_MATMUL`),
//! and the quantized CPU matmuls themselves.
//!
//! `Quantized` is ggml's scheme through candle's `k_quants::matmul`: each row of activations is
//! rounded to the weight type's 8-bit dot-product blocks (Q8_K for the k-quants, Q8_0/Q8_1 for
//! the others) and multiplied against the stored blocks with integer dot products on candle's
//! CPU worker pool; the weights are read at their stored size and never expanded, so memory
//! stays that of the file. `Repacked` is candle's `QMatMul` as it is: the same 8-bit
//! activations, but on x86 (AVX2 and up) and aarch64 it repacks each matrix into wider tiles on
//! first use and keeps them beside the stored blocks (about 2.3x the weights' memory for Q4_K on
//! x86), for its fastest kernels (AVX512-VNNI, AMX, NEON i8mm). `Dequant` expands each weight to
//! f32 per call with diffusers' f16 arithmetic and runs a dense GEMM: diffusers' GGUF numbers to
//! float rounding. Measured against each other and stable-diffusion.cpp in BENCHMARKS.md
//! (FLUX.1 CPU). GPUs always dequantize.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor, k_quants};
use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};

/// The words of `PALLAIDIUM_GGUF_MATMUL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufMatmul {
    /// 8-bit activations against the stored blocks (ggml's scheme; CPU only).
    Quantized,
    /// candle's `QMatMul`: 8-bit activations against tiles repacked on first use and kept
    /// beside the stored blocks (CPU only).
    Repacked,
    /// Dequantize per call with diffusers' arithmetic, then a dense matmul.
    Dequant,
}

impl GgufMatmul {
    /// The switch's word (`platform::switches::GGUF_MATMUL_MODES`) as a mode.
    pub fn from_word(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "quantized" => Some(Self::Quantized),
            "repacked" => Some(Self::Repacked),
            "dequant" => Some(Self::Dequant),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Quantized => "quantized",
            Self::Repacked => "repacked",
            Self::Dequant => "dequant",
        }
    }

    /// The mode a load on `device` uses for the user's `choice`: on the CPU the choice, by
    /// default `Quantized`; on a GPU always `Dequant` (candle's CUDA and Metal quantized matmuls
    /// dequantize for the thousands of rows of an image anyway, and stay unvalidated here).
    pub fn resolve(choice: Option<Self>, device: &Device) -> Self {
        if device.is_cpu() {
            return choice.unwrap_or(Self::Quantized);
        }
        if let Some(mode @ (Self::Quantized | Self::Repacked)) = choice {
            tracing::warn!(
                "PALLAIDIUM_GGUF_MATMUL={} applies to the CPU only; this GPU load dequantizes \
                 each quantized matrix per call",
                mode.word()
            );
        }
        Self::Dequant
    }
}

/// `xs W^T` through candle's `QMatMul` (repacking `w` on first use), xs in any float dtype.
/// None when xs holds a NaN or an infinity, which 8-bit rounding would turn into finite values,
/// or for a shape `pairs_fit` refuses (the caller then takes the dequantized path).
pub fn repacked_matmul(w: &std::sync::Arc<QTensor>, xs: &Tensor) -> Result<Option<Tensor>> {
    use candle_core::Module;
    let x = xs.to_dtype(DType::F32)?.contiguous()?;
    if !pairs_fit(w)? || !all_finite(&x)? {
        return Ok(None);
    }
    let ys = QMatMul::QTensor(w.clone()).forward(&x)?;
    Ok(Some(ys.to_dtype(xs.dtype())?))
}

/// False for a Q4_1/Q5_0/Q5_1 matrix whose rows hold an odd number of blocks: candle's dot
/// products for those types take blocks in pairs (a debug assertion, whose panic in its worker
/// pool would poison the pool for the whole process).
fn pairs_fit(w: &QTensor) -> Result<bool> {
    let (_, k) = w.shape().dims2()?;
    let dtype = w.dtype();
    let paired = matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1);
    Ok(!paired || (k / dtype.block_size()).is_multiple_of(2))
}

/// Whether every value of the f32 tensor `x` is finite.
fn all_finite(x: &Tensor) -> Result<bool> {
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(all)) = &*storage else {
        candle_core::bail!("quantized matmul: the input is not f32 CPU memory");
    };
    let start = layout.start_offset();
    Ok(all[start..start + x.elem_count()]
        .iter()
        .all(|v| v.is_finite()))
}

/// `xs W^T` for a quantized `w` (out, in) on the CPU, xs (..., in) in any float dtype; the
/// result has xs's dtype. Errors for a weight type without a CPU dot product here. None when
/// xs holds a NaN or an infinity (as `repacked_matmul`), or for a Q4_1/Q5_0/Q5_1 row of an odd
/// number of blocks (candle's dot products for those take blocks in pairs): the caller then
/// dequantizes.
pub fn quantized_matmul(w: &QTensor, xs: &Tensor) -> Result<Option<Tensor>> {
    let (n, k) = w.shape().dims2()?;
    let dims = xs.dims();
    if dims.last() != Some(&k) || !xs.device().is_cpu() {
        candle_core::bail!(
            "quantized matmul: input {:?} on {:?} against a ({n}, {k}) weight on the CPU",
            dims,
            xs.device()
        );
    }
    if !pairs_fit(w)? {
        return Ok(None);
    }
    let in_dtype = xs.dtype();
    let x = xs.to_dtype(DType::F32)?.contiguous()?;
    let m = x.elem_count() / k;
    let mut out = vec![0f32; m * n];
    {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(all)) = &*storage else {
            candle_core::bail!("quantized matmul: the input is not f32 CPU memory");
        };
        let lhs = &all[layout.start_offset()..layout.start_offset() + m * k];
        if !lhs.iter().all(|v| v.is_finite()) {
            return Ok(None);
        }
        let data = w.data()?;
        match w.dtype() {
            GgmlDType::Q4_0 => run::<BlockQ4_0>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q4_1 => run::<BlockQ4_1>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q5_0 => run::<BlockQ5_0>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q5_1 => run::<BlockQ5_1>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q8_0 => run::<BlockQ8_0>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q2K => run::<BlockQ2K>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q3K => run::<BlockQ3K>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q4K => run::<BlockQ4K>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q5K => run::<BlockQ5K>((m, k, n), lhs, &data, &mut out)?,
            GgmlDType::Q6K => run::<BlockQ6K>((m, k, n), lhs, &data, &mut out)?,
            other => candle_core::bail!("quantized matmul: no CPU dot product for {other:?}"),
        }
    }
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = n;
    }
    Ok(Some(
        Tensor::from_vec(out, out_dims, xs.device())?.to_dtype(in_dtype)?,
    ))
}

/// candle's k_quants matmul over `data` read as blocks of `T`.
fn run<T: GgmlType>(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    data: &[u8],
    out: &mut [f32],
) -> Result<()> {
    if !k.is_multiple_of(T::BLCK_SIZE) {
        candle_core::bail!(
            "quantized matmul: width {k} is not a multiple of {}",
            T::BLCK_SIZE
        );
    }
    let blocks = as_blocks::<T>(data, n * k / T::BLCK_SIZE)?;
    k_quants::matmul((m, k, n), lhs, blocks, out)
}

/// The CPU storage of a `QTensor` of type `T` as its blocks. candle keeps it as a `Vec<T>` and
/// `QTensor::data` borrows those bytes; checked here for alignment and length.
fn as_blocks<T: GgmlType>(data: &[u8], count: usize) -> Result<&[T]> {
    let size = std::mem::size_of::<T>();
    if data.len() != count * size
        || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        candle_core::bail!(
            "quantized matmul: {} bytes at {:p} are not {count} aligned blocks of {size} bytes",
            data.len(),
            data.as_ptr()
        );
    }
    // SAFETY: the length and alignment are checked above, and `T` is one of candle's ggml block
    // structs (repr(C) of f16 and integer arrays, valid for any bytes) that this storage holds.
    Ok(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<T>(), count) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::platform::switches::GGUF_MATMUL_MODES;

    #[test]
    fn every_word_of_the_switch_is_a_mode_and_back() {
        assert_eq!(GGUF_MATMUL_MODES.len(), 3);
        for word in GGUF_MATMUL_MODES {
            let mode = GgufMatmul::from_word(word).unwrap();
            assert_eq!(mode.word(), *word);
        }
        assert_eq!(GgufMatmul::from_word(" Dequant"), Some(GgufMatmul::Dequant));
        for bad in ["", "q8", "dense", "quantised"] {
            assert_eq!(GgufMatmul::from_word(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_switch_reaches_the_engines() {
        use crate::engines::EngineSwitches;
        use crate::platform::switches::Switches;
        let get = |value: &'static str| {
            move |name: &str| {
                (name == "PALLAIDIUM_GGUF_MATMUL").then(|| std::ffi::OsString::from(value))
            }
        };
        for (value, want) in [
            ("", None),
            ("quantized", Some(GgufMatmul::Quantized)),
            ("REPACKED", Some(GgufMatmul::Repacked)),
            ("dequant", Some(GgufMatmul::Dequant)),
        ] {
            let s = Switches::parse(get(value)).unwrap();
            assert_eq!(
                EngineSwitches::from_switches(&s).gguf_matmul,
                want,
                "{value}"
            );
        }
        assert!(Switches::parse(get("fast")).is_err());
    }

    #[test]
    fn the_cpu_multiplies_quantized_unless_told_otherwise() {
        let cpu = Device::Cpu;
        assert_eq!(GgufMatmul::resolve(None, &cpu), GgufMatmul::Quantized);
        for mode in [
            GgufMatmul::Quantized,
            GgufMatmul::Repacked,
            GgufMatmul::Dequant,
        ] {
            assert_eq!(GgufMatmul::resolve(Some(mode), &cpu), mode);
        }
    }

    #[test]
    fn a_mismatched_input_is_an_error() {
        let w = Tensor::zeros((32, 256), DType::F32, &Device::Cpu).unwrap();
        let q = std::sync::Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
        let x = Tensor::zeros((3, 128), DType::F32, &Device::Cpu).unwrap();
        assert!(quantized_matmul(&q, &x).is_err());
        assert!(repacked_matmul(&q, &x).is_err());
        let x = Tensor::zeros((2, 3, 256), DType::F16, &Device::Cpu).unwrap();
        let y = quantized_matmul(&q, &x).unwrap().unwrap();
        assert_eq!((y.dims(), y.dtype()), (&[2, 3, 32][..], DType::F16));
        let nan = (x.to_dtype(DType::F32).unwrap() * f64::NAN).unwrap();
        assert!(quantized_matmul(&q, &nan).unwrap().is_none());
        assert!(repacked_matmul(&q, &nan).unwrap().is_none());
        // One Q5_1 block a row: candle's dot product wants pairs.
        let w = Tensor::zeros((8, 32), DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q5_1).unwrap();
        let x = Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap();
        assert!(quantized_matmul(&q, &x).unwrap().is_none());
        assert!(
            repacked_matmul(&std::sync::Arc::new(q), &x)
                .unwrap()
                .is_none()
        );
    }
}
