//! BLIP config reading: transformers' defaults, refusals naming the key.

use super::*;

#[test]
fn sparse_real_style_configs_take_transformers_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "blip", "text_config": {"num_attention_heads": 12},
            "vision_config": {"hidden_size": 1024, "num_attention_heads": 16}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        r#"{"size": 384}"#,
    )
    .unwrap();
    let cfg = model_config(dir.path()).unwrap();
    let text = &cfg.candle.text_config;
    assert_eq!(
        text.encoder_hidden_size, 1024,
        "cross-attention width follows the vision model"
    );
    assert_eq!((text.vocab_size, text.layer_norm_eps), (30524, 1e-12));
    assert_eq!(text.hidden_act, candle_nn::Activation::Gelu);
    assert_eq!((cfg.bos_token_id, cfg.sep_token_id), (30522, 102));
    assert!(cfg.tie_word_embeddings);
    assert_eq!(cfg.candle.vision_config.image_size, 384);
    let pre = preprocess_config(dir.path()).unwrap();
    assert_eq!(
        (pre.height, pre.width, pre.resample),
        (384, 384, Resample::Bicubic)
    );
    assert!(pre.do_rescale && pre.do_normalize);
    assert_eq!(pre.mean[0], 0.481_454_66_f64 as f32);
}

#[test]
fn wrong_model_types_and_filters_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "clip"}"#).unwrap();
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        r#"{"resample": 1}"#,
    )
    .unwrap();
    assert!(matches!(
        model_config(dir.path()),
        Err(Error::BadInput { .. })
    ));
    assert!(matches!(
        preprocess_config(dir.path()),
        Err(Error::BadInput { .. })
    ));
}

#[test]
fn zero_sizes_and_heads_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (json, key) in [
        (
            r#"{"text_config": {"num_attention_heads": 0}}"#,
            "num_attention_heads 0",
        ),
        (
            r#"{"vision_config": {"hidden_size": 0}}"#,
            "`vision_config.hidden_size` = 0",
        ),
        (
            r#"{"text_config": {"num_hidden_layers": 0}}"#,
            "`text_config.num_hidden_layers` = 0",
        ),
        (
            r#"{"vision_config": {"patch_size": 0}}"#,
            "`patch_size` must be",
        ),
    ] {
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let err = model_config(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(key) && err.contains("config.json"),
            "{json}: {err}"
        );
    }
}
