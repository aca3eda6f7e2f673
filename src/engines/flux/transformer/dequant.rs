//! GGUF blocks dequantized with diffusers' arithmetic (diffusers/quantizers/gguf/utils.py, city96's
//! torch port of gguf-py): the scales are f16 and every product, sum and difference is taken in
//! f16, as torch computes `f16_tensor * uint8_tensor` (in f32, rounded to f16 once). ggml and
//! gguf-py compute the same formulas in f32, which differs by up to an f16 ulp per weight and
//! moves a layer's output by a few 1e-4 relative; diffusers' GGUF models (the parity reference)
//! multiply by these f16 values. The layouts follow diffusers' reshapes (ggml's block layouts).

use half::f16;

use crate::engines::nn::kernels::threads::par_chunks_mut;

/// Values per super-block of the k-quants.
const QK_K: usize = 256;

/// f16 product, as torch multiplies a half tensor.
fn mul(a: f16, b: f32) -> f16 {
    f16::from_f32(a.to_f32() * b)
}

fn add(a: f16, b: f16) -> f16 {
    f16::from_f32(a.to_f32() + b.to_f32())
}

fn sub(a: f16, b: f16) -> f16 {
    f16::from_f32(a.to_f32() - b.to_f32())
}

fn half_at(block: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([block[at], block[at + 1]])
}

/// (block values, block bytes) of the types this dequantizes, by gguf-py's name.
pub fn layout(type_name: &str) -> Option<(usize, usize)> {
    Some(match type_name {
        "Q4_0" => (32, 18),
        "Q4_1" => (32, 20),
        "Q5_0" => (32, 22),
        "Q5_1" => (32, 24),
        "Q8_0" => (32, 34),
        "Q2_K" => (QK_K, 84),
        "Q3_K" => (QK_K, 110),
        "Q4_K" => (QK_K, 144),
        "Q5_K" => (QK_K, 176),
        "Q6_K" => (QK_K, 210),
        _ => return None,
    })
}

/// `data` (whole blocks of `type_name`) into `out`, one value per element, on all cores.
/// None for a type diffusers' arithmetic is not written here for, or sizes that disagree.
pub fn dequantize(type_name: &str, data: &[u8], out: &mut [f32]) -> Option<()> {
    let (values, bytes) = layout(type_name)?;
    let block_fn: fn(&[u8], &mut [f32]) = match type_name {
        "Q4_0" => q4_0,
        "Q4_1" => q4_1,
        "Q5_0" => q5_0,
        "Q5_1" => q5_1,
        "Q8_0" => q8_0,
        "Q2_K" => q2_k,
        "Q3_K" => q3_k,
        "Q4_K" => q4_k,
        "Q5_K" => q5_k,
        _ => q6_k,
    };
    if !data.len().is_multiple_of(bytes) || data.len() / bytes * values != out.len() {
        return None;
    }
    // Chunks of whole blocks, large enough to be worth a thread.
    let per_chunk = (1 << 16) / values * values;
    par_chunks_mut(out, per_chunk, |i, chunk| {
        let first = i * per_chunk / values;
        for (j, values_out) in chunk.chunks_mut(values).enumerate() {
            let b = first + j;
            block_fn(&data[b * bytes..(b + 1) * bytes], values_out);
        }
    });
    Some(())
}

/// The 32 4-bit values of a 16-byte run: low nibbles first, then high nibbles.
fn nibble(qs: &[u8], e: usize) -> u8 {
    (qs[e % 16] >> (4 * (e / 16))) & 0x0F
}

/// Bit `e` of a little-endian u32 (Q5's fifth bits).
fn bit(qh: &[u8], e: usize) -> u8 {
    (qh[e / 8] >> (e % 8)) & 1
}

fn q8_0(b: &[u8], out: &mut [f32]) {
    let d = half_at(b, 0);
    for (e, o) in out.iter_mut().enumerate() {
        *o = mul(d, f32::from(b[2 + e] as i8)).to_f32();
    }
}

fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = half_at(b, 0);
    for (e, o) in out.iter_mut().enumerate() {
        let q = nibble(&b[2..], e) as i8 - 8;
        *o = mul(d, f32::from(q)).to_f32();
    }
}

fn q4_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    for (e, o) in out.iter_mut().enumerate() {
        *o = add(mul(d, f32::from(nibble(&b[4..], e))), m).to_f32();
    }
}

