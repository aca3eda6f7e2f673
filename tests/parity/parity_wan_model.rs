//! Wan's UMT5 text encoder and transformer against transformers / diffusers on
//! tests/fixtures/wan-t2v-tiny (make_wan.py; references in reference/model.safetensors, made by
//! the models loaded back from the folder): UMT5's last hidden state for two prompts (one past the
//! relative-position max distance), WanPipeline's padded prompt embeddings, and the transformer's
//! output on non-square latents (2 frames x 12 x 8, batch 2) with per-item and per-token
//! timesteps. f32 within 1e-4 relative; each test shows its inputs move the output far more.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::nn::attention::AttentionMode;
use pallaidium::engines::nn::text::{t5, umt5};
use pallaidium::engines::progress::CancelToken;
use pallaidium::engines::wan::text::{T5Tokenizer, Umt5Encoder, prompt_embeds};
use pallaidium::engines::wan::transformer::WanTransformer;

use crate::parity::{TENSOR_REL_TOL, assert_close, get, reference_tensors, rel_diff};

/// make_wan.py's prompts and max_sequence_length.
const PROMPTS: [(&str, &str); 2] = [
    (
        "long",
        "a red fox runs through the snowy forest at dawn, with a small river and tall trees \
         behind it",
    ),
    ("short", "a  cat &amp; a dog"),
];
const MAX_LEN: usize = 16;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan-t2v-tiny")
}

