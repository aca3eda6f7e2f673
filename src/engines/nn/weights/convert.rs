//! Stored weight values (little-endian f32, f16, bf16) converted to the dtype a run holds them
//! in, over rayon's threads for large pieces: the CPU loader's copies and the GPU staging.

use candle_core::DType;

/// Pieces of at least this many converted bytes are converted over the threads.
pub(super) const PARALLEL_BYTES: usize = 128 << 10;

/// Decodes little-endian `from` values into f32 (F32, F16, BF16); false for other dtypes.
fn decode_f32(src: &[u8], from: DType, out: &mut [f32]) -> bool {
    match from {
        DType::F32 => {
            for (o, s) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        DType::F16 => {
            for (o, s) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, s) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        }
        _ => return false,
    }
    true
}

/// The values a staged element type is made from.
pub(super) trait Staged: Copy + Send + Sync {
    const DTYPE: DType;
    /// Fills `out` from the f32 values `src` (same length).
    fn from_f32s(src: &[f32], out: &mut [Self]);
}

impl Staged for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f32s(src: &[f32], out: &mut [Self]) {
        out.copy_from_slice(src);
    }
}

impl Staged for half::f16 {
    const DTYPE: DType = DType::F16;
    fn from_f32s(src: &[f32], out: &mut [Self]) {
        use half::slice::HalfFloatSliceExt;
        out.convert_from_f32_slice(src);
    }
}

impl Staged for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn from_f32s(src: &[f32], out: &mut [Self]) {
        use half::slice::HalfFloatSliceExt;
        out.convert_from_f32_slice(src);
    }
}

/// Converts `src` (stored as `from`) into `out`, rounding as candle's device casts do (to
/// nearest, ties to even); same-dtype values are copied bit for bit. False for a dtype this does
/// not handle.
pub(super) fn convert<T: Staged>(src: &[u8], from: DType, out: &mut [T]) -> bool {
    if from == T::DTYPE {
        // SAFETY: T is a plain value type of `from`'s size; `out` is exclusively borrowed.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                out.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(out),
            )
        };
        bytes.copy_from_slice(&src[..bytes.len()]);
        return true;
    }
    let size = from.size_in_bytes();
    let mut block = [0f32; 1024];
    for (o, s) in out
        .chunks_mut(block.len())
        .zip(src.chunks(block.len() * size))
    {
        let b = &mut block[..o.len()];
        if !decode_f32(s, from, b) {
            return false;
        }
        T::from_f32s(b, o);
    }
    true
}

/// [`convert`] over rayon's threads unless the piece is small: one thread reads a few GB/s,
/// which made a single-threaded conversion of a 4 GB f32 checkpoint most of a GPU load.
pub(super) fn convert_parallel<T: Staged>(src: &[u8], from: DType, out: &mut [T]) -> bool {
    use rayon::prelude::*;
    if std::mem::size_of_val(out) < PARALLEL_BYTES {
        return convert(src, from, out);
    }
    let size = from.size_in_bytes();
    let chunk = out
        .len()
        .div_ceil(rayon::current_num_threads())
        .max(1 << 14);
    out.par_chunks_mut(chunk).enumerate().all(|(i, dst)| {
        let at = i * chunk * size;
        convert(&src[at..at + dst.len() * size], from, dst)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bytes_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn conversions_round_as_the_device_casts_and_copies_are_exact() {
        let n = PARALLEL_BYTES / 2 + 1029;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin() * 70000.0).collect();
        let src = bytes_f32(&values);
        let mut half = vec![half::f16::ZERO; n];
        assert!(convert_parallel(&src, DType::F32, &mut half));
        let want: Vec<half::f16> = values.iter().map(|x| half::f16::from_f32(*x)).collect();
        assert_eq!(half, want);
        let mut brain = vec![half::bf16::ZERO; n];
        assert!(convert_parallel(&src, DType::F32, &mut brain));
        assert!(
            brain
                .iter()
                .zip(&values)
                .all(|(b, v)| *b == half::bf16::from_f32(*v))
        );
        let mut same = vec![0f32; n];
        assert!(convert_parallel(&src, DType::F32, &mut same));
        assert_eq!(same, values);
        // f16 stored, f32 wanted: widened exactly; f16 to f16: bit for bit.
        let src16: Vec<u8> = want.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut wide = vec![0f32; n];
        assert!(convert_parallel(&src16, DType::F16, &mut wide));
        assert!(wide.iter().zip(&want).all(|(w, h)| *w == h.to_f32()));
        let mut again = vec![half::f16::ZERO; n];
        assert!(convert(&src16, DType::F16, &mut again));
        assert_eq!(again, want);
        assert!(!convert(&src, DType::U8, &mut wide));
    }
}
