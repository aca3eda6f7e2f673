//! T5 encoder parity (nn::text::t5) with transformers' T5EncoderModel on tests/fixtures/t5-tiny
//! (made by make_t5.py): a T5 v1.1-style encoder as FLUX's text_encoder_2 (gated-gelu, untied),
//! 8 relative position buckets with max_distance 12 and 40 ids, so the log-scaled buckets and
//! their clamp are used; random weights drawn large enough that every part moves the output.
//! f32 on the CPU; relative tolerance 1e-4; a NaN or infinity fails (nn::compare).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::nn::text::t5::{self, T5Encoder};
use pallaidium::engines::nn::weights::Weights;

use crate::parity;

const TOL: f32 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/t5-tiny")
}

fn load(dtype: DType) -> T5Encoder {
    let dir = fixture();
    let config = t5::load_config(&dir.join("config.json")).unwrap();
    let weights = Weights::open(&dir, &Device::Cpu, dtype, false, Default::default()).unwrap();
    weights
        .build("T5 encoder", |vb| T5Encoder::new(vb, &config))
        .unwrap()
}

fn ids(reference: &std::collections::HashMap<String, Tensor>, case: &str) -> Vec<u32> {
    parity::get(reference, &format!("ids_{case}"))
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect()
}

#[test]
fn t5_v1_1_encoder_matches_transformers() {
    let encoder = load(DType::F32);
    let config = encoder.config();
    assert!(config.feed_forward_proj.gated && !config.tie_word_embeddings);
    assert!(config.relative_attention_max_distance < 40);
    let reference = parity::reference_tensors(&fixture().join("reference.safetensors"));
    for case in ["long", "changed", "short"] {
        let ours = encoder.encode(&ids(&reference, case)).unwrap();
        let want = parity::get(&reference, &format!("last_hidden_state_{case}"));
        parity::assert_close(&format!("T5 last_hidden_state ({case})"), &ours, want, TOL);
    }
}

/// The comparison can fail: one id changed (position 5 of 40) moves the reference far more than
/// the tolerance, at every position, not only the changed one.
#[test]
fn t5_parity_has_power() {
    let encoder = load(DType::F32);
    let reference = parity::reference_tensors(&fixture().join("reference.safetensors"));
    let ours = encoder.encode(&ids(&reference, "long")).unwrap();
    let other = parity::get(&reference, "last_hidden_state_changed");
    let d = parity::rel_diff(&ours, other);
    eprintln!("T5 long vs changed: relative difference {d:e}");
    assert!(d > 100.0 * TOL, "{d:e}");
    // Far from the changed id (the last 10 positions), the output still differs.
    let tail = |t: &Tensor| t.narrow(1, 30, 10).unwrap();
    let d_tail = parity::rel_diff(&tail(&ours), &tail(other));
    eprintln!("T5 long vs changed, last 10 positions: relative difference {d_tail:e}");
    assert!(d_tail > 100.0 * TOL, "{d_tail:e}");
    // The same weights bucketed with max_distance 40 instead of 12 (transformers' output).
    let rebucketed = parity::get(&reference, "last_hidden_state_long_max_distance_40");
    let d_buckets = parity::rel_diff(&ours, rebucketed);
    eprintln!("T5 long, max_distance 12 vs 40: relative difference {d_buckets:e}");
    assert!(d_buckets > 100.0 * TOL, "{d_buckets:e}");
}

/// An f16 request computes in f32 (T5 overflows f16), so it matches the f32 reference too.
#[test]
fn t5_in_an_f16_run_is_f32() {
    let encoder = load(DType::F16);
    assert_eq!(encoder.dtype(), DType::F32);
    let reference = parity::reference_tensors(&fixture().join("reference.safetensors"));
    let ours = encoder.encode(&ids(&reference, "short")).unwrap();
    assert_eq!(ours.dtype(), DType::F32);
    let want = parity::get(&reference, "last_hidden_state_short");
    parity::assert_close("T5 (f16 run) last_hidden_state", &ours, want, TOL);
}