fn q5_0(b: &[u8], out: &mut [f32]) {
    let d = half_at(b, 0);
    for (e, o) in out.iter_mut().enumerate() {
        let q = (nibble(&b[6..], e) | (bit(&b[2..6], e) << 4)) as i8 - 16;
        *o = mul(d, f32::from(q)).to_f32();
    }
}

fn q5_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    for (e, o) in out.iter_mut().enumerate() {
        let q = nibble(&b[8..], e) | (bit(&b[4..8], e) << 4);
        *o = add(mul(d, f32::from(q)), m).to_f32();
    }
}

/// Two bits `k` (0..4) of the k-quants' `qs`: element e = (h * 4 + k) * 32 + l reads
/// `qs[h * 32 + l] >> 2k` (Q2_K, Q3_K).
fn crumb(qs: &[u8], e: usize) -> u8 {
    let (h, k, l) = (e / 128, (e / 32) % 4, e % 32);
    (qs[h * 32 + l] >> (2 * k)) & 3
}

fn q2_k(b: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (half_at(b, 80), half_at(b, 82));
    for (e, o) in out.iter_mut().enumerate() {
        let s = scales[e / 16];
        let dl = mul(d, f32::from(s & 0x0F));
        let ml = mul(dmin, f32::from(s >> 4));
        *o = sub(mul(dl, f32::from(crumb(qs, e))), ml).to_f32();
    }
}

fn q3_k(b: &[u8], out: &mut [f32]) {
    let (hmask, qs, scales) = (&b[..32], &b[32..96], &b[96..108]);
    let d = half_at(b, 108);
    for (e, o) in out.iter_mut().enumerate() {
        let i = e / 16;
        let low = (scales[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        let scale = (low | (high << 4)) as i8 - 32;
        let dl = mul(d, f32::from(scale));
        let high_bit = ((hmask[e % 32] >> (e / 32)) & 1) ^ 1;
        let q = crumb(qs, e) as i8 - ((high_bit << 2) as i8);
        *o = mul(dl, f32::from(q)).to_f32();
    }
}

/// Q4_K/Q5_K's 6-bit scale and min of sub-block `s` (diffusers' `get_scale_min`).
fn scale_min(scales: &[u8], s: usize) -> (u8, u8) {
    let (d, m, md) = (&scales[..4], &scales[4..8], &scales[8..12]);
    if s < 4 {
        (d[s] & 0x3F, m[s] & 0x3F)
    } else {
        let j = s - 4;
        (
            (md[j] & 0x0F) | ((d[j] >> 2) & 0x30),
            (md[j] >> 4) | ((m[j] >> 2) & 0x30),
        )
    }
}

/// The low 4 bits of Q4_K/Q5_K element e: sub-block s = e / 32 = h * 2 + k reads
/// `qs[h * 32 + l] >> 4k`.
fn k_nibble(qs: &[u8], e: usize) -> u8 {
    let (s, l) = (e / 32, e % 32);
    (qs[(s / 2) * 32 + l] >> (4 * (s % 2))) & 0x0F
}

fn q4_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (e, o) in out.iter_mut().enumerate() {
        let (sc, m) = scale_min(scales, e / 32);
        let (ds, dm) = (mul(d, f32::from(sc)), mul(dmin, f32::from(m)));
        *o = sub(mul(ds, f32::from(k_nibble(qs, e))), dm).to_f32();
    }
}

fn q5_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (e, o) in out.iter_mut().enumerate() {
        let s = e / 32;
        let (sc, m) = scale_min(scales, s);
        let (ds, dm) = (mul(d, f32::from(sc)), mul(dmin, f32::from(m)));
        let q = k_nibble(qs, e) | (((qh[e % 32] >> s) & 1) << 4);
        *o = sub(mul(ds, f32::from(q)), dm).to_f32();
    }
}

fn q6_k(b: &[u8], out: &mut [f32]) {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = half_at(b, 208);
    for (e, o) in out.iter_mut().enumerate() {
        let ds = mul(d, f32::from(scales[e / 16] as i8));
        // ql: (h * 2 + k) * 64 + l reads ql[h * 64 + l] >> 4k; qh: (h * 4 + k) * 32 + l reads
        // qh[h * 32 + l] >> 2k.
        let (h, k, l) = (e / 128, (e / 64) % 2, e % 64);
        let low = (ql[h * 64 + l] >> (4 * k)) & 0x0F;
        let high = crumb(qh, e);
        let q = (low | (high << 4)) as i8 - 32;
        *o = mul(ds, f32::from(q)).to_f32();
    }
}

#[cfg(test)]
#[path = "dequant_tests.rs"]
mod tests;
