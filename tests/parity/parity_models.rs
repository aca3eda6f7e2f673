//! Parity of the SD networks (CLIP text encoders, UNet, VAE) with diffusers / transformers, on
//! the tiny random-weight pipelines in tests/fixtures (see its README), in f32 on the CPU.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::nn::attention::AttentionMode;
use pallaidium::engines::nn::text::clip::TextEncoder;
use pallaidium::engines::sd::unet::{AddedConditioning, UNet};
use pallaidium::engines::sd::vae::Vae;

use crate::parity;

const TOL: f32 = parity::TENSOR_REL_TOL;
const PROMPT: &str = "a photo of an astronaut riding a horse";
const NEGATIVE: &str = "blurry, low quality";

/// The fixtures are committed: a missing one is a broken checkout, so it fails, never skips.
fn fixture(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(
        dir.join("model_index.json").is_file(),
        "fixture {} is missing",
        dir.display()
    );
    dir
}

fn reference(dir: &Path, file: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference").join(file), &Device::Cpu).unwrap()
}

fn get<'a>(map: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    parity::get(map, key)
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f32) {
    parity::assert_close(what, ours, reference, tol);
}

fn token_ids(dir: &Path, prompt: &str, key: &str) -> Tensor {
    let text = std::fs::read_to_string(dir.join("reference/tokens.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prompt"] == prompt)
        .unwrap_or_else(|| panic!("prompt {prompt:?} not in tokens.json"));
    let ids: Vec<u32> = entry[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn ids_of(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

fn load_text_encoder(dir: &Path, folder: &str) -> TextEncoder {
    TextEncoder::load(&dir.join(folder), &Device::Cpu, DType::F32, false).unwrap()
}

fn check_sd_text_encoder(name: &str) {
    let dir = fixture(name);
    let refs = reference(&dir, "text.safetensors");
    let enc = load_text_encoder(&dir, "text_encoder");
    let ids = token_ids(&dir, PROMPT, "ids");
    assert_eq!(
        ids.to_vec2::<u32>().unwrap(),
        ids_of(get(&refs, "input_ids")).to_vec2::<u32>().unwrap()
    );
    let out = enc.forward(&ids).unwrap();
    assert_close(
        "last_hidden_state",
        &out.last_hidden_state,
        get(&refs, "last_hidden_state"),
        TOL,
    );
    assert_close(
        "prompt_embeds",
        &out.last_hidden_state,
        get(&refs, "prompt_embeds"),
        TOL,
    );
    assert_close(
        "penultimate",
        &out.penultimate,
        get(&refs, "penultimate_hidden_state"),
        TOL,
    );
    assert_close("pooled", &out.pooled, get(&refs, "pooled_output"), TOL);
    let neg = enc.forward(&token_ids(&dir, NEGATIVE, "ids")).unwrap();
    assert_close(
        "negative_prompt_embeds",
        &neg.last_hidden_state,
        get(&refs, "negative_prompt_embeds"),
        TOL,
    );
}

#[test]
fn sd1_text_encoder_matches_transformers() {
    check_sd_text_encoder("sd1-tiny");
}

#[test]
fn sd2_text_encoder_matches_transformers() {
    check_sd_text_encoder("sd2-tiny");
}

#[test]
fn sdxl_text_encoders_match_diffusers_prompt_embeds() {
    let dir = fixture("sdxl-tiny");
    let refs = reference(&dir, "text.safetensors");
    let enc1 = load_text_encoder(&dir, "text_encoder");
    let enc2 = load_text_encoder(&dir, "text_encoder_2");
    assert!(!enc1.has_projection() && enc2.has_projection());
    let embeds = |prompt: &str| {
        let o1 = enc1.forward(&token_ids(&dir, prompt, "ids")).unwrap();
        let o2 = enc2.forward(&token_ids(&dir, prompt, "ids_2")).unwrap();
        (o1, o2)
    };
    let (o1, o2) = embeds(PROMPT);
    assert_close(
        "last_hidden_state",
        &o1.last_hidden_state,
        get(&refs, "last_hidden_state"),
        TOL,
    );
    assert_close(
        "penultimate",
        &o1.penultimate,
        get(&refs, "penultimate_hidden_state"),
        TOL,
    );
    assert_close(
        "last_hidden_state_2",
        &o2.last_hidden_state,
        get(&refs, "last_hidden_state_2"),
        TOL,
    );
    assert_close(
        "penultimate_2",
        &o2.penultimate,
        get(&refs, "penultimate_hidden_state_2"),
        TOL,
    );
    assert_close(
        "text_embeds_2",
        &o2.pooled,
        get(&refs, "text_embeds_2"),
        TOL,
    );
    assert_close(
        "pooled_prompt_embeds",
        &o2.pooled,
        get(&refs, "pooled_prompt_embeds"),
        TOL,
    );
    let joined = Tensor::cat(&[&o1.penultimate, &o2.penultimate], 2).unwrap();
    assert_close("prompt_embeds", &joined, get(&refs, "prompt_embeds"), TOL);

    let (n1, n2) = embeds(NEGATIVE);
    let joined = Tensor::cat(&[&n1.penultimate, &n2.penultimate], 2).unwrap();
    assert_close(
        "negative_prompt_embeds",
        &joined,
        get(&refs, "negative_prompt_embeds"),
        TOL,
    );
    assert_close(
        "negative_pooled_prompt_embeds",
        &n2.pooled,
        get(&refs, "negative_pooled_prompt_embeds"),
        TOL,
    );
}

fn unet_inputs(refs: &HashMap<String, Tensor>) -> (f64, Option<AddedConditioning>) {
    let t = get(refs, "timestep").to_vec1::<f32>().unwrap()[0] as f64;
    let added = match (refs.get("text_embeds"), refs.get("time_ids")) {
        (Some(text_embeds), Some(time_ids)) => Some(AddedConditioning {
            text_embeds: text_embeds.clone(),
            time_ids: time_ids.clone(),
        }),
        _ => None,
    };
    (t, added)
}

fn check_unet(name: &str) {
    let dir = fixture(name);
    let refs = reference(&dir, "unet.safetensors");
    let unet = UNet::load(&dir.join("unet"), &Device::Cpu, DType::F32, false).unwrap();
    let (t, added) = unet_inputs(&refs);
    let sample = get(&refs, "sample");
    let ctx = get(&refs, "encoder_hidden_states");
    let full = unet
        .forward(sample, t, ctx, added.as_ref(), AttentionMode::Full)
        .unwrap();
    assert_close(&format!("{name} unet"), &full, get(&refs, "out"), TOL);
    // Chunking queries (7 does not divide the 64 or 16 tokens) must not change the result.
    for mode in [
        AttentionMode::Sliced { query_chunk: 7 },
        AttentionMode::Auto,
    ] {
        let out = unet.forward(sample, t, ctx, added.as_ref(), mode).unwrap();
        assert_close(&format!("{name} unet {mode:?} vs full"), &out, &full, 1e-6);
    }
}

#[test]
fn sd1_unet_step_matches_diffusers() {
    check_unet("sd1-tiny");
}

#[test]
fn sd2_unet_step_matches_diffusers() {
    check_unet("sd2-tiny");
}

#[test]
fn sdxl_unet_step_with_added_conditioning_matches_diffusers() {
    check_unet("sdxl-tiny");
}

#[test]
fn inpainting_9_channel_unet_step_matches_diffusers() {
    check_unet("sd1-inpaint-tiny");
}

#[test]
fn sdxl_unet_without_added_conditioning_is_bad_input() {
    let dir = fixture("sdxl-tiny");
    let refs = reference(&dir, "unet.safetensors");
    let unet = UNet::load(&dir.join("unet"), &Device::Cpu, DType::F32, false).unwrap();
    assert!(unet.config().needs_added_conditioning());
    let err = unet
        .forward(
            get(&refs, "sample"),
            501.0,
            get(&refs, "encoder_hidden_states"),
            None,
            AttentionMode::Auto,
        )
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

fn check_vae(name: &str) {
    let dir = fixture(name);
    let refs = reference(&dir, "vae.safetensors");
    let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
    let decoded = vae.decode(get(&refs, "latents")).unwrap();
    assert_close(
        &format!("{name} vae decode"),
        &decoded,
        get(&refs, "decoded"),
        TOL,
    );
    let mean = vae.encode_mean(get(&refs, "image")).unwrap();
    assert_close(
        &format!("{name} vae encode mean"),
        &mean,
        get(&refs, "latent_mean"),
        TOL,
    );
}

#[test]
fn sd1_vae_matches_diffusers() {
    check_vae("sd1-tiny");
}

#[test]
fn sd2_vae_matches_diffusers() {
    check_vae("sd2-tiny");
}

#[test]
fn sdxl_vae_matches_diffusers() {
    check_vae("sdxl-tiny");
}

#[test]
fn fp16_variant_files_load_and_stay_close() {
    // fp16 weights upcast to f32: the only difference is the weights' rounding (~1e-3).
    let dir = fixture("sd1-tiny");
    let refs = reference(&dir, "unet.safetensors");
    let unet = UNet::load(&dir.join("unet"), &Device::Cpu, DType::F32, true).unwrap();
    let (t, added) = unet_inputs(&refs);
    let out = unet
        .forward(
            get(&refs, "sample"),
            t,
            get(&refs, "encoder_hidden_states"),
            added.as_ref(),
            AttentionMode::Auto,
        )
        .unwrap();
    let d = parity::rel_diff(&out, get(&refs, "out"));
    assert!(d > 0.0 && d < 1e-2, "fp16-variant unet: {d:e}");
}

#[test]
fn unet_runs_in_f16_close_to_the_f32_reference() {
    // f16 activations (attention softmax upcast to f32): rounding only, ~1e-3 relative.
    let dir = fixture("sd1-tiny");
    let refs = reference(&dir, "unet.safetensors");
    let unet = UNet::load(&dir.join("unet"), &Device::Cpu, DType::F16, true).unwrap();
    let (t, added) = unet_inputs(&refs);
    let out = unet
        .forward(
            get(&refs, "sample"),
            t,
            get(&refs, "encoder_hidden_states"),
            added.as_ref(),
            AttentionMode::Sliced { query_chunk: 5 },
        )
        .unwrap();
    assert_eq!(out.dtype(), DType::F16);
    let d = parity::rel_diff(&out, get(&refs, "out"));
    assert!(d < 2e-2, "f16 unet: {d:e}");
}

/// diffusers' own tiled decode and encode (`vae.enable_tiling()`, tiles of 8 latents / 64 pixels
/// with overlap factor 0.25 on the tiny VAE) of a 12x18 latent and its 96x144 decoded image:
/// 2x3 tiles each way, blended across rows and columns (tests/fixtures/README.md).
#[test]
fn tiled_vae_decode_and_encode_match_diffusers_tiling() {
    let dir = fixture("sd1-tiny");
    let refs = reference(&dir, "vae_tiled.safetensors");
    let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
    assert_eq!(vae.default_tile_latent(), 8);
    let latents = get(&refs, "latents");
    let image = get(&refs, "decoded");
    // Untiled first: the non-square sizes themselves.
    assert_close("whole decode", &vae.decode(latents).unwrap(), image, TOL);
    let mean = vae.encode_mean(image).unwrap();
    assert_close("whole encode", &mean, get(&refs, "latent_mean"), TOL);
    // Tiles of 8 latents overlapping by 2 are diffusers' 64-pixel tiles with overlap 0.25.
    let tiled = vae.decode_tiled(latents, 8, 2).unwrap();
    assert_close("tiled decode", &tiled, get(&refs, "tiled_decoded"), TOL);
    let tiled = vae.encode_mean_tiled(image, 8, 2).unwrap();
    assert_close("tiled encode", &tiled, get(&refs, "tiled_latent_mean"), TOL);
}

#[test]
fn latents_that_fit_one_tile_are_processed_whole() {
    let dir = fixture("sd1-tiny");
    let refs = reference(&dir, "vae.safetensors");
    let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
    for (tile, overlap) in [(8, 2), (16, 4)] {
        let one = vae
            .decode_tiled(get(&refs, "latents"), tile, overlap)
            .unwrap();
        assert_close("one tile decode", &one, get(&refs, "decoded"), TOL);
    }
    let one = vae.encode_mean_tiled(get(&refs, "image"), 8, 2).unwrap();
    assert_close("one tile encode", &one, get(&refs, "latent_mean"), TOL);
}