fn refs() -> std::collections::HashMap<String, Tensor> {
    reference_tensors(&dir().join("reference/model.safetensors"))
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

fn encoder() -> Umt5Encoder {
    let dir = dir().join("text_encoder");
    Umt5Encoder::load(&dir, &Device::Cpu, DType::F32, EngineSwitches::default()).unwrap()
}

#[test]
fn wan_umt5_matches_transformers() {
    let r = refs();
    let enc = encoder();
    let tokenizer = T5Tokenizer::from_dir(&dir().join("tokenizer")).unwrap();
    for (name, prompt) in PROMPTS {
        let ids = ids(get(&r, &format!("umt5.ids_{name}")));
        let want = get(&r, &format!("umt5.hidden_{name}"));
        let ours = enc.encode(&ids).unwrap();
        assert_close(&format!("umt5 {name}"), &ours, want, TENSOR_REL_TOL);
        // One id changed moves every position past the tolerance (attention mixes them).
        let mut changed = ids.clone();
        changed[1] = if changed[1] == 5 { 6 } else { 5 };
        let moved = rel_diff(&enc.encode(&changed).unwrap(), want);
        assert!(moved > 100.0 * TENSOR_REL_TOL, "{name}: moved {moved}");
        // WanPipeline's prompt handling: cleaned, truncated to 16, zero past the prompt.
        let want = get(&r, &format!("umt5.embeds_{name}"));
        let ours = prompt_embeds(&enc, &tokenizer, prompt, MAX_LEN).unwrap();
        assert_close(&format!("umt5 embeds {name}"), &ours, want, TENSOR_REL_TOL);
    }
    // Positions see each other: the long prompt's first 5 ids alone differ from the first 5
    // rows of the whole prompt's run.
    let long = ids(get(&r, "umt5.ids_long"));
    let short = enc.encode(&long[..5]).unwrap();
    let full = enc.encode(&long).unwrap().narrow(1, 0, 5).unwrap();
    assert!(rel_diff(&short, &full) > 100.0 * TENSOR_REL_TOL);
}

#[test]
fn wan_umt5_gguf_matches_transformers_on_the_dequantized_weights() {
    let r = refs();
    let config = t5::load_config(&dir().join("text_encoder/config.json")).unwrap();
    let path = dir().join("gguf/umt5-encoder-Q8_0.gguf");
    let ids = ids(get(&r, "umt5.ids_long"));
    let want = get(&r, "umt5_gguf.hidden_long");
    // Kept quantized (Wan's loader) and dequantized at load (nn::text::umt5).
    let kept = Umt5Encoder::load_gguf(&path, &config, &Device::Cpu, DType::F32).unwrap();
    let ours = kept.encode(&ids).unwrap();
    assert_close("umt5 gguf, kept quantized", &ours, want, TENSOR_REL_TOL);
    let dense = umt5::Umt5Encoder::load_gguf(&path, &config, &Device::Cpu, DType::F32).unwrap();
    let ours_dense = dense.encode(&ids).unwrap();
    assert_close("umt5 gguf, dequantized", &ours_dense, want, TENSOR_REL_TOL);
    // Quantization moves the output past the tolerance: the reference is not the f32 one.
    let f32_ref = get(&r, "umt5.hidden_long");
    assert!(rel_diff(&ours, f32_ref) > 10.0 * TENSOR_REL_TOL);
    // A config with another block count names the file and the key.
    let mut three = config.clone();
    three.num_layers = 3;
    let err = umt5::Umt5Encoder::load_gguf(&path, &three, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("umt5-encoder-Q8_0.gguf") && err.contains("num_layers"),
        "{err}"
    );
    // A T5 GGUF (one relative bias, FLUX's) is refused naming the missing per-layer bias.
    let flux = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux-schnell-tiny");
    let t5_config = t5::load_config(&flux.join("text_encoder_2/config.json")).unwrap();
    let t5_gguf = flux.join("gguf/t5-encoder-Q8_0.gguf");
    let err = Umt5Encoder::load_gguf(&t5_gguf, &t5_config, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("enc.blk.1.attn_rel_b"), "{err}");
}

#[test]
fn wan_umt5_refuses_bad_ids() {
    let enc = encoder();
    assert!(enc.encode(&[]).is_err());
    let err = enc.encode(&[3, 100_000]).unwrap_err().to_string();
    assert!(err.contains("100000"), "{err}");
}

fn transformer() -> WanTransformer {
    WanTransformer::load(
        &dir().join("transformer"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap()
}

#[test]
fn wan_transformer_matches_diffusers() {
    let r = refs();
    let model = transformer();
    let latents = get(&r, "dit.latents");
    let text = get(&r, "dit.text");
    let t = get(&r, "dit.t");
    let want = get(&r, "dit.out");
    let ours = model.forward(latents, t, text).unwrap();
    assert_eq!(ours.dims(), &[2, 4, 2, 12, 8]);
    assert_close("wan transformer", &ours, want, TENSOR_REL_TOL);
    // Other timesteps, the texts swapped, per-token timesteps: each matches its own reference
    // and is far from the base output.
    let t_other = get(&r, "dit.t_other");
    let swapped = Tensor::cat(&[text.get(1).unwrap(), text.get(0).unwrap()], 0)
        .unwrap()
        .reshape(text.dims())
        .unwrap();
    let t_tokens = get(&r, "dit.t_tokens");
    for (what, out, key) in [
        (
            "other timesteps",
            model.forward(latents, t_other, text).unwrap(),
            "dit.out_t",
        ),
        (
            "texts swapped",
            model.forward(latents, t, &swapped).unwrap(),
            "dit.out_text",
        ),
        (
            "per-token timesteps",
            model.forward(latents, t_tokens, text).unwrap(),
            "dit.out_tokens",
        ),
    ] {
        assert_close(what, &out, get(&r, key), TENSOR_REL_TOL);
        let moved = rel_diff(&out, want);
        assert!(moved > 100.0 * TENSOR_REL_TOL, "{what}: moved {moved}");
    }
}

#[test]
fn wan_transformer_refuses_bad_shapes() {
    let r = refs();
    let model = transformer();
    let latents = get(&r, "dit.latents");
    let text = get(&r, "dit.text");
    let t = get(&r, "dit.t");
    let odd = latents.narrow(3, 0, 11).unwrap();
    let one_t = t.narrow(0, 0, 1).unwrap();
    let narrow_text = text.narrow(2, 0, 16).unwrap();
    for (what, result) in [
        ("odd height", model.forward(&odd, t, text)),
        ("one timestep for two", model.forward(latents, &one_t, text)),
        ("text width", model.forward(latents, t, &narrow_text)),
    ] {
        let err = result.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(err.to_string().contains("Wan transformer"), "{what}: {err}");
    }
}

/// Wan 2.1 image-to-video transformers (tests/fixtures/wan-i2v-tiny, make_wan.py's
/// `i2v_references`): the CLIP image embedder and the cross-attention's image keys/values, and
/// FLF2V's position embedding over the first and last frames' image tokens.
#[test]
fn wan_i2v_transformers_match_diffusers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan-i2v-tiny");
    let r = reference_tensors(&root.join("reference.safetensors"));
    let latents = get(&r, "i2v.latents");
    let text = get(&r, "i2v.text");
    let t = get(&r, "i2v.t");
    let cancel = CancelToken::new();
    for (key, sub) in [("i2v", "transformer"), ("flf2v", "transformer_flf2v")] {
        let model = WanTransformer::load(
            &root.join(sub),
            &Device::Cpu,
            DType::F32,
            EngineSwitches::default(),
        )
        .unwrap();
        let want = get(&r, &format!("{key}.out"));
        let run = |image: &Tensor| {
            model
                .forward_image_watched(latents, t, text, Some(image), &cancel)
                .unwrap()
        };
        let ours = run(get(&r, &format!("{key}.image")));
        assert_close(key, &ours, want, TENSOR_REL_TOL);
        let other = run(get(&r, &format!("{key}.other_image")));
        assert_close(
            &format!("{key} other image"),
            &other,
            get(&r, &format!("{key}.out_image")),
            TENSOR_REL_TOL,
        );
        let moved = rel_diff(&other, want);
        assert!(moved > 100.0 * TENSOR_REL_TOL, "{key}: moved {moved}");
        // Without the image features the model refuses to run.
        let err = model.forward(latents, t, text).unwrap_err().to_string();
        assert!(err.contains("image features"), "{err}");
    }
}

/// Wan 2.2 TI2V-5B's shape (tests/fixtures/wan-ti2v-tiny, make_wan.py's `ti2v_references`): 8
/// latent channels, per-token timesteps as WanPipeline's expand_timesteps passes them (the first
/// latent frame's tokens at 0).
#[test]
fn wan_ti2v_transformer_matches_diffusers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan-ti2v-tiny");
    let r = reference_tensors(&root.join("reference/model.safetensors"));
    let model = WanTransformer::load(
        &root.join("transformer"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap();
    let latents = get(&r, "ti2v.latents");
    let text = get(&r, "ti2v.text");
    let t_tokens = get(&r, "ti2v.t_tokens");
    let want = get(&r, "ti2v.out");
    let ours = model.forward(latents, t_tokens, text).unwrap();
    assert_close("ti2v", &ours, want, TENSOR_REL_TOL);
    // One timestep for every token (no first-frame conditioning) is far from it.
    let t = Tensor::new(&[700f32], &Device::Cpu).unwrap();
    let moved = rel_diff(&model.forward(latents, &t, text).unwrap(), want);
    assert!(moved > 100.0 * TENSOR_REL_TOL, "moved {moved}");
}

/// bf16 weights and activations (the GPU dtype; candle's CPU runs it too): the transformer (its
/// norms, modulation and timestep MLP kept in f32 as diffusers keeps them) and UMT5 stay near the
/// f32 references, and nearer them than to the output for other timesteps.
#[test]
fn wan_bf16_stays_near_the_f32_references() {
    let r = refs();
    let model = WanTransformer::load(
        &dir().join("transformer"),
        &Device::Cpu,
        DType::BF16,
        EngineSwitches::default(),
    )
    .unwrap();
    let out = model
        .forward(
            get(&r, "dit.latents"),
            get(&r, "dit.t"),
            get(&r, "dit.text"),
        )
        .unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    let out = out.to_dtype(DType::F32).unwrap();
    assert_close("bf16 transformer", &out, get(&r, "dit.out"), 2e-2);
    assert!(rel_diff(&out, get(&r, "dit.out_t")) > 10.0 * 2e-2);
    let enc = Umt5Encoder::load(
        &dir().join("text_encoder"),
        &Device::Cpu,
        DType::BF16,
        EngineSwitches::default(),
    )
    .unwrap();
    assert_eq!(enc.dtype(), DType::BF16);
    let long = ids(get(&r, "umt5.ids_long"));
    let hidden = enc.encode(&long).unwrap().to_dtype(DType::F32).unwrap();
    assert_close("bf16 umt5", &hidden, get(&r, "umt5.hidden_long"), 8e-2);
    let mut changed = long.clone();
    changed[1] = if changed[1] == 5 { 6 } else { 5 };
    let f32_enc = encoder();
    let moved = f32_enc.encode(&changed).unwrap();
    assert!(rel_diff(&hidden, &moved) > 2.0 * 8e-2);
}

/// Sliced attention (a few queries at a time, the memory plan's lever; candle's stock layers,
/// since our fused CPU kernel needs no slicing) gives diffusers' output too, and a cancelled
/// token stops the forward with `Error::Cancelled`.
#[test]
fn wan_transformer_sliced_attention_and_cancel() {
    let r = refs();
    let stock = EngineSwitches {
        stock_kernels: true,
        ..EngineSwitches::default()
    };
    let mut model =
        WanTransformer::load(&dir().join("transformer"), &Device::Cpu, DType::F32, stock).unwrap();
    model.set_attention_mode(AttentionMode::Sliced { query_chunk: 7 });
    let (latents, t, text) = (
        get(&r, "dit.latents"),
        get(&r, "dit.t"),
        get(&r, "dit.text"),
    );
    let ours = model.forward(latents, t, text).unwrap();
    assert_close(
        "sliced attention",
        &ours,
        get(&r, "dit.out"),
        TENSOR_REL_TOL,
    );
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = model
        .forward_watched(latents, t, text, &cancel)
        .unwrap_err();
    assert!(matches!(err, pallaidium::Error::Cancelled), "{err}");
}
