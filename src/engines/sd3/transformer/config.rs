//! `transformer/config.json` of an SD 3 / 3.5 model (diffusers' SD3Transformer2DModel), read with
//! diffusers' defaults for missing keys and checked: every value the transformer divides or
//! indexes by, and the options it does not implement, refused by key.

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check::{self as check, Check, bad_config, read_config, unsupported};
use crate::error::Result;

/// The config's own keys; `None` (missing or null) takes diffusers' default.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConfig {
    patch_size: Option<usize>,
    in_channels: Option<usize>,
    num_layers: Option<usize>,
    attention_head_dim: Option<usize>,
    num_attention_heads: Option<usize>,
    joint_attention_dim: Option<usize>,
    caption_projection_dim: Option<usize>,
    pooled_projection_dim: Option<usize>,
    out_channels: Option<usize>,
    pos_embed_max_size: Option<usize>,
    dual_attention_layers: Option<Vec<usize>>,
    qk_norm: Option<String>,
}

/// The transformer's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sd3TransformerConfig {
    /// Side of the square latent patches (2).
    pub patch_size: usize,
    /// Latent channels (16).
    pub in_channels: usize,
    pub out_channels: usize,
    /// Joint (MMDiT) blocks; the last one updates only the image stream.
    pub num_layers: usize,
    pub attention_head_dim: usize,
    pub num_attention_heads: usize,
    /// The text states' width (T5-XXL's 4096).
    pub joint_attention_dim: usize,
    /// The text stream's width inside the model (= the model width).
    pub caption_projection_dim: usize,
    /// Both CLIPs' pooled outputs side by side (768 + 1280).
    pub pooled_projection_dim: usize,
    /// Side of the grid of learned positions; crops are taken from its centre.
    pub pos_embed_max_size: usize,
    /// Blocks with a second, image-only attention (MMDiT-X: SD 3.5 Medium's first 13).
    pub dual_attention_layers: Vec<usize>,
    /// RMSNorm on queries and keys per head (SD 3.5's; SD 3's has none).
    pub qk_norm: bool,
}

