//! `transformer/config.json` of a FLUX.1 model (diffusers' FluxTransformer2DModel), read with
//! diffusers' defaults for missing keys and checked: every value the transformer divides or
//! indexes by, and what it does not implement (patches other than 1), refused by name.

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check::{self as check, Check, bad_config, read_config, unsupported};
use crate::error::Result;

/// The config's own keys; `None` (missing or null) takes diffusers' default (FLUX.1's shape).
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConfig {
    patch_size: Option<usize>,
    in_channels: Option<usize>,
    out_channels: Option<usize>,
    num_layers: Option<usize>,
    num_single_layers: Option<usize>,
    attention_head_dim: Option<usize>,
    num_attention_heads: Option<usize>,
    joint_attention_dim: Option<usize>,
    pooled_projection_dim: Option<usize>,
    guidance_embeds: Option<bool>,
    axes_dims_rope: Option<Vec<usize>>,
}

/// The transformer's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxTransformerConfig {
    /// Packed latent channels (16 latent channels x a 2x2 patch = 64).
    pub in_channels: usize,
    /// Double-stream (MMDiT) blocks.
    pub num_layers: usize,
    /// Single-stream blocks.
    pub num_single_layers: usize,
    pub attention_head_dim: usize,
    pub num_attention_heads: usize,
    /// T5's hidden size.
    pub joint_attention_dim: usize,
    /// CLIP's pooled size.
    pub pooled_projection_dim: usize,
    /// dev's distilled guidance embedding (schnell has none).
    pub guidance_embeds: bool,
    /// Head values per rotary axis (text/image index, row, column); they add up to a head.
    pub axes_dims_rope: Vec<usize>,
    /// `None`: as many as `in_channels`.
    pub out_channels: Option<usize>,
}

impl FluxTransformerConfig {
    /// Parses and checks a config.json's text; errors are reasons naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        // Only FLUX.1's patch of 1 (the 2x2 packing happens outside, in the pipeline).
        if let Some(p) = raw.patch_size
            && p != 1
        {
            return Err(unsupported("patch_size", p));
        }
        let c = Self {
            in_channels: raw.in_channels.unwrap_or(64),
            num_layers: raw.num_layers.unwrap_or(19),
            num_single_layers: raw.num_single_layers.unwrap_or(38),
            attention_head_dim: raw.attention_head_dim.unwrap_or(128),
            num_attention_heads: raw.num_attention_heads.unwrap_or(24),
            joint_attention_dim: raw.joint_attention_dim.unwrap_or(4096),
            pooled_projection_dim: raw.pooled_projection_dim.unwrap_or(768),
            guidance_embeds: raw.guidance_embeds.unwrap_or(false),
            axes_dims_rope: raw.axes_dims_rope.unwrap_or_else(|| vec![16, 56, 56]),
            out_channels: raw.out_channels,
        };
        c.check()?;
        Ok(c)
    }

    /// A config.json file; every problem is bad input naming the file (and the key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    /// The values the transformer divides or indexes by.
    pub fn check(&self) -> Check {
        check::positive(&[
            ("in_channels", self.in_channels),
            ("num_layers", self.num_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("pooled_projection_dim", self.pooled_projection_dim),
            ("out_channels", self.out_channels()),
        ])?;
        check::all_positive("axes_dims_rope", &self.axes_dims_rope)?;
        if let Some((i, d)) = self
            .axes_dims_rope
            .iter()
            .enumerate()
            .find(|(_, d)| !d.is_multiple_of(2))
        {
            return Err(format!(
                "`axes_dims_rope`[{i}] = {d}: rotary axes pair values, so each must be even"
            ));
        }
        let sum: usize = self.axes_dims_rope.iter().sum();
        if sum != self.attention_head_dim {
            return Err(format!(
                "`axes_dims_rope` = {:?} adds up to {sum}, not `attention_head_dim` = {}: the \
                 rotary axes must cover a head",
                self.axes_dims_rope, self.attention_head_dim
            ));
        }
        Ok(())
    }

    /// The model width: heads x head size.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// The feed-forwards' hidden width (FLUX's mlp_ratio 4).
    pub fn mlp_dim(&self) -> usize {
        4 * self.inner_dim()
    }

    /// Parameters of the whole transformer (every weight and bias), for the memory planner.
    pub fn parameters(&self) -> u64 {
        let d = self.inner_dim() as u64;
        let m = self.mlp_dim() as u64;
        let lin = |i: u64, o: u64| i * o + o;
        let embed = 256 * d + d + lin(d, d); // one timestep-style embedder
        let mut n = lin(self.in_channels as u64, d)
            + lin(self.joint_attention_dim as u64, d)
            + embed
            + lin(self.pooled_projection_dim as u64, d)
            + lin(d, d);
        if self.guidance_embeds {
            n += embed;
        }
        let head = self.attention_head_dim as u64;
        let double =
            2 * (lin(d, 6 * d) + lin(d, 3 * d) + lin(d, d) + lin(d, m) + lin(m, d)) + 4 * head;
        let single = lin(d, 3 * d) + lin(d, 3 * d + m) + lin(d + m, d) + 2 * head;
        n += self.num_layers as u64 * double + self.num_single_layers as u64 * single;
        n + lin(d, 2 * d) + lin(d, self.out_channels() as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_flux_dev_and_schnell_shape() {
        let c = FluxTransformerConfig::from_json("{}").unwrap();
        assert_eq!(c.inner_dim(), 3072);
        assert_eq!(c.out_channels(), 64);
        assert_eq!(c.axes_dims_rope, vec![16, 56, 56]);
        // 11.89 B parameters: 23.8 GB in bf16, the size of flux1-schnell.safetensors; dev adds
        // the guidance embedder.
        assert_eq!(c.parameters(), 11_891_178_560);
        let dev = FluxTransformerConfig::from_json(r#"{"guidance_embeds": true}"#).unwrap();
        assert_eq!(dev.parameters(), 11_901_408_320);
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let e = FluxTransformerConfig::from_json(r#"{"patch_size": 2}"#).unwrap_err();
        assert!(e.contains("`patch_size`"), "{e}");
        let e = FluxTransformerConfig::from_json(r#"{"num_attention_heads": 0}"#).unwrap_err();
        assert!(e.contains("`num_attention_heads` = 0"), "{e}");
        let e = FluxTransformerConfig::from_json(
            r#"{"attention_head_dim": 16, "axes_dims_rope": [4, 6, 4]}"#,
        )
        .unwrap_err();
        assert!(e.contains("adds up to 14"), "{e}");
        let e = FluxTransformerConfig::from_json(
            r#"{"attention_head_dim": 16, "axes_dims_rope": [5, 5, 6]}"#,
        )
        .unwrap_err();
        assert!(e.contains("must be even"), "{e}");
    }

    #[test]
    fn a_missing_file_is_bad_input_naming_it() {
        let path = Path::new("/nonexistent/transformer/config.json");
        let e = FluxTransformerConfig::load(path).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/transformer/config.json"), "{e}");
    }
}
