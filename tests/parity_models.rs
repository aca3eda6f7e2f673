//! Parity of the SD networks (CLIP text encoders, UNet, VAE) with diffusers / transformers, on
//! the tiny random-weight pipelines in tests/fixtures (see its README), in f32 on the CPU.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::sd::attention::AttentionMode;
use pallaidium::engines::sd::clip::TextEncoder;
use pallaidium::engines::sd::unet::{AddedConditioning, UNet};
use pallaidium::engines::sd::vae::Vae;

const TOL: f32 = 1e-4;
const PROMPT: &str = "a photo of an astronaut riding a horse";
const NEGATIVE: &str = "blurry, low quality";

fn fixture(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if dir.join("model_index.json").is_file() {
        Some(dir)
    } else {
        // The fixtures are committed; a missing one means a broken checkout, not a skip.
        panic!("fixture {} is missing", dir.display());
    }
}

fn reference(dir: &Path, file: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference").join(file), &Device::Cpu).unwrap()
}

fn get<'a>(map: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("reference tensor {key} missing"))
}

/// max |a - b| / max |b|.
fn rel_diff(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shapes differ");
    let ours = ours.to_dtype(DType::F32).unwrap();
    let diff = (&ours - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap().max(1e-12)
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f32) {
    let d = rel_diff(ours, reference);
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
}

/// Token ids of `prompt` as the reference tokenizer produced them (`key` "ids" or "ids_2").
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
    let dir = fixture(name).unwrap();
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
    let dir = fixture("sdxl-tiny").unwrap();
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
    let dir = fixture(name).unwrap();
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
    let dir = fixture("sdxl-tiny").unwrap();
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
    let dir = fixture(name).unwrap();
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
    let dir = fixture("sd1-tiny").unwrap();
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
    let d = rel_diff(&out, get(&refs, "out"));
    assert!(d > 0.0 && d < 1e-2, "fp16-variant unet: {d:e}");
}

#[test]
fn tiled_vae_decode_is_exact_for_one_tile_and_close_for_many() {
    let dir = fixture("sd1-tiny").unwrap();
    let refs = reference(&dir, "vae.safetensors");
    let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
    let latents = get(&refs, "latents");
    // Latents that fit in one tile are decoded whole, as diffusers does.
    for (tile, overlap) in [(8, 2), (16, 4)] {
        let one = vae.decode_tiled(latents, tile, overlap).unwrap();
        assert_close("one tile", &one, get(&refs, "decoded"), TOL);
    }

    // 32x32 latents from the reference latents tiled (a smooth-ish field, as real latents are).
    let big = latents.repeat((1, 1, 4, 4)).unwrap();
    let whole = vae.decode(&big).unwrap();
    let tiled = vae.decode_tiled(&big, 16, 4).unwrap();
    assert_eq!(tiled.dims(), &[1, 3, 256, 256]);
    // Tiles see less context and their own GroupNorm statistics, so tiled decoding is not
    // exact (diffusers documents the same). Pixels lie in about [-1, 1]; a mean difference
    // under 2% of that range is invisible after blending, and no pixel may blow up.
    let diff = (&tiled - &whole).unwrap().abs().unwrap();
    let mean = diff.mean_all().unwrap().to_scalar::<f32>().unwrap();
    let max = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
    eprintln!("tiled vs whole: mean {mean:e}, max {max:e}");
    assert!(mean < 0.02 && max < 0.5, "mean {mean}, max {max}");
    // Tiled encode of the decoded image returns latents of the right shape, near untiled.
    let img = whole.clamp(-1f32, 1f32).unwrap();
    let enc_whole = vae.encode_mean(&img).unwrap();
    let enc_tiled = vae.encode_mean_tiled(&img, 16, 4).unwrap();
    assert_eq!(enc_tiled.dims(), enc_whole.dims());
}

#[test]
fn tmp_tiled_vs_diffusers() {
    let dir = fixture("sd1-tiny").unwrap();
    let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
    let r = candle_core::safetensors::load("/tmp/tiled_ref.safetensors", &Device::Cpu).unwrap();
    let t = vae.decode_tiled(&r["big"], 8, 2).unwrap();
    eprintln!("decode tiled rel {:e}", rel_diff(&t, &r["tiled"]));
    let e = vae.encode_mean_tiled(&r["img"], 8, 2).unwrap();
    eprintln!("encode tiled rel {:e}", rel_diff(&e, &r["enc_tiled"]));
}
