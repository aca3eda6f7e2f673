#![allow(clippy::unwrap_used)]

use super::*;
use crate::engines::nn::activation::Activation;
use crate::engines::nn::compare::max_rel_diff;
use serde_json::{Value, json};

/// Z-Image-Turbo's `text_encoder/config.json` (Qwen3-4B, saved by transformers 4.51) as
/// DiffSynth-Studio's `z_image_text_encoder.py` reproduces it (not read from the hub here).
fn zimage_config() -> Value {
    json!({
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
        "hidden_size": 2560, "initializer_range": 0.02, "intermediate_size": 9728,
        "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
        "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
        "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
        "vocab_size": 151936
    })
}

/// A tiny Qwen3 as transformers 5 saves it (`rope_parameters`, `layer_types`).
fn tiny() -> Value {
    json!({
        "vocab_size": 20, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500.0},
        "layer_types": ["full_attention", "full_attention", "full_attention"],
        "sliding_window": null, "use_sliding_window": false
    })
}

fn parse(v: &Value) -> std::result::Result<QwenConfig, String> {
    QwenConfig::from_json(&v.to_string())
}

#[test]
fn zimage_config_parses_with_its_numbers() {
    let c = parse(&zimage_config()).unwrap();
    assert_eq!((c.num_attention_heads, c.num_key_value_heads), (32, 8));
    assert_eq!((c.head_dim, c.hidden_size), (128, 2560));
    assert_eq!(c.rope_theta, 1e6);
    assert_eq!(c.hidden_act, Activation::Silu);
    assert!(!c.attention_bias);
    // Qwen3-4B: 4.0B parameters, 3.6B of them outside the embeddings.
    assert_eq!(c.parameters(), 4_022_468_096);
    // 512 tokens, bf16: well under a GiB of activations.
    let working = c.working_bytes(1, 512, 2);
    assert!(working > 10 << 20 && working < 1 << 30, "{working}");
}

#[test]
fn missing_keys_take_transformers_defaults() {
    let c = parse(&json!({})).unwrap();
    assert_eq!(c.vocab_size, 151_936);
    assert_eq!((c.hidden_size, c.intermediate_size), (4096, 22_016));
    assert_eq!((c.num_hidden_layers, c.num_attention_heads), (32, 32));
    assert_eq!((c.num_key_value_heads, c.head_dim), (32, 128));
    assert_eq!(c.rope_theta, 10_000.0);
    assert!((c.rms_norm_eps - 1e-6).abs() < 1e-18);
    // A null key value heads count means as many as heads.
    let c = parse(&json!({"num_attention_heads": 8, "num_key_value_heads": null})).unwrap();
    assert_eq!(c.num_key_value_heads, 8);
}

#[test]
fn rope_theta_follows_transformers_order() {
    let theta = |v: Value| parse(&v).unwrap().rope_theta;
    assert_eq!(theta(tiny()), 500.0);
    assert_eq!(theta(json!({"rope_theta": 1e6, "rope_scaling": null})), 1e6);
    // rope_parameters without a theta take the top-level one.
    assert_eq!(
        theta(json!({"rope_theta": 2e5, "rope_parameters": {"rope_type": "default"}})),
        2e5
    );
    // An old-style rope_scaling replaces rope_parameters.
    assert_eq!(
        theta(
            json!({"rope_scaling": {"type": "default", "rope_theta": 7.0},
                     "rope_parameters": {"rope_theta": 9.0}})
        ),
        7.0
    );
}

#[test]
fn bad_values_name_their_key() {
    for (k, v, want) in [
        ("vocab_size", json!(0), "`vocab_size` = 0"),
        ("num_key_value_heads", json!(0), "`num_key_value_heads` = 0"),
        ("num_attention_heads", json!(0), "`num_attention_heads` = 0"),
        (
            "num_attention_heads",
            json!(5),
            "`num_attention_heads` = 5 is not a multiple",
        ),
        ("head_dim", json!(5), "`head_dim` = 5"),
        ("head_dim", json!(0), "`head_dim` = 0"),
        ("num_hidden_layers", json!(0), "`num_hidden_layers` = 0"),
        ("rms_norm_eps", json!(0.0), "`rms_norm_eps`"),
        ("hidden_act", json!("mish"), "`hidden_act` = \"mish\""),
        ("use_sliding_window", json!(true), "`use_sliding_window`"),
        (
            "layer_types",
            json!(["full_attention", "sliding_attention", "full_attention"]),
            "`layer_types[1]`",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "yarn", "factor": 4.0}),
            "`rope_parameters.rope_type` = \"yarn\"",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "default", "rope_theta": 0.0}),
            "`rope_theta`",
        ),
        (
            "rope_parameters",
            json!({"rope_theta": "big"}),
            "`rope_parameters.rope_theta`",
        ),
        (
            "rope_scaling",
            json!({"type": "linear", "factor": 2.0}),
            "`rope_scaling.rope_type` = \"linear\"",
        ),
        ("vocab_size", json!(-1), "invalid value"),
    ] {
        let mut value = tiny();
        value[k] = v;
        let err = parse(&value).unwrap_err();
        assert!(err.contains(want), "{k}: {err}");
    }
}

