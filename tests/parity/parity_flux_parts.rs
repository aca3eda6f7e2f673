//! FLUX's parts other than the transformer and VAE against diffusers/transformers on
//! tests/fixtures/flux-{schnell,dev}-tiny (make_flux.py): the flow-matching schedule for steps
//! 1..50, sequence lengths 12..6000 and img2img strengths (within 1e-6 relative, and equal as
//! float32: the same float32 operations in the same order), the T5
//! tokenizer's padded/truncated ids (exact), the T5 encoder's hidden states from the folder's
//! safetensors and from the llama.cpp-named Q8_0 GGUF (1e-4 relative), and the position ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::flux::latents;
use pallaidium::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler, calculate_shift};
use pallaidium::engines::flux::tokenizer::T5Tokenizer;
use pallaidium::engines::nn::text::t5::{self, T5Encoder};
use pallaidium::engines::nn::weights::Weights;

use crate::parity;

const SCHEDULE_TOL: f64 = 1e-6;

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(model)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// max |ours - want| / max(|want|, 1e-30) over the values (lengths must match).
fn max_rel(ours: &[f64], want: &[f64]) -> f64 {
    assert_eq!(
        ours.len(),
        want.len(),
        "lengths differ: {ours:?} vs {want:?}"
    );
    ours.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-30))
        .fold(0.0, f64::max)
}

fn check_schedules(model: &str) {
    let dir = fixture(model);
    let config = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json")).unwrap();
    let reference = parity::reference_json(&dir.join("reference/schedule.json"));
    let rows = reference["rows"].as_array().unwrap();
    assert!(rows.len() > 50, "{model}: {} rows", rows.len());
    let (mut worst, mut unequal) = (0f64, 0usize);
    for row in rows {
        let steps = row["steps"].as_u64().unwrap() as usize;
        let seq = row["image_seq_len"].as_u64().unwrap() as usize;
        let strength = row["strength"].as_f64().unwrap();
        let what = format!("{model} steps {steps} seq {seq} strength {strength}");
        let mu = calculate_shift(
            seq,
            config.base_image_seq_len.unwrap(),
            config.max_image_seq_len.unwrap(),
            config.base_shift.unwrap(),
            config.max_shift.unwrap(),
        );
        assert_eq!(mu, row["mu"].as_f64().unwrap(), "{what}: mu");
        let mut schedule = FlowMatchEuler::for_flux(&config, steps, seq).unwrap();
        let left = schedule.truncate_for_strength(strength).unwrap();
        assert_eq!(left as u64, row["steps_left"].as_u64().unwrap(), "{what}");
        assert_eq!(
            schedule.begin_index() as u64,
            row["begin_index"].as_u64().unwrap(),
            "{what}"
        );
        let (want_t, want_s) = (floats(&row["timesteps"]), floats(&row["sigmas"]));
        for (ours, want, name) in [
            (schedule.timesteps(), &want_t, "timesteps"),
            (schedule.all_sigmas(), &want_s, "sigmas"),
        ] {
            let d = max_rel(ours, want);
            assert!(
                d <= SCHEDULE_TOL,
                "{what}: {name} differ by {d:e}: {ours:?} vs {want:?}"
            );
            worst = worst.max(d);
            // The reference holds float32 values written exactly (Python's repr), but serde_json
            // (without float_roundtrip) may parse a decimal 1 f64 ulp off: rounded to f32 they
            // must be the same numbers.
            let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            unequal += usize::from(as_f32(ours) != as_f32(want));
        }
    }
    eprintln!(
        "{model}: {} schedules, max relative difference {worst:e}, {unequal} not equal as f32",
        rows.len()
    );
    assert_eq!(unequal, 0, "{model}: schedules not equal as float32 values");
}

#[test]
fn schnell_schedules_match_diffusers() {
    check_schedules("flux-schnell-tiny");
}

#[test]
fn dev_schedules_match_diffusers() {
    check_schedules("flux-dev-tiny");
}

#[test]
fn t5_tokens_match_t5_tokenizer_fast() {
    for model in ["flux-schnell-tiny", "flux-dev-tiny"] {
        let dir = fixture(model);
        let tokenizer = T5Tokenizer::from_dir(&dir.join("tokenizer_2")).unwrap();
        let reference = parity::reference_json(&dir.join("reference/tokens.json"));
        assert_eq!(
            u64::from(tokenizer.pad_id()),
            reference["t5_pad_id"].as_u64().unwrap()
        );
        let prompts = reference["prompts"].as_array().unwrap();
        let by_length = reference["t5"].as_object().unwrap();
        assert!(by_length.len() >= 3);
        let mut checked = 0;
        for (n, lists) in by_length {
            let n: usize = n.parse().unwrap();
            for (prompt, want) in prompts.iter().zip(lists.as_array().unwrap()) {
                let prompt = prompt.as_str().unwrap();
                let ours = tokenizer.encode(prompt, n).unwrap();
                assert_eq!(ours, parity::ids(want), "{model} n={n} prompt {prompt:?}");
                checked += 1;
            }
        }
        eprintln!("{model}: {checked} T5 token lists equal");
    }
}

fn t5_config() -> t5::T5Config {
    t5::load_config(&fixture("flux-schnell-tiny").join("text_encoder_2/config.json")).unwrap()
}

/// The encoder's last hidden state for each 16-id row of `ids` (n, 16), stacked (n, 16, d).
fn encode_rows(encoder: &T5Encoder, ids: &[Vec<u32>]) -> Tensor {
    let rows: Vec<Tensor> = ids.iter().map(|r| encoder.encode(r).unwrap()).collect();
    Tensor::cat(&rows, 0).unwrap()
}

