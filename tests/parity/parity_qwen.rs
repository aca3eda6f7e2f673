//! Qwen3 text encoder parity (nn::text::qwen) with transformers' Qwen3Model on
//! tests/fixtures/qwen3-tiny (made by make_qwen3.py): grouped-query attention (4 heads, 2
//! key/value heads), head_dim 24 apart from hidden 64 / 4 heads, q/k RMSNorm, rope_theta 1e6, 3
//! layers; a batch of two prompts (11 and 6 ids) right-padded to 16 with the attention mask, as
//! Z-Image's pipeline encodes them. Every hidden state is compared at every position (the pads'
//! rows too), and what diffusers' ZImagePipeline._encode_prompt keeps (`hidden_states[-2]` at the
//! real tokens). f32 on the CPU; relative tolerance 1e-4; a NaN or infinity fails (nn::compare).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::nn::text::qwen::{self, QwenEncoder, ZIMAGE_HIDDEN_STATE};
use pallaidium::engines::nn::text::qwen_config::QwenConfig;
use pallaidium::engines::nn::weights::Weights;

use crate::parity;

const TOL: f32 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tiny")
}

fn reference() -> HashMap<String, Tensor> {
    parity::reference_tensors(&fixture().join("reference.safetensors"))
}

fn load(dtype: DType) -> QwenEncoder {
    QwenEncoder::load(&fixture().join("text_encoder"), &Device::Cpu, dtype).unwrap()
}

/// The fixture's weights under another config (the power checks).
fn load_with_config(config: QwenConfig) -> QwenEncoder {
    let dir = fixture().join("text_encoder");
    let weights = Weights::open(&dir, &Device::Cpu, DType::F32, false, Default::default()).unwrap();
    weights
        .build("Qwen3 text encoder", |vb| QwenEncoder::new(vb, config))
        .unwrap()
}

fn ids(r: &HashMap<String, Tensor>, key: &str) -> Tensor {
    parity::get(r, key).to_dtype(DType::U32).unwrap()
}

#[test]
fn qwen3_hidden_states_match_transformers() {
    let encoder = load(DType::F32);
    let c = encoder.config();
    assert!(c.num_key_value_heads < c.num_attention_heads);
    assert_ne!(c.head_dim * c.num_attention_heads, c.hidden_size);
    let r = reference();
    let (x, mask) = (ids(&r, "ids"), parity::get(&r, "mask"));
    let states = c.num_hidden_layers + 1;
    for i in 0..states {
        let ours = encoder.encode(&x, Some(mask), i as isize).unwrap();
        let want = parity::get(&r, &format!("hidden_states_{i}"));
        parity::assert_close(&format!("Qwen3 hidden_states[{i}]"), &ours, want, TOL);
        // Python's negative index names the same state.
        let negative = encoder
            .encode(&x, Some(mask), i as isize - states as isize)
            .unwrap();
        assert_eq!(parity::rel_diff(&negative, &ours), 0.0);
    }
}

#[test]
fn qwen3_gives_what_zimage_pipeline_keeps() {
    let encoder = load(DType::F32);
    let r = reference();
    let mask = parity::get(&r, "mask");
    let hidden = encoder
        .encode(&ids(&r, "ids"), Some(mask), ZIMAGE_HIDDEN_STATE)
        .unwrap();
    let rows = qwen::real_tokens(&hidden, mask).unwrap();
    assert_eq!(rows.len(), 2);
    for (i, ours) in rows.iter().enumerate() {
        let want = parity::get(&r, &format!("pipeline_embeds_{i}"));
        assert_eq!(ours.dims(), want.dims());
        parity::assert_close(
            &format!("ZImagePipeline prompt_embeds[{i}]"),
            ours,
            want,
            TOL,
        );
    }
    assert_eq!(rows[0].dim(0).unwrap(), 11);
    assert_eq!(rows[1].dim(0).unwrap(), 6);
}

/// The comparison can fail: a changed id, a neighbouring layer, another rope_theta and a missing
/// mask each move the output far more than the tolerance.
#[test]
fn qwen3_parity_has_power() {
    let encoder = load(DType::F32);
    let r = reference();
    let (x, mask) = (ids(&r, "ids"), parity::get(&r, "mask"));
    let ours = encoder.encode(&x, Some(mask), ZIMAGE_HIDDEN_STATE).unwrap();
    let check = |what: &str, d: f32| {
        eprintln!("Qwen3 {what}: relative difference {d:e}");
        assert!(d > 100.0 * TOL, "{what}: {d:e}");
    };
    let changed = parity::get(&r, "changed_hidden_states_2");
    check("one id changed", parity::rel_diff(&ours, changed));
    for other in [1, 3] {
        let want = parity::get(&r, &format!("hidden_states_{other}"));
        check(
            &format!("hidden_states[-2] vs [{other}]"),
            parity::rel_diff(&ours, want),
        );
    }
    let mut config = encoder.config().clone();
    config.rope_theta = 10_000.0;
    let other_theta = load_with_config(config)
        .encode(&x, Some(mask), ZIMAGE_HIDDEN_STATE)
        .unwrap();
    check(
        "rope_theta 1e4 vs 1e6",
        parity::rel_diff(&other_theta, &ours),
    );
    // Causal attention keeps the real tokens from the pads after them: without the mask only the
    // pads' own rows change (they then attend to each other).
    let unmasked = encoder.encode(&x, None, ZIMAGE_HIDDEN_STATE).unwrap();
    check("no attention mask", parity::rel_diff(&unmasked, &ours));
}

/// An f16 request on the CPU computes in f32, so it matches the f32 reference.
#[test]
fn qwen3_in_an_f16_run_on_the_cpu_is_f32() {
    let encoder = load(DType::F16);
    assert_eq!(encoder.dtype(), DType::F32);
    let r = reference();
    let ours = encoder
        .encode(&ids(&r, "ids"), Some(parity::get(&r, "mask")), -2)
        .unwrap();
    assert_eq!(ours.dtype(), DType::F32);
    parity::assert_close(
        "Qwen3 (f16 run) hidden_states[-2]",
        &ours,
        parity::get(&r, "hidden_states_2"),
        TOL,
    );
}
