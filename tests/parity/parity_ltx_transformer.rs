//! LTX-Video's transformer against diffusers' LTXVideoTransformer3DModel on
//! tests/fixtures/ltx-transformer-tiny (make_ltx.py): 2 samples (the second prompt padded) over a
//! 2x3x5 latent grid with the pipeline's rope_interpolation_scale, one timestep per sample and
//! one per token, each within 2e-5 relative of diffusers' f32 output; the RoPE tables equal
//! diffusers'; the timesteps and the text mask move the output far beyond the tolerance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::ltx::transformer::rope::rope_tables;
use pallaidium::engines::ltx::transformer::{LtxInputs, LtxTransformer};
use pallaidium::engines::nn::compare::max_rel_diff;

use crate::parity::reference_tensors;

const REL_TOL: f32 = 2e-5;
const GRID: [usize; 3] = [2, 3, 5];
const SCALE: [f32; 3] = [8.0 / 25.0, 32.0, 32.0];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ltx-transformer-tiny")
}

#[test]
fn ltx_transformer_matches_diffusers() {
    let r = reference_tensors(&dir().join("reference.safetensors"));
    let model = LtxTransformer::load(
        &dir().join("transformer"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap();
    let run = |t: &Tensor, mask: &Tensor| {
        let inp = LtxInputs {
            text: &r["text"],
            mask: Some(mask),
            timestep: t,
            grid: GRID,
            rope_scale: Some(SCALE),
        };
        model.forward(&r["hidden"], &inp).unwrap()
    };
    let out = run(&r["t"], &r["mask"]);
    let rel = max_rel_diff(&out, &r["out"]).unwrap();
    eprintln!("ltx transformer: max rel diff {rel:.2e}");
    assert!(rel <= REL_TOL, "rel diff {rel}");
    let out_tok = run(&r["t_tok"], &r["mask"]);
    let rel = max_rel_diff(&out_tok, &r["out_tok"]).unwrap();
    eprintln!("ltx transformer, per-token timesteps: max rel diff {rel:.2e}");
    assert!(rel <= REL_TOL, "per-token rel diff {rel}");
    let moved = max_rel_diff(&out_tok, &r["out"]).unwrap();
    assert!(moved > 0.05, "the timesteps moved the output by {moved}");
    // The first prompt cut to 3 tokens: diffusers' output for that mask, and far from the full one.
    let mut cut: Vec<Vec<f32>> = r["mask"].to_vec2().unwrap();
    for v in &mut cut[0][3..] {
        *v = 0.0;
    }
    let cut = Tensor::new(cut, &Device::Cpu).unwrap();
    let out_cut = run(&r["t"], &cut);
    let rel = max_rel_diff(&out_cut, &r["out_mask"]).unwrap();
    assert!(rel <= REL_TOL, "cut mask rel diff {rel}");
    let moved = max_rel_diff(&out_cut, &r["out"]).unwrap();
    assert!(moved > 0.05, "the mask moved the output by {moved}");
}

#[test]
fn ltx_rope_tables_match_diffusers() {
    let r = reference_tensors(&dir().join("reference.safetensors"));
    let t = rope_tables(16, GRID, Some(SCALE), [1, 1], &Device::Cpu).unwrap();
    // diffusers' cos/sin repeat each pair's value twice over the inner dim.
    let twice = |x: &Tensor| {
        let (s, p) = x.dims2().unwrap();
        x.unsqueeze(2)
            .unwrap()
            .repeat((1, 1, 2))
            .unwrap()
            .reshape((s, 2 * p))
            .unwrap()
    };
    for (ours, name) in [(twice(&t.cos), "rope_cos"), (twice(&t.sin), "rope_sin")] {
        let want = &r[name];
        let d = (ours - want).unwrap().abs().unwrap().max_all().unwrap();
        let d: f32 = d.to_scalar().unwrap();
        assert!(d <= 1e-6, "{name}: max |diff| {d}");
    }
}