#[test]
fn a_config_file_is_bad_input_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let missing = QwenConfig::load(&path).unwrap_err();
    assert_eq!(missing.exit_code(), 2);
    assert!(missing.to_string().contains("config.json"), "{missing}");
    let mut value = tiny();
    value["head_dim"] = json!(3);
    std::fs::write(&path, value.to_string()).unwrap();
    let err = QwenConfig::load(&path).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("`head_dim` = 3"), "{text}");
    std::fs::write(&path, "{not json").unwrap();
    assert_eq!(QwenConfig::load(&path).unwrap_err().exit_code(), 2);
    // A folder without weights is bad input too.
    std::fs::write(&path, tiny().to_string()).unwrap();
    let err = QwenEncoder::load(dir.path(), &Device::Cpu, DType::F32).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
}

#[test]
fn f32_on_the_cpu() {
    for dtype in [DType::F16, DType::BF16, DType::F32] {
        assert_eq!(QwenEncoder::dtype_for(dtype, &Device::Cpu), DType::F32);
    }
}

fn encoder(map: &candle_nn::VarMap) -> QwenEncoder {
    let vb = VarBuilder::from_varmap(map, DType::F32, &Device::Cpu);
    QwenEncoder::new(vb, parse(&tiny()).unwrap()).unwrap()
}

fn ids(rows: &[[u32; 5]]) -> Tensor {
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 5), &Device::Cpu).unwrap()
}

#[test]
fn hidden_states_are_indexed_like_transformers() {
    let map = candle_nn::VarMap::new();
    let enc = encoder(&map);
    let x = ids(&[[3, 1, 4, 1, 5]]);
    let at = |i: isize| enc.encode(&x, None, i).unwrap();
    assert_eq!(at(ZIMAGE_HIDDEN_STATE).dims(), &[1, 5, 8]);
    // 3 layers: 4 states; -2 is index 2, -1 index 3, -4 the embeddings.
    assert_eq!(max_rel_diff(&at(-2), &at(2)).unwrap(), 0.0);
    assert_eq!(max_rel_diff(&at(-1), &at(3)).unwrap(), 0.0);
    assert_eq!(max_rel_diff(&at(-4), &at(0)).unwrap(), 0.0);
    assert!(max_rel_diff(&at(-2), &at(-1)).unwrap() > 1e-3);
    for bad in [4, -5] {
        let err = enc.encode(&x, None, bad).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("-4 to 3"), "{err}");
    }
}

#[test]
fn right_padding_leaves_real_tokens_alone() {
    let map = candle_nn::VarMap::new();
    let enc = encoder(&map);
    let full = enc.encode(&ids(&[[3, 1, 4, 1, 5]]), None, -2).unwrap();
    let short = Tensor::new(&[[3u32, 1, 4]], &Device::Cpu).unwrap();
    let short = enc.encode(&short, None, -2).unwrap();
    let padded = ids(&[[3, 1, 4, 1, 5], [3, 1, 4, 0, 0]]);
    let mask = Tensor::new(&[[1u8, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let out = enc.encode(&padded, Some(&mask), -2).unwrap();
    let rows = real_tokens(&out, &mask).unwrap();
    assert_eq!(rows[0].dims(), &[5, 8]);
    assert_eq!(rows[1].dims(), &[3, 8]);
    let d_full = max_rel_diff(&rows[0], &full.squeeze(0).unwrap()).unwrap();
    let d_short = max_rel_diff(&rows[1], &short.squeeze(0).unwrap()).unwrap();
    assert!(d_full < 1e-6 && d_short < 1e-6, "{d_full} {d_short}");
    // Causal attention: real tokens never see the pads after them, mask or not; the mask
    // changes only the pads' own rows (they see the real tokens and not each other).
    let unmasked = enc.encode(&padded, None, -2).unwrap();
    let real = |t: &Tensor| t.get(1).unwrap().narrow(0, 0, 3).unwrap();
    let pads = |t: &Tensor| t.get(1).unwrap().narrow(0, 3, 2).unwrap();
    assert!(max_rel_diff(&real(&unmasked), &real(&out)).unwrap() < 1e-6);
    assert!(max_rel_diff(&pads(&unmasked), &pads(&out)).unwrap() > 1e-3);
    // A row that is all padding stays finite.
    let none = Tensor::zeros((2, 5), DType::U8, &Device::Cpu).unwrap();
    let out = enc.encode(&padded, Some(&none), -1).unwrap();
    assert!(max_rel_diff(&out, &out).unwrap().is_finite());
}

#[test]
fn bad_ids_and_masks_are_bad_input() {
    let map = candle_nn::VarMap::new();
    let enc = encoder(&map);
    assert_eq!(
        enc.encode(&ids(&[[3, 1, 4, 1, 20]]), None, -2)
            .unwrap_err()
            .exit_code(),
        2
    );
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    assert_eq!(enc.encode(&empty, None, -2).unwrap_err().exit_code(), 2);
    let mask = Tensor::ones((1, 4), DType::U8, &Device::Cpu).unwrap();
    let err = enc
        .encode(&ids(&[[3, 1, 4, 1, 5]]), Some(&mask), -2)
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    let hidden = Tensor::zeros((1, 5, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(real_tokens(&hidden, &mask).unwrap_err().exit_code(), 2);
}

#[test]
fn causal_lm_checkpoints_load_under_model() {
    let map = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    vb.get_with_hints(
        (20, 8),
        "model.embed_tokens.weight",
        candle_nn::Init::Const(0.5),
    )
    .unwrap();
    let enc = QwenEncoder::new(vb, parse(&tiny()).unwrap()).unwrap();
    let names: Vec<String> = map.data().lock().unwrap().keys().cloned().collect();
    assert!(names.iter().all(|n| n.starts_with("model.")), "{names:?}");
    assert!(names.contains(&"model.layers.2.self_attn.k_norm.weight".to_string()));
    assert_eq!(enc.dtype(), DType::F32);
}
