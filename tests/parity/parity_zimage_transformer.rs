//! Z-Image transformer parity (engines::zimage::transformer) with diffusers 0.42.1's
//! ZImageTransformer2DModel on the tiny fixture of tests/fixtures/make_zimage.py: one forward
//! step as ZImagePipeline calls it (a list of (16, 1, h, w) latents, t = (1000 - t) / 1000, a
//! list of caption features of different lengths, so diffusers pads and masks the batch). f32
//! on the CPU; relative tolerance 1e-4 (max |diff| / max |reference|); a NaN or infinity fails
//! (nn::compare). The Q8_0 and Q4_0 GGUFs likewise against diffusers' single-file loader, their
//! matrices dequantized with diffusers' arithmetic (`GgufMatmul::Dequant`), and again in the
//! CPU's default 8-bit mode (`Quantized`) with its own tolerance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::flux::transformer::GgufMatmul;
use pallaidium::engines::zimage::transformer::ZImageTransformer;

use crate::parity;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zimage-tiny")
}

/// GGUF matrices dequantized with diffusers' arithmetic.
fn load(gguf: Option<&Path>, dtype: DType) -> ZImageTransformer {
    load_as(gguf, dtype, GgufMatmul::Dequant)
}

fn load_as(gguf: Option<&Path>, dtype: DType, matmul: GgufMatmul) -> ZImageTransformer {
    let switches = EngineSwitches {
        gguf_matmul: Some(matmul),
        ..Default::default()
    };
    ZImageTransformer::load(
        &fixture().join("transformer"),
        gguf,
        &Device::Cpu,
        dtype,
        switches,
    )
    .unwrap()
}

/// The reference's items `x_i`, `cap_feats_i`, `output_i`, i = 0.. while present.
fn items(r: &HashMap<String, Tensor>, prefix: &str) -> Vec<Tensor> {
    (0..)
        .map_while(|i| r.get(&format!("{prefix}_{i}")).cloned())
        .collect()
}

/// Our outputs against the reference's, item by item.
fn check(what: &str, model: &ZImageTransformer, r: &HashMap<String, Tensor>, tol: f32) {
    let latents = items(r, "x");
    let caps = items(r, "cap_feats");
    let want = items(r, "output");
    assert!(
        latents.len() >= 2 && want.len() == latents.len(),
        "{what}: a batch"
    );
    let ours = model.forward(&latents, parity::get(r, "t"), &caps).unwrap();
    assert_eq!(ours.len(), want.len());
    for (i, (o, w)) in ours.iter().zip(&want).enumerate() {
        assert_eq!(o.dtype(), model.dtype());
        let o = o.to_dtype(DType::F32).unwrap();
        parity::assert_close(&format!("{what}, image {i}"), &o, w, tol);
    }
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    parity::reference_tensors(&fixture().join(format!("reference/{name}.safetensors")))
}

#[test]
fn zimage_transformer_step_matches_diffusers() {
    let model = load(None, DType::F32);
    assert_eq!(model.config().dim, 32);
    check(
        "zimage-tiny transformer step",
        &model,
        &reference("transformer_step"),
        parity::TENSOR_REL_TOL,
    );
}

/// The original-named GGUFs (Q8_0, Q4_0; one-row and odd-width tensors F32) against diffusers'
/// `from_single_file` with GGUFQuantizationConfig(compute_dtype=float32).
#[test]
fn zimage_transformer_ggufs_match_diffusers_from_single_file() {
    for ty in ["Q8_0", "Q4_0"] {
        let gguf = fixture().join(format!("gguf/transformer-{ty}.gguf"));
        let model = load(Some(&gguf), DType::F32);
        check(
            &format!("zimage-tiny GGUF {ty} step"),
            &model,
            &reference(&format!("gguf_step_{ty}")),
            parity::TENSOR_REL_TOL,
        );
    }
}

/// Each image alone gives what it gives in the batch (diffusers masks the batch's padding; we
/// batch only captions of one padded length), and a cancelled token stops the forward.
#[test]
fn zimage_transformer_items_alone_match_the_batch_and_cancel_stops() {
    let model = load(None, DType::F32);
    let r = reference("transformer_step");
    let (latents, caps, want) = (items(&r, "x"), items(&r, "cap_feats"), items(&r, "output"));
    let t = parity::get(&r, "t");
    for i in 0..latents.len() {
        let ti = t.narrow(0, i, 1).unwrap();
        let one = model.forward(&latents[i..=i], &ti, &caps[i..=i]).unwrap();
        parity::assert_close(
            &format!("image {i} alone"),
            &one[0],
            &want[i],
            parity::TENSOR_REL_TOL,
        );
    }
    // Two items with one caption length run as one batch: each as alone.
    let t0 = t.narrow(0, 0, 1).unwrap();
    let pair = model
        .forward(
            &[latents[0].clone(), latents[0].clone()],
            &Tensor::cat(&[&t0, &t0], 0).unwrap(),
            &[caps[0].clone(), caps[0].clone()],
        )
        .unwrap();
    for (k, o) in pair.iter().enumerate() {
        parity::assert_close(
            &format!("batched copy {k}"),
            o,
            &want[0],
            parity::TENSOR_REL_TOL,
        );
    }
    let cancel = pallaidium::engines::CancelToken::new();
    cancel.cancel();
    let e = model
        .forward_watched(&latents, t, &caps, &cancel)
        .unwrap_err();
    assert!(matches!(e, pallaidium::error::Error::Cancelled), "{e}");
}

/// bf16 stays within its precision of the f32 reference: a guard against a dtype mistake, not
/// parity (diffusers in bf16 was not recorded).
#[test]
fn zimage_transformer_runs_in_bf16_near_the_f32_reference() {
    let model = load(None, DType::BF16);
    check(
        "zimage-tiny bf16 step",
        &model,
        &reference("transformer_step"),
        5e-2,
    );
}

/// The 8-bit modes' tolerance against diffusers' GGUF step (max |diff| / max |reference|).
const EIGHT_BIT_REL_TOL: f32 = 5e-2;

/// The GGUFs in the CPU's default `Quantized` mode stay within EIGHT_BIT_REL_TOL of diffusers'
/// GGUF step, which half the timestep moves by more than 3x that.
#[test]
fn zimage_transformer_ggufs_in_the_quantized_mode_stay_near_diffusers() {
    for ty in ["Q8_0", "Q4_0"] {
        let gguf = fixture().join(format!("gguf/transformer-{ty}.gguf"));
        let model = load_as(Some(&gguf), DType::F32, GgufMatmul::Quantized);
        let r = reference(&format!("gguf_step_{ty}"));
        let what = format!("zimage-tiny GGUF {ty} step, Quantized");
        check(&what, &model, &r, EIGHT_BIT_REL_TOL);
        let (latents, caps) = (items(&r, "x"), items(&r, "cap_feats"));
        let t = (parity::get(&r, "t") * 0.5).unwrap();
        let moved = model.forward(&latents, &t, &caps).unwrap();
        let want = items(&r, "output");
        let d = parity::rel_diff(&moved[0], &want[0]);
        assert!(d > 3.0 * EIGHT_BIT_REL_TOL, "{what}: t/2 moves {d}");
    }
}
