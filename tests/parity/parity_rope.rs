//! Rotary embedding parity (nn::rotary) with diffusers' FLUX RoPE (`FluxPosEmbed` +
//! `apply_rotary_emb(use_real=True, use_real_unbind_dim=-1)`) and transformers' Llama RoPE
//! (`LlamaRotaryEmbedding` + `apply_rotary_pos_emb`), references made by
//! tests/fixtures/make_rope.py. Relative tolerance 1e-5; a NaN or infinity fails (nn::compare).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use pallaidium::engines::nn::rotary::{MultiAxisRope, Rope1d};

use crate::parity;

const TOL: f32 = 1e-5;

fn reference() -> HashMap<String, Tensor> {
    parity::reference_tensors(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rope/reference.safetensors"),
    )
}

/// diffusers' (seq, head_dim) table holds each pair's value twice (repeat_interleave): the
/// first of each pair, (seq, head_dim / 2); the second must equal it.
fn one_per_pair(table: &Tensor) -> Tensor {
    let (s, d) = table.dims2().unwrap();
    let pairs = table.reshape((s, d / 2, 2)).unwrap();
    let first = pairs.narrow(2, 0, 1).unwrap().squeeze(2).unwrap();
    let second = pairs.narrow(2, 1, 1).unwrap().squeeze(2).unwrap();
    assert_eq!(parity::rel_diff(&second, &first), 0.0);
    first
}

fn flux() -> MultiAxisRope {
    MultiAxisRope::new(10_000.0, &[4, 6, 6]).unwrap()
}

#[test]
fn flux_rope_matches_diffusers() {
    let r = reference();
    let ids = parity::get(&r, "flux_ids");
    let distinct: std::collections::BTreeSet<u32> = ids
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(distinct.len() > 10, "the ids must not be all equal");
    let tables = flux().tables(ids).unwrap();
    let cos = one_per_pair(parity::get(&r, "flux_cos"));
    let sin = one_per_pair(parity::get(&r, "flux_sin"));
    parity::assert_close("FLUX RoPE cos", &tables.cos, &cos, TOL);
    parity::assert_close("FLUX RoPE sin", &tables.sin, &sin, TOL);
    let out = tables.apply(parity::get(&r, "flux_x")).unwrap();
    parity::assert_close("FLUX RoPE applied", &out, parity::get(&r, "flux_out"), TOL);
}

/// The comparison can fail: unrotated input, or the ids' axes in another order, are far off.
#[test]
fn flux_rope_parity_has_power() {
    let r = reference();
    let (x, want) = (parity::get(&r, "flux_x"), parity::get(&r, "flux_out"));
    let d = parity::rel_diff(x, want);
    eprintln!("FLUX RoPE: input vs diffusers' output: relative difference {d:e}");
    assert!(d > 1000.0 * TOL, "{d:e}");
    let ids = parity::get(&r, "flux_ids");
    let swapped = Tensor::cat(
        &[
            ids.narrow(1, 0, 1).unwrap(),
            ids.narrow(1, 2, 1).unwrap(),
            ids.narrow(1, 1, 1).unwrap(),
        ],
        1,
    )
    .unwrap();
    let out = flux().tables(&swapped).unwrap().apply(x).unwrap();
    let d = parity::rel_diff(&out, want);
    eprintln!("FLUX RoPE: rows and columns swapped: relative difference {d:e}");
    assert!(d > 1000.0 * TOL, "{d:e}");
}

#[test]
fn llama_rope_matches_transformers() {
    let r = reference();
    let offset = parity::get(&r, "llama_offset").to_vec1::<f32>().unwrap()[0] as usize;
    let q = parity::get(&r, "llama_q");
    let rope = Rope1d::new(8, 10_000.0).unwrap();
    let tables = rope
        .tables(offset, q.dim(2).unwrap(), &Device::Cpu)
        .unwrap();
    // transformers' tables repeat the half: cat(freqs, freqs).
    let half = |t: &Tensor| t.narrow(1, 0, 4).unwrap();
    for (name, ours) in [("cos", &tables.cos), ("sin", &tables.sin)] {
        let theirs = parity::get(&r, &format!("llama_{name}"));
        assert_eq!(
            parity::rel_diff(&theirs.narrow(1, 4, 4).unwrap(), &half(theirs)),
            0.0
        );
        parity::assert_close(&format!("Llama RoPE {name}"), ours, &half(theirs), TOL);
    }
    let out = tables.apply(q).unwrap();
    let want = parity::get(&r, "llama_out");
    parity::assert_close("Llama RoPE applied", &out, want, TOL);
    // Power: the same rotation from position 0 is far off.
    let at0 = rope.tables(0, q.dim(2).unwrap(), &Device::Cpu).unwrap();
    let d = parity::rel_diff(&at0.apply(q).unwrap(), want);
    eprintln!("Llama RoPE from position 0 instead of {offset}: relative difference {d:e}");
    assert!(d > 1000.0 * TOL, "{d:e}");
}