#[test]
fn t5_hidden_states_match_the_pipelines_encode_prompt() {
    let dir = fixture("flux-schnell-tiny");
    let weights = Weights::open(
        &dir.join("text_encoder_2"),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .unwrap();
    let encoder = weights
        .build("T5 encoder", |vb| T5Encoder::new(vb, &t5_config()))
        .unwrap();
    let tokens = parity::reference_json(&dir.join("reference/tokens.json"));
    let ids: Vec<Vec<u32>> = tokens["t5"]["16"]
        .as_array()
        .unwrap()
        .iter()
        .map(parity::ids)
        .collect();
    let reference = parity::reference_tensors(&dir.join("reference/text.safetensors"));
    let ours = encode_rows(&encoder, &ids);
    let want = parity::get(&reference, "t5_hidden_16");
    parity::assert_close(
        "T5 t5_hidden_16 (safetensors)",
        &ours,
        want,
        parity::TENSOR_REL_TOL,
    );
}

#[test]
fn t5_gguf_matches_transformers_on_the_dequantized_weights() {
    let dir = fixture("flux-schnell-tiny");
    let path = dir.join("gguf/t5-encoder-Q8_0.gguf");
    let encoder = T5Encoder::load_gguf(&path, &t5_config(), &Device::Cpu).unwrap();
    assert_eq!(encoder.dtype(), DType::F32);
    let reference = parity::reference_tensors(&dir.join("reference/t5_gguf.safetensors"));
    let ids = parity::get(&reference, "input_ids_16")
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let ids: Vec<Vec<u32>> = ids
        .iter()
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect();
    let ours = encode_rows(&encoder, &ids);
    let want = parity::get(&reference, "t5_hidden_16");
    parity::assert_close(
        "T5 t5_hidden_16 (Q8_0 GGUF)",
        &ours,
        want,
        parity::TENSOR_REL_TOL,
    );
    // f16 asked for computes in f32 (T5 overflows f16), as for safetensors.
    let f16 = T5Encoder::load_gguf_as(&path, &t5_config(), &Device::Cpu, DType::F16).unwrap();
    assert_eq!(f16.dtype(), DType::F32);
    // Power: the quantization moves the output further than the tolerance, so the GGUF
    // reference is not the safetensors one.
    let text = parity::reference_tensors(&dir.join("reference/text.safetensors"));
    let d = parity::rel_diff(&ours, parity::get(&text, "t5_hidden_16"));
    eprintln!("Q8_0 GGUF vs f32 safetensors T5: relative difference {d:e}");
}

#[test]
fn t5_gguf_refuses_other_files_naming_them() {
    let dir = fixture("flux-schnell-tiny");
    let config = t5_config();
    // A FLUX transformer GGUF: another architecture.
    let flux = dir.join("gguf/transformer-Q8_0.gguf");
    let err = T5Encoder::load_gguf(&flux, &config, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("transformer-Q8_0.gguf") && msg.contains("t5encoder"),
        "{msg}"
    );
    // A config with another block count.
    let mut three = config.clone();
    three.num_layers = 3;
    let gguf = dir.join("gguf/t5-encoder-Q8_0.gguf");
    let msg = T5Encoder::load_gguf(&gguf, &three, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("t5-encoder-Q8_0.gguf") && msg.contains("num_layers"),
        "{msg}"
    );
    // A wider model than the file: a shape mismatch names the file.
    let mut wide = config.clone();
    wide.d_ff *= 2;
    let msg = T5Encoder::load_gguf(&gguf, &wide, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t5-encoder-Q8_0.gguf"), "{msg}");
    // Truncated.
    let bytes = std::fs::read(&gguf).unwrap();
    let cut = std::env::temp_dir().join(format!("pallaidium-t5cut-{}.gguf", std::process::id()));
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let err = T5Encoder::load_gguf(&cut, &config, &Device::Cpu).unwrap_err();
    assert!(matches!(err, pallaidium::Error::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("pallaidium-t5cut"), "{err}");
    std::fs::remove_file(&cut).unwrap();
}

#[test]
fn position_ids_match_the_pipeline() {
    for model in ["flux-schnell-tiny", "flux-dev-tiny"] {
        let reference = parity::reference_tensors(
            &fixture(model).join("reference/transformer_step.safetensors"),
        );
        // A 48 wide x 64 high image: latents 8 high x 6 wide, packed 4 x 3.
        let img = latents::image_ids(8, 6, &Device::Cpu).unwrap();
        let d = parity::rel_diff(&img, parity::get(&reference, "img_ids"));
        assert_eq!(d, 0.0, "{model}: img_ids");
        let txt = latents::text_ids(16, &Device::Cpu).unwrap();
        let want = parity::get(&reference, "txt_ids");
        assert_eq!(txt.dims(), want.dims());
        let diff = (txt - want).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{model}: txt_ids");
    }
}

/// The pipeline's noise is stored unpacked; packing it and unpacking for the image size gives
/// it back, for the landscape and the portrait shape.
#[test]
fn pack_round_trips_the_pipeline_noise() {
    let dir = fixture("flux-schnell-tiny").join("reference");
    for (name, w, h) in [("txt2img", 64, 48), ("portrait", 48, 64)] {
        let noise = parity::reference_tensors(&dir.join(format!("noise_{name}.safetensors")));
        let noise = parity::get(&noise, "latents");
        let packed = latents::pack(noise).unwrap();
        assert_eq!(packed.dims(), &[1, (h / 16) * (w / 16), 64]);
        let back = latents::unpack(&packed, h, w, 8).unwrap();
        let diff = (back - noise).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
}
