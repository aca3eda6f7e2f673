//! diffusers' `LTXVideoTransformer3DModel` config.json, with diffusers' defaults (the 2B
//! model's) for what it leaves out.

use std::path::Path;

use crate::error::Result;

fn d_128() -> usize {
    128
}
fn d_one() -> usize {
    1
}
fn d_heads() -> usize {
    32
}
fn d_head_dim() -> usize {
    64
}
fn d_cross() -> usize {
    2048
}
fn d_layers() -> usize {
    28
}
fn d_caption() -> usize {
    4096
}
fn d_eps() -> f64 {
    1e-6
}
fn d_true() -> bool {
    true
}
fn d_act() -> String {
    "gelu-approximate".into()
}
fn d_qk() -> String {
    "rms_norm_across_heads".into()
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct LtxTransformerConfig {
    #[serde(default = "d_128")]
    pub in_channels: usize,
    #[serde(default = "d_128")]
    pub out_channels: usize,
    #[serde(default = "d_one")]
    pub patch_size: usize,
    #[serde(default = "d_one")]
    pub patch_size_t: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "d_cross")]
    pub cross_attention_dim: usize,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    #[serde(default = "d_act")]
    pub activation_fn: String,
    #[serde(default = "d_qk")]
    pub qk_norm: String,
    #[serde(default)]
    pub norm_elementwise_affine: bool,
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    #[serde(default = "d_caption")]
    pub caption_channels: usize,
    #[serde(default = "d_true")]
    pub attention_bias: bool,
    #[serde(default = "d_true")]
    pub attention_out_bias: bool,
}

impl LtxTransformerConfig {
    /// Reads `<dir>/config.json` and checks what the model code relies on.
    pub fn read(dir: &Path) -> Result<Self> {
        super::super::read_config(dir, "an LTX-Video transformer", Self::check)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.qk_norm != "rms_norm_across_heads" {
            return Err(format!(
                "qk_norm {:?}: only rms_norm_across_heads exists in LTX-Video",
                self.qk_norm
            ));
        }
        if self.activation_fn != "gelu-approximate" {
            return Err(format!(
                "activation_fn {:?}: only gelu-approximate is supported",
                self.activation_fn
            ));
        }
        if self.num_attention_heads == 0 || self.attention_head_dim < 2 || self.num_layers == 0 {
            return Err("heads, head size and layers must be positive".into());
        }
        if self.cross_attention_dim != self.inner_dim() {
            return Err(format!(
                "cross_attention_dim {} must equal heads x head size {} (the caption projection's \
                 width)",
                self.cross_attention_dim,
                self.inner_dim()
            ));
        }
        if self.patch_size == 0 || self.patch_size_t == 0 {
            return Err("patch sizes must be positive".into());
        }
        Ok(())
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
}