impl Sd3TransformerConfig {
    /// Parses and checks a config.json's text; errors are reasons naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let qk_norm = match raw.qk_norm.as_deref() {
            None => false,
            Some("rms_norm") => true,
            Some(other) => return Err(unsupported("qk_norm", other)),
        };
        let in_channels = raw.in_channels.unwrap_or(16);
        let c = Self {
            patch_size: raw.patch_size.unwrap_or(2),
            in_channels,
            out_channels: raw.out_channels.unwrap_or(16),
            num_layers: raw.num_layers.unwrap_or(18),
            attention_head_dim: raw.attention_head_dim.unwrap_or(64),
            num_attention_heads: raw.num_attention_heads.unwrap_or(18),
            joint_attention_dim: raw.joint_attention_dim.unwrap_or(4096),
            caption_projection_dim: raw.caption_projection_dim.unwrap_or(1152),
            pooled_projection_dim: raw.pooled_projection_dim.unwrap_or(2048),
            pos_embed_max_size: raw.pos_embed_max_size.unwrap_or(96),
            dual_attention_layers: raw.dual_attention_layers.unwrap_or_default(),
            qk_norm,
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
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("num_layers", self.num_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("pooled_projection_dim", self.pooled_projection_dim),
            ("pos_embed_max_size", self.pos_embed_max_size),
        ])?;
        // The text stream shares the joint attention's heads with the image stream.
        if self.caption_projection_dim != self.inner_dim() {
            return Err(format!(
                "`caption_projection_dim` = {} differs from num_attention_heads x \
                 attention_head_dim = {}: the text and image streams attend jointly, so they \
                 must be as wide",
                self.caption_projection_dim,
                self.inner_dim()
            ));
        }
        if let Some(&i) = self
            .dual_attention_layers
            .iter()
            .find(|&&i| i >= self.num_layers)
        {
            return Err(format!(
                "`dual_attention_layers` names block {i}, but `num_layers` = {}",
                self.num_layers
            ));
        }
        Ok(())
    }

    /// The model width: heads x head size.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// The feed-forwards' hidden width (mlp_ratio 4).
    pub fn mlp_dim(&self) -> usize {
        4 * self.inner_dim()
    }

    /// Whether block `i` has the second, image-only attention.
    pub fn dual_attention(&self, i: usize) -> bool {
        self.dual_attention_layers.contains(&i)
    }

    /// Whether block `i` is the last, which leaves the text stream as it is.
    pub fn context_pre_only(&self, i: usize) -> bool {
        i + 1 == self.num_layers
    }

    /// Parameters of the whole transformer (every weight and bias), for the memory planner.
    pub fn parameters(&self) -> u64 {
        let d = self.inner_dim() as u64;
        let m = self.mlp_dim() as u64;
        let p = self.patch_size as u64;
        let lin = |i: u64, o: u64| i * o + o;
        let head = self.attention_head_dim as u64;
        let norms = if self.qk_norm { 2 * head } else { 0 };
        let max = self.pos_embed_max_size as u64;
        let mut n = lin(self.in_channels as u64 * p * p, d)
            + max * max * d
            + lin(256, d)
            + lin(d, d)
            + lin(self.pooled_projection_dim as u64, d)
            + lin(d, d)
            + lin(self.joint_attention_dim as u64, d);
        let attn = lin(d, 3 * d) + lin(d, d) + norms;
        let mlp = lin(d, m) + lin(m, d);
        for i in 0..self.num_layers {
            let x_mod = if self.dual_attention(i) { 9 } else { 6 };
            n += lin(d, x_mod * d) + attn + mlp;
            if self.dual_attention(i) {
                n += attn;
            }
            n += if self.context_pre_only(i) {
                lin(d, 2 * d) + lin(d, 3 * d) + norms
            } else {
                lin(d, 6 * d) + attn + mlp
            };
        }
        n + lin(d, 2 * d) + lin(d, p * p * self.out_channels as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// stabilityai/stable-diffusion-3.5-medium's transformer/config.json.
    const MEDIUM: &str = r#"{"attention_head_dim": 64, "caption_projection_dim": 1536,
        "dual_attention_layers": [0,1,2,3,4,5,6,7,8,9,10,11,12], "in_channels": 16,
        "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 24,
        "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048,
        "pos_embed_max_size": 384, "qk_norm": "rms_norm", "sample_size": 128}"#;

    /// stabilityai/stable-diffusion-3.5-large's.
    const LARGE: &str = r#"{"attention_head_dim": 64, "caption_projection_dim": 2432,
        "in_channels": 16, "joint_attention_dim": 4096, "num_attention_heads": 38,
        "num_layers": 38, "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048,
        "pos_embed_max_size": 192, "qk_norm": "rms_norm", "sample_size": 128}"#;

    #[test]
    fn medium_and_large_have_their_published_sizes() {
        let m = Sd3TransformerConfig::from_json(MEDIUM).unwrap();
        assert!(m.dual_attention(12) && !m.dual_attention(13));
        assert!(m.context_pre_only(23));
        // 2.47 B parameters (sd3.5_medium's transformer: 4.94 GB in bf16).
        let p = m.parameters();
        assert!((2_400_000_000..2_550_000_000).contains(&p), "{p}");
        let l = Sd3TransformerConfig::from_json(LARGE).unwrap();
        // 8.06 B parameters (16.1 GB in bf16).
        let p = l.parameters();
        assert!((8_000_000_000..8_200_000_000).contains(&p), "{p}");
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let e = Sd3TransformerConfig::from_json(r#"{"qk_norm": "layer_norm"}"#).unwrap_err();
        assert!(e.contains("`qk_norm`"), "{e}");
        let e = Sd3TransformerConfig::from_json(r#"{"num_attention_heads": 0}"#).unwrap_err();
        assert!(e.contains("`num_attention_heads` = 0"), "{e}");
        let e = Sd3TransformerConfig::from_json(r#"{"caption_projection_dim": 1000}"#).unwrap_err();
        assert!(e.contains("`caption_projection_dim`"), "{e}");
        let e = Sd3TransformerConfig::from_json(
            r#"{"caption_projection_dim": 1152, "num_layers": 2, "dual_attention_layers": [2]}"#,
        )
        .unwrap_err();
        assert!(e.contains("`dual_attention_layers`"), "{e}");
    }
}
