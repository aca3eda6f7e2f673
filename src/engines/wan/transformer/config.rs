//! `transformer/config.json` of a Wan model (diffusers' WanTransformer3DModel), with diffusers'
//! defaults for missing keys (Wan 2.1 14B's shape) and checked: every size the transformer
//! divides or indexes by, refused by key otherwise. Wan 2.1 image-to-video's keys (`image_dim`,
//! `added_kv_proj_dim`, FLF2V's `pos_embed_seq_len`) add its CLIP image embedder and image
//! keys/values.

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check::{self as check, bad_config, read_config, unsupported};
use crate::error::Result;

/// The config's own keys; `None` (missing or null) takes diffusers' default.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConfig {
    patch_size: Option<Vec<usize>>,
    num_attention_heads: Option<usize>,
    attention_head_dim: Option<usize>,
    in_channels: Option<usize>,
    out_channels: Option<usize>,
    text_dim: Option<usize>,
    freq_dim: Option<usize>,
    ffn_dim: Option<usize>,
    num_layers: Option<usize>,
    cross_attn_norm: Option<bool>,
    qk_norm: Option<String>,
    eps: Option<f64>,
    image_dim: Option<usize>,
    added_kv_proj_dim: Option<usize>,
    rope_max_seq_len: Option<usize>,
    pos_embed_seq_len: Option<usize>,
}

/// The transformer's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct WanTransformerConfig {
    /// (frames, height, width) of one patch: (1, 2, 2) in every Wan release.
    pub patch_size: [usize; 3],
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    /// Latent channels in (16 for Wan 2.1, 48 for Wan 2.2 TI2V-5B).
    pub in_channels: usize,
    pub out_channels: usize,
    /// The text encoder's width (UMT5-XXL's 4096).
    pub text_dim: usize,
    /// Width of the sinusoidal timestep embedding.
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    /// A LayerNorm (with affine) before the cross-attention.
    pub cross_attn_norm: bool,
    /// RMSNorm on queries and keys across all heads (`"rms_norm_across_heads"`), else none.
    pub qk_norm: bool,
    pub eps: f64,
    /// Positions per axis the rotary tables cover.
    pub rope_max_seq_len: usize,
    /// Width of the CLIP image features (1280, Wan 2.1 I2V): the model has an image embedder.
    pub image_dim: Option<usize>,
    /// Input width of the cross-attention's image keys/values (the model width in Wan 2.1 I2V).
    pub added_kv_proj_dim: Option<usize>,
    /// FLF2V: a learned position embedding over the first and last frames' image tokens.
    pub pos_embed_seq_len: Option<usize>,
}

impl WanTransformerConfig {
    /// The model width (heads x head size).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Head values rotated by (frame, row, column) position: diffusers' `WanRotaryPosEmbed`
    /// split, rows and columns `2 * (head / 6)` each, frames the rest.
    pub fn rope_axes(&self) -> [usize; 3] {
        let hw = 2 * (self.attention_head_dim / 6);
        [self.attention_head_dim - 2 * hw, hw, hw]
    }

    /// Parses and checks a config.json's text; errors are reasons naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let patch = raw.patch_size.unwrap_or_else(|| vec![1, 2, 2]);
        let patch_size: [usize; 3] = patch
            .as_slice()
            .try_into()
            .map_err(|_| format!("`patch_size` = {patch:?}: it needs 3 entries"))?;
        let qk_norm = match raw.qk_norm.as_deref() {
            None | Some("rms_norm_across_heads") => true,
            Some(other) => return Err(unsupported("qk_norm", other)),
        };
        let in_channels = raw.in_channels.unwrap_or(16);
        let c = Self {
            patch_size,
            num_attention_heads: raw.num_attention_heads.unwrap_or(40),
            attention_head_dim: raw.attention_head_dim.unwrap_or(128),
            in_channels,
            out_channels: raw.out_channels.unwrap_or(in_channels),
            text_dim: raw.text_dim.unwrap_or(4096),
            freq_dim: raw.freq_dim.unwrap_or(256),
            ffn_dim: raw.ffn_dim.unwrap_or(13824),
            num_layers: raw.num_layers.unwrap_or(40),
            cross_attn_norm: raw.cross_attn_norm.unwrap_or(true),
            qk_norm,
            eps: raw.eps.unwrap_or(1e-6),
            rope_max_seq_len: raw.rope_max_seq_len.unwrap_or(1024),
            image_dim: raw.image_dim,
            added_kv_proj_dim: raw.added_kv_proj_dim,
            pos_embed_seq_len: raw.pos_embed_seq_len,
        };
        check::positive(&[
            ("num_attention_heads", c.num_attention_heads),
            ("attention_head_dim", c.attention_head_dim),
            ("in_channels", c.in_channels),
            ("out_channels", c.out_channels),
            ("text_dim", c.text_dim),
            ("ffn_dim", c.ffn_dim),
            ("num_layers", c.num_layers),
            ("rope_max_seq_len", c.rope_max_seq_len),
        ])?;
        check::all_positive("patch_size", &c.patch_size)?;
        for (key, value) in [
            ("image_dim", c.image_dim),
            ("added_kv_proj_dim", c.added_kv_proj_dim),
            ("pos_embed_seq_len", c.pos_embed_seq_len),
        ] {
            if let Some(v) = value {
                check::positive(&[(key, v)])?;
            }
        }
        if c.pos_embed_seq_len.is_some() && c.image_dim.is_none() {
            return Err("`pos_embed_seq_len` is set without `image_dim`".to_string());
        }
        check::positive_float("eps", c.eps)?;
        if c.freq_dim < 2 || !c.freq_dim.is_multiple_of(2) {
            return Err(format!(
                "`freq_dim` = {}: it must be even and at least 2",
                c.freq_dim
            ));
        }
        if c.attention_head_dim < 6 || !c.attention_head_dim.is_multiple_of(2) {
            return Err(format!(
                "`attention_head_dim` = {}: it must be even and at least 6 (frame, row and \
                 column rotary parts)",
                c.attention_head_dim
            ));
        }
        Ok(c)
    }

    /// Reads and checks `path`; a bad file is bad input naming it and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_wan_14b_and_rope_splits_the_head() {
        let c = WanTransformerConfig::from_json("{}").unwrap();
        assert_eq!(c.inner_dim(), 5120);
        assert_eq!(c.rope_axes(), [44, 42, 42]);
        assert_eq!(c.out_channels, 16);
        let c = WanTransformerConfig::from_json(r#"{"attention_head_dim": 16}"#).unwrap();
        assert_eq!(c.rope_axes(), [8, 4, 4]);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (json, want) in [
            (r#"{"num_layers": 0}"#, "`num_layers` = 0"),
            (r#"{"patch_size": [1, 2]}"#, "`patch_size`"),
            (r#"{"freq_dim": 3}"#, "`freq_dim` = 3"),
            (r#"{"attention_head_dim": 4}"#, "`attention_head_dim` = 4"),
            (r#"{"image_dim": 0}"#, "`image_dim` = 0"),
            (r#"{"pos_embed_seq_len": 514}"#, "without `image_dim`"),
            (r#"{"qk_norm": "layer_norm"}"#, "qk_norm"),
        ] {
            let err = WanTransformerConfig::from_json(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
