#![allow(clippy::unwrap_used)]

use super::*;

/// A T5 v1.1-style section as transformers writes it, without the keys older configs lack.
fn section() -> Value {
    serde_json::json!({
        "vocab_size": 40, "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 1,
        "num_heads": 2, "relative_attention_max_distance": 12,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false
    })
}

#[test]
fn missing_keys_take_transformers_defaults() {
    let c = parse_config("text_encoder", section()).unwrap();
    assert_eq!(c.relative_attention_num_buckets, 32);
    assert_eq!((c.pad_token_id, c.eos_token_id), (0, 1));
    assert!((c.layer_norm_epsilon - 1e-6).abs() < 1e-18);
    assert!(c.feed_forward_proj.gated);
    assert_eq!(
        c.feed_forward_proj.activation,
        candle_nn::Activation::NewGelu
    );
    assert!(!c.tie_word_embeddings);
}

#[test]
fn bad_values_name_their_key() {
    for (k, v, want) in [
        ("num_heads", 0.into(), "`text_encoder.num_heads` = 0"),
        ("vocab_size", 0.into(), "`text_encoder.vocab_size` = 0"),
        (
            "relative_attention_num_buckets",
            2.into(),
            "`text_encoder.relative_attention_num_buckets` = 2",
        ),
        (
            "layer_norm_epsilon",
            0.0.into(),
            "`text_encoder.layer_norm_epsilon`",
        ),
        (
            "eos_token_id",
            40.into(),
            "`text_encoder.eos_token_id` = 40",
        ),
        (
            "feed_forward_proj",
            "gated-relu".into(),
            "`text_encoder` (T5)",
        ),
    ] {
        let mut value = section();
        value[k] = v;
        let err = parse_config("text_encoder", value).unwrap_err();
        assert!(err.contains(want), "{k}: {err}");
    }
    let mut value = section();
    value["d_kv"] = 0.into();
    assert!(
        parse_config("", value)
            .unwrap_err()
            .starts_with("`d_kv` = 0")
    );
}

#[test]
fn a_config_file_of_its_own_is_bad_input_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let missing = load_config(&path).unwrap_err();
    assert_eq!(missing.exit_code(), 2);
    assert!(missing.to_string().contains("config.json"), "{missing}");
    let mut value = section();
    value["num_heads"] = 0.into();
    std::fs::write(&path, value.to_string()).unwrap();
    let err = load_config(&path).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("`num_heads` = 0"), "{text}");
    std::fs::write(&path, "{not json").unwrap();
    assert_eq!(load_config(&path).unwrap_err().exit_code(), 2);
    std::fs::write(&path, section().to_string()).unwrap();
    assert_eq!(load_config(&path).unwrap().d_model, 8);
}

#[test]
fn never_f16() {
    assert_eq!(T5Encoder::dtype_for(DType::F16), DType::F32);
    assert_eq!(T5Encoder::dtype_for(DType::BF16), DType::BF16);
    assert_eq!(T5Encoder::dtype_for(DType::F32), DType::F32);
}

#[test]
fn encodes_in_f32_for_f16_and_refuses_bad_ids() {
    let mut value = section();
    value["is_decoder"] = true.into(); // an encoder ignores it (no cross-attention weights)
    let config = parse_config("", value).unwrap();
    let map = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F16, &Device::Cpu);
    let encoder = T5Encoder::new(vb, &config).unwrap();
    assert_eq!(encoder.dtype(), DType::F32);
    let out = encoder.encode(&[3, 7, 1]).unwrap();
    assert_eq!(out.dims(), &[1, 3, 8]);
    assert_eq!(out.dtype(), DType::F32);
    assert_eq!(encoder.encode(&[]).unwrap_err().exit_code(), 2);
    assert_eq!(encoder.encode(&[3, 40]).unwrap_err().exit_code(), 2);
}
