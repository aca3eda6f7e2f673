//! `unet/config.json` (diffusers' UNet2DConditionModel).

use std::path::Path;

use serde::Deserialize;

use super::{
    OneOrMany, SampleSize, bad_config, f_one, four, one, read_config, silu, three, unsupported, yes,
};
use crate::error::Result;

fn default_unet_down_blocks() -> Vec<String> {
    let mut v = vec!["CrossAttnDownBlock2D".to_string(); 3];
    v.push("DownBlock2D".to_string());
    v
}
fn default_unet_up_blocks() -> Vec<String> {
    let mut v = vec!["UpBlock2D".to_string()];
    v.extend(vec!["CrossAttnUpBlock2D".to_string(); 3]);
    v
}
fn default_mid_block() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".to_string())
}
fn groups32() -> Option<usize> {
    Some(32)
}
fn eps_1e5() -> f64 {
    1e-5
}
fn unet_channels() -> Vec<usize> {
    vec![320, 640, 1280, 1280]
}
fn two_layers() -> OneOrMany {
    OneOrMany::One(2)
}
fn one_layer() -> OneOrMany {
    OneOrMany::One(1)
}
fn cross_dim() -> OneOrMany {
    OneOrMany::One(1280)
}
fn head_dim() -> OneOrMany {
    OneOrMany::One(8)
}
fn default_str() -> String {
    "default".to_string()
}
fn positional() -> String {
    "positional".to_string()
}

/// Real configs write `null` for unset flags (SDXL's `"upcast_attention": null`); diffusers treats
/// `None` as false there.
fn null_is_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// `unet/config.json` as written by diffusers' UNet2DConditionModel.
#[derive(Debug, Clone, Deserialize)]
struct RawUNetConfig {
    sample_size: Option<SampleSize>,
    #[serde(default = "four")]
    in_channels: usize,
    #[serde(default = "four")]
    out_channels: usize,
    #[serde(default, deserialize_with = "null_is_false")]
    center_input_sample: bool,
    #[serde(default = "yes")]
    flip_sin_to_cos: bool,
    #[serde(default)]
    freq_shift: f64,
    #[serde(default = "default_unet_down_blocks")]
    down_block_types: Vec<String>,
    #[serde(default = "default_mid_block")]
    mid_block_type: Option<String>,
    #[serde(default = "default_unet_up_blocks")]
    up_block_types: Vec<String>,
    #[serde(default)]
    only_cross_attention: serde_json::Value,
    #[serde(default = "unet_channels")]
    block_out_channels: Vec<usize>,
    #[serde(default = "two_layers")]
    layers_per_block: OneOrMany,
    #[serde(default = "one")]
    downsample_padding: usize,
    #[serde(default = "f_one")]
    mid_block_scale_factor: f64,
    #[serde(default = "silu")]
    act_fn: String,
    #[serde(default = "groups32")]
    norm_num_groups: Option<usize>,
    #[serde(default = "eps_1e5")]
    norm_eps: f64,
    #[serde(default = "cross_dim")]
    cross_attention_dim: OneOrMany,
    #[serde(default = "one_layer")]
    transformer_layers_per_block: OneOrMany,
    reverse_transformer_layers_per_block: Option<Vec<usize>>,
    encoder_hid_dim_type: Option<String>,
    #[serde(default = "head_dim")]
    attention_head_dim: OneOrMany,
    num_attention_heads: Option<OneOrMany>,
    #[serde(default, deserialize_with = "null_is_false")]
    dual_cross_attention: bool,
    #[serde(default, deserialize_with = "null_is_false")]
    use_linear_projection: bool,
    class_embed_type: Option<String>,
    addition_embed_type: Option<String>,
    addition_time_embed_dim: Option<usize>,
    #[serde(default, deserialize_with = "null_is_false")]
    upcast_attention: bool,
    #[serde(default = "default_str")]
    resnet_time_scale_shift: String,
    #[serde(default = "f_one")]
    resnet_out_scale_factor: f64,
    #[serde(default = "positional")]
    time_embedding_type: String,
    time_embedding_dim: Option<usize>,
    time_embedding_act_fn: Option<String>,
    timestep_post_act: Option<String>,
    time_cond_proj_dim: Option<usize>,
    #[serde(default = "three")]
    conv_in_kernel: usize,
    #[serde(default = "three")]
    conv_out_kernel: usize,
    projection_class_embeddings_input_dim: Option<usize>,
    #[serde(default = "default_str")]
    attention_type: String,
}

/// The UNet's configuration, resolved to one entry per down block (up blocks use them reversed).
#[derive(Debug, Clone)]
pub struct UNetConfig {
    pub sample_size: Option<usize>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub mid_block_type: Option<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: Vec<usize>,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub cross_attention_dim: Vec<usize>,
    pub transformer_layers_per_block: Vec<usize>,
    /// Transformer layers per up block, in up-block order.
    pub reverse_transformer_layers_per_block: Vec<usize>,
    /// As written in the file; diffusers uses it as the number of heads when
    /// `num_attention_heads` is absent (a historical misnomer kept for compatibility).
    pub attention_head_dim: Vec<usize>,
    /// Heads per down block (resolved: `num_attention_heads` or else `attention_head_dim`).
    pub num_attention_heads: Vec<usize>,
    pub use_linear_projection: bool,
    pub upcast_attention: bool,
    pub addition_embed_type: Option<String>,
    pub addition_time_embed_dim: Option<usize>,
    pub projection_class_embeddings_input_dim: Option<usize>,
    pub resnet_out_scale_factor: f64,
    pub time_embedding_dim: usize,
    pub conv_in_kernel: usize,
    pub conv_out_kernel: usize,
}

