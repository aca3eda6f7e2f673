//! One tensor's stored bytes to f32 values, for every supported type; bit for bit what gguf-py's
//! `gguf.quants.dequantize` gives (tests/parity/parity_gguf.rs checks each type).
//!
//! The quantized types use candle's block decoders (`k_quants::GgmlType::to_float`): they compute
//! each value with the same f32 operations in the same order as gguf-py's numpy code (and
//! ggml's C), which the fixture test confirms for every type; F16 too. F32 and BF16 are decoded
//! here (candle's BF16 conversion quiets NaN payloads, which gguf-py keeps).

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, GgmlType as Block,
};

use super::ggml_type::GgmlType;

/// Tensors of at least this many values are decoded over rayon's threads.
const PARALLEL_VALUES: usize = 1 << 16;

/// Decodes `data` (whole blocks of `ty`) into `out` (block × blocks values); false for a type
/// this does not decode.
pub fn to_f32(ty: GgmlType, data: &[u8], out: &mut [f32]) -> bool {
    use rayon::prelude::*;
    if !ty.is_supported() || data.len() / ty.bytes * ty.block != out.len() {
        return false;
    }
    if out.len() < PARALLEL_VALUES {
        decode(ty, data, out);
        return true;
    }
    // Pieces of whole blocks, a few per thread.
    let blocks = (out.len() / ty.block).div_ceil(4 * rayon::current_num_threads());
    let values = blocks.max(1) * ty.block;
    out.par_chunks_mut(values)
        .zip(data.par_chunks(blocks.max(1) * ty.bytes))
        .for_each(|(o, d)| decode(ty, d, o));
    true
}

fn decode(ty: GgmlType, data: &[u8], out: &mut [f32]) {
    match ty.name {
        "F32" if cfg!(target_endian = "little") => {
            let n = out.len().min(data.len() / 4);
            // SAFETY: `out` has room for n f32s, `data` holds 4n bytes; a byte copy needs no
            // alignment, and the stored little-endian f32s are this target's own.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), out.as_mut_ptr().cast::<u8>(), 4 * n);
            }
        }
        "F32" => {
            for (o, s) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        // candle's (half's slice conversion, vectorised where the CPU can): exact for every
        // value but a signalling NaN, which it quiets and numpy does not.
        "F16" => blocks::<half::f16>(data, out),
        // gguf-py: the 16 bits become the top half of an f32 (NaN payloads kept as they are).
        "BF16" => {
            for (o, s) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
            }
        }
        "Q4_0" => blocks::<BlockQ4_0>(data, out),
        "Q4_1" => blocks::<BlockQ4_1>(data, out),
        "Q5_0" => blocks::<BlockQ5_0>(data, out),
        "Q5_1" => blocks::<BlockQ5_1>(data, out),
        "Q8_0" => blocks::<BlockQ8_0>(data, out),
        "Q2_K" => blocks::<BlockQ2K>(data, out),
        "Q3_K" => blocks::<BlockQ3K>(data, out),
        "Q4_K" => blocks::<BlockQ4K>(data, out),
        "Q5_K" => blocks::<BlockQ5K>(data, out),
        "Q6_K" => blocks::<BlockQ6K>(data, out),
        _ => {}
    }
}

/// candle's decoder of block type `B` over `data`, realigned first when the bytes are not
/// aligned for `B` (a file may declare any power-of-two alignment, 1 included). candle's f16
/// "block" is one little-endian value, like every block here (GGUF is little-endian).
fn blocks<B: Block>(data: &[u8], out: &mut [f32]) {
    let size = std::mem::size_of::<B>();
    let n = data.len() / size;
    if (data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<B>()) {
        // SAFETY: candle's blocks are `repr(C)` structs of f16, u8, i8 fields and arrays of
        // them (or one f16), valid for any bit pattern; `data` holds `n` of them and is aligned for `B`.
        let xs = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<B>(), n) };
        B::to_float(xs, out);
    } else {
        let aligned = super::aligned_copy(&data[..n * size]);
        // SAFETY: as above, over an 8-byte aligned copy (no block needs more).
        let xs = unsafe { std::slice::from_raw_parts(aligned.as_ptr().cast::<B>(), n) };
        B::to_float(xs, out);
    }
}
