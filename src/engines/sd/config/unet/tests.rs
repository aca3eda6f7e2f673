//! UNet config parsing: diffusers' defaults, per-block lists, refusals.

use super::*;

#[test]
fn empty_unet_config_takes_diffusers_defaults() {
    let c = UNetConfig::from_json("{}").unwrap();
    assert_eq!(c.in_channels, 4);
    assert_eq!(c.block_out_channels, vec![320, 640, 1280, 1280]);
    assert_eq!(c.layers_per_block, vec![2; 4]);
    assert_eq!(c.num_attention_heads, vec![8; 4]);
    assert_eq!(c.cross_attention_dim, vec![1280; 4]);
    assert_eq!(c.norm_num_groups, 32);
    assert_eq!(c.time_embedding_dim, 1280);
    assert!(c.flip_sin_to_cos);
    assert!(!c.needs_added_conditioning());
    assert_eq!(c.down_block_types[3], "DownBlock2D");
    assert_eq!(c.up_block_types[0], "UpBlock2D");
}

#[test]
fn sdxl_style_unet_config_resolves_per_block_lists() {
    let json = r#"{
        "_class_name": "UNet2DConditionModel", "some_future_key": [1, 2],
        "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
        "cross_attention_dim": 2048,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": true,
        "sample_size": 128
    }"#;
    let c = UNetConfig::from_json(json).unwrap();
    assert_eq!(c.num_attention_heads, vec![5, 10, 20]);
    assert_eq!(c.transformer_layers_per_block, vec![1, 2, 10]);
    assert_eq!(c.reverse_transformer_layers_per_block, vec![10, 2, 1]);
    assert_eq!(c.cross_attention_dim, vec![2048; 3]);
    assert!(c.needs_added_conditioning());
    assert_eq!(c.sample_size, Some(128));
}

#[test]
fn unsupported_or_inconsistent_unet_configs_are_refused() {
    assert!(UNetConfig::from_json(r#"{"class_embed_type": "timestep"}"#).is_err());
    assert!(UNetConfig::from_json(r#"{"attention_head_dim": [8, 8]}"#).is_err());
    let err = UNetConfig::from_json(r#"{"addition_embed_type": "text_time"}"#).unwrap_err();
    assert!(err.contains("addition_time_embed_dim"), "{err}");
    assert!(UNetConfig::from_json("not json").is_err());
}

#[test]
fn values_divided_or_indexed_by_are_checked_naming_the_key() {
    for (json, key) in [
        (r#"{"norm_num_groups": 0}"#, "`norm_num_groups` = 0"),
        (
            r#"{"attention_head_dim": 0}"#,
            "`attention_head_dim`[0] = 0",
        ),
        (
            r#"{"num_attention_heads": [8, 8, 0, 8]}"#,
            "`num_attention_heads`[2] = 0",
        ),
        (
            r#"{"block_out_channels": [320, 640, 0, 1280]}"#,
            "`block_out_channels`[2] = 0",
        ),
        (
            r#"{"norm_num_groups": 7}"#,
            "not a multiple of `norm_num_groups` = 7",
        ),
        (r#"{"in_channels": 0}"#, "`in_channels` = 0"),
        (r#"{"conv_in_kernel": 0}"#, "`conv_in_kernel` = 0"),
        (r#"{"conv_out_kernel": 4}"#, "`conv_out_kernel` = 4"),
        (r#"{"layers_per_block": 0}"#, "`layers_per_block`[0] = 0"),
        (
            r#"{"cross_attention_dim": 0}"#,
            "`cross_attention_dim`[0] = 0",
        ),
        (r#"{"sample_size": 0}"#, "`sample_size` = 0"),
        (r#"{"norm_eps": 0}"#, "`norm_eps` = 0"),
    ] {
        let err = UNetConfig::from_json(json).unwrap_err();
        assert!(err.contains(key), "{json}: {err}");
    }
}

#[test]
fn null_flags_read_as_false_like_diffusers() {
    let c = UNetConfig::from_json(
        r#"{"upcast_attention": null, "use_linear_projection": null, "dual_cross_attention": null,
            "center_input_sample": null}"#,
    )
    .unwrap();
    assert!(!c.upcast_attention && !c.use_linear_projection);
}