impl UNetConfig {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawUNetConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::try_from(raw)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    /// Whether this UNet takes SDXL's added conditioning (pooled text embeddings + size/crop ids).
    pub fn needs_added_conditioning(&self) -> bool {
        self.addition_embed_type.as_deref() == Some("text_time")
    }
}

impl TryFrom<RawUNetConfig> for UNetConfig {
    type Error = String;

    fn try_from(r: RawUNetConfig) -> std::result::Result<Self, String> {
        let blocks = r.down_block_types.len();
        if blocks == 0 || r.block_out_channels.len() != blocks || r.up_block_types.len() != blocks {
            return Err(format!(
                "{} down blocks, {} up blocks and {} block_out_channels must agree",
                blocks,
                r.up_block_types.len(),
                r.block_out_channels.len()
            ));
        }
        // Refuse features whose weights or arithmetic we do not implement, rather than load
        // a model that silently computes something else.
        let refuse = [
            ("class_embed_type", r.class_embed_type.is_some()),
            ("encoder_hid_dim_type", r.encoder_hid_dim_type.is_some()),
            ("dual_cross_attention", r.dual_cross_attention),
            ("time_cond_proj_dim", r.time_cond_proj_dim.is_some()),
            ("timestep_post_act", r.timestep_post_act.is_some()),
            ("time_embedding_act_fn", r.time_embedding_act_fn.is_some()),
            ("act_fn", r.act_fn != "silu"),
            (
                "resnet_time_scale_shift",
                r.resnet_time_scale_shift != "default",
            ),
            ("time_embedding_type", r.time_embedding_type != "positional"),
            ("attention_type", r.attention_type != "default"),
            (
                "only_cross_attention",
                !matches!(
                    r.only_cross_attention,
                    serde_json::Value::Null | serde_json::Value::Bool(false)
                ),
            ),
        ];
        if let Some((key, _)) = refuse.iter().find(|(_, bad)| *bad) {
            return Err(format!("`{key}` has a value this engine does not support"));
        }
        match r.addition_embed_type.as_deref() {
            None => {}
            Some("text_time")
                if r.addition_time_embed_dim.is_none()
                    || r.projection_class_embeddings_input_dim.is_none() =>
            {
                return Err(
                    "addition_embed_type \"text_time\" needs addition_time_embed_dim \
                            and projection_class_embeddings_input_dim"
                        .to_string(),
                );
            }
            Some("text_time") => {}
            Some(other) => return Err(unsupported("addition_embed_type", other)),
        }
        if let Some(mid) = r.mid_block_type.as_deref()
            && mid != "UNetMidBlock2DCrossAttn"
        {
            return Err(unsupported("mid_block_type", mid));
        }
        for t in &r.down_block_types {
            if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
                return Err(unsupported("down_block_types", t));
            }
        }
        for t in &r.up_block_types {
            if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
                return Err(unsupported("up_block_types", t));
            }
        }
        let attention_head_dim = r
            .attention_head_dim
            .per_block(blocks, "attention_head_dim")?;
        let num_attention_heads = match &r.num_attention_heads {
            Some(h) => h.per_block(blocks, "num_attention_heads")?,
            None => attention_head_dim.clone(),
        };
        let transformer_layers_per_block = r
            .transformer_layers_per_block
            .per_block(blocks, "transformer_layers_per_block")?;
        let reverse_transformer_layers_per_block =
            match r.reverse_transformer_layers_per_block.clone() {
                Some(v) if v.len() == blocks => v,
                Some(v) => {
                    return Err(format!(
                        "`reverse_transformer_layers_per_block` has {} entries, expected {blocks}",
                        v.len()
                    ));
                }
                None => transformer_layers_per_block.iter().rev().copied().collect(),
            };
        let norm_num_groups = r
            .norm_num_groups
            .ok_or_else(|| unsupported("norm_num_groups", "null"))?;
        let layers_per_block = r.layers_per_block.per_block(blocks, "layers_per_block")?;
        let cross_attention_dim = r
            .cross_attention_dim
            .per_block(blocks, "cross_attention_dim")?;
        check_sizes(
            &r,
            norm_num_groups,
            &num_attention_heads,
            &layers_per_block,
            &cross_attention_dim,
            &transformer_layers_per_block,
        )?;
        let time_embedding_dim = r.time_embedding_dim.unwrap_or(r.block_out_channels[0] * 4);
        Ok(Self {
            sample_size: r.sample_size.as_ref().and_then(SampleSize::first),
            in_channels: r.in_channels,
            out_channels: r.out_channels,
            center_input_sample: r.center_input_sample,
            flip_sin_to_cos: r.flip_sin_to_cos,
            freq_shift: r.freq_shift,
            layers_per_block,
            cross_attention_dim,
            down_block_types: r.down_block_types,
            mid_block_type: r.mid_block_type,
            up_block_types: r.up_block_types,
            block_out_channels: r.block_out_channels,
            downsample_padding: r.downsample_padding,
            mid_block_scale_factor: r.mid_block_scale_factor,
            norm_num_groups,
            norm_eps: r.norm_eps,
            transformer_layers_per_block,
            reverse_transformer_layers_per_block,
            attention_head_dim,
            num_attention_heads,
            use_linear_projection: r.use_linear_projection,
            upcast_attention: r.upcast_attention,
            addition_embed_type: r.addition_embed_type,
            addition_time_embed_dim: r.addition_time_embed_dim,
            projection_class_embeddings_input_dim: r.projection_class_embeddings_input_dim,
            resnet_out_scale_factor: r.resnet_out_scale_factor,
            time_embedding_dim,
            conv_in_kernel: r.conv_in_kernel,
            conv_out_kernel: r.conv_out_kernel,
        })
    }
}

mod checks;
use checks::check_sizes;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
