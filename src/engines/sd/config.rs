//! diffusers / transformers `config.json` files mapped onto typed structs. Missing keys take the
//! defaults of diffusers' (and transformers') constructors; unknown keys are ignored, so fine-tunes
//! that carry extra keys still load. Values given as "one for all blocks or a list" are resolved into
//! one entry per down block here, so the model code never branches on the JSON's shape.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A JSON value that is either one number for every block or a list with one per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

impl OneOrMany {
    fn per_block(&self, blocks: usize, key: &str) -> std::result::Result<Vec<usize>, String> {
        match self {
            Self::One(v) => Ok(vec![*v; blocks]),
            Self::Many(v) if v.len() == blocks => Ok(v.clone()),
            Self::Many(v) => Err(format!(
                "`{key}` has {} entries but the model has {blocks} down blocks",
                v.len()
            )),
        }
    }
}

/// `sample_size` is an int or `[height, width]`; the first is what diffusers' tiling uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SampleSize {
    One(usize),
    Many(Vec<usize>),
}

impl SampleSize {
    fn first(&self) -> Option<usize> {
        match self {
            Self::One(v) => Some(*v),
            Self::Many(v) => v.first().copied(),
        }
    }
}

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
fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn f_one() -> f64 {
    1.0
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
fn silu() -> String {
    "silu".to_string()
}
fn default_str() -> String {
    "default".to_string()
}
fn positional() -> String {
    "positional".to_string()
}

/// `unet/config.json` as written by diffusers' UNet2DConditionModel.
#[derive(Debug, Clone, Deserialize)]
struct RawUNetConfig {
    sample_size: Option<SampleSize>,
    #[serde(default = "four")]
    in_channels: usize,
    #[serde(default = "four")]
    out_channels: usize,
    #[serde(default)]
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
    #[serde(default)]
    dual_cross_attention: bool,
    #[serde(default)]
    use_linear_projection: bool,
    class_embed_type: Option<String>,
    addition_embed_type: Option<String>,
    addition_time_embed_dim: Option<usize>,
    #[serde(default)]
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

fn unsupported(key: &str, value: impl std::fmt::Debug) -> String {
    format!("`{key}` = {value:?} is not supported by this engine")
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
        let reverse_transformer_layers_per_block = match r.reverse_transformer_layers_per_block {
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
        let time_embedding_dim = r.time_embedding_dim.unwrap_or(r.block_out_channels[0] * 4);
        for (i, (&c, &h)) in r
            .block_out_channels
            .iter()
            .zip(&num_attention_heads)
            .enumerate()
        {
            if h == 0 || c % h != 0 || c % norm_num_groups != 0 {
                return Err(format!(
                    "block {i}: {c} channels do not split into {h} heads and {norm_num_groups} groups"
                ));
            }
        }
        Ok(Self {
            sample_size: r.sample_size.as_ref().and_then(SampleSize::first),
            in_channels: r.in_channels,
            out_channels: r.out_channels,
            center_input_sample: r.center_input_sample,
            flip_sin_to_cos: r.flip_sin_to_cos,
            freq_shift: r.freq_shift,
            layers_per_block: r.layers_per_block.per_block(blocks, "layers_per_block")?,
            cross_attention_dim: r
                .cross_attention_dim
                .per_block(blocks, "cross_attention_dim")?,
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

fn vae_down_blocks() -> Vec<String> {
    vec!["DownEncoderBlock2D".to_string()]
}
fn vae_up_blocks() -> Vec<String> {
    vec!["UpDecoderBlock2D".to_string()]
}
fn vae_channels() -> Vec<usize> {
    vec![64]
}
fn vae_sample() -> usize {
    32
}
fn sd_scaling() -> f64 {
    0.18215
}
fn groups32_plain() -> usize {
    32
}

/// `vae/config.json` as written by diffusers' AutoencoderKL.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "vae_down_blocks")]
    pub down_block_types: Vec<String>,
    #[serde(default = "vae_up_blocks")]
    pub up_block_types: Vec<String>,
    #[serde(default = "vae_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "silu")]
    pub act_fn: String,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "groups32_plain")]
    pub norm_num_groups: usize,
    #[serde(default = "vae_sample", deserialize_with = "sample_size_first")]
    pub sample_size: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub force_upcast: bool,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn sample_size_first<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<usize, D::Error> {
    let s = SampleSize::deserialize(d)?;
    s.first()
        .ok_or_else(|| serde::de::Error::custom("sample_size is an empty list"))
}

impl VaeConfig {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let c: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.block_out_channels.is_empty()
            || c.down_block_types.len() != c.block_out_channels.len()
            || c.up_block_types.len() != c.block_out_channels.len()
        {
            return Err(
                "down_block_types, up_block_types and block_out_channels must agree".into(),
            );
        }
        if let Some(t) = c
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(unsupported("down_block_types", t));
        }
        if let Some(t) = c.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(unsupported("up_block_types", t));
        }
        if c.act_fn != "silu" {
            return Err(unsupported("act_fn", &c.act_fn));
        }
        if c.block_out_channels
            .iter()
            .any(|ch| ch % c.norm_num_groups != 0)
        {
            return Err("block_out_channels must be multiples of norm_num_groups".into());
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    /// Pixels per latent along each side (8 for every SD VAE).
    pub fn downscale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// `eos_token_id` may be one id or a list; transformers compares against one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum IdOrIds {
    One(u32),
    Many(Vec<u32>),
}

fn vocab() -> usize {
    49408
}
fn hidden512() -> usize {
    512
}
fn inter2048() -> usize {
    2048
}
fn twelve() -> usize {
    12
}
fn eight() -> usize {
    8
}
fn seventy_seven() -> usize {
    77
}
fn quick_gelu() -> String {
    "quick_gelu".to_string()
}
fn eos_default() -> u32 {
    49407
}
fn bos_default() -> u32 {
    49406
}
fn pad_default() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
struct RawTextEncoderConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default = "vocab")]
    vocab_size: usize,
    #[serde(default = "hidden512")]
    hidden_size: usize,
    #[serde(default = "inter2048")]
    intermediate_size: usize,
    projection_dim: Option<usize>,
    #[serde(default = "twelve")]
    num_hidden_layers: usize,
    #[serde(default = "eight")]
    num_attention_heads: usize,
    #[serde(default = "seventy_seven")]
    max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<IdOrIds>,
}

/// `text_encoder*/config.json` as written by transformers' CLIPTextModel(WithProjection).
#[derive(Debug, Clone)]
pub struct TextEncoderConfig {
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub projection_dim: Option<usize>,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub pad_token_id: u32,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

impl TextEncoderConfig {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let r: RawTextEncoderConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !matches!(
            r.hidden_act.as_str(),
            "quick_gelu" | "gelu" | "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(unsupported("hidden_act", &r.hidden_act));
        }
        if r.num_attention_heads == 0 || !r.hidden_size.is_multiple_of(r.num_attention_heads) {
            return Err("hidden_size must be a multiple of num_attention_heads".into());
        }
        let eos_token_id = match r.eos_token_id {
            None => eos_default(),
            Some(IdOrIds::One(id)) => id,
            Some(IdOrIds::Many(ids)) => ids.first().copied().unwrap_or_else(eos_default),
        };
        Ok(Self {
            architectures: r.architectures,
            vocab_size: r.vocab_size,
            hidden_size: r.hidden_size,
            intermediate_size: r.intermediate_size,
            projection_dim: r.projection_dim,
            num_hidden_layers: r.num_hidden_layers,
            num_attention_heads: r.num_attention_heads,
            max_position_embeddings: r.max_position_embeddings,
            hidden_act: r.hidden_act,
            layer_norm_eps: r.layer_norm_eps.unwrap_or(1e-5),
            pad_token_id: r.pad_token_id.unwrap_or_else(pad_default),
            bos_token_id: r.bos_token_id.unwrap_or_else(bos_default),
            eos_token_id,
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }
}

fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; a diffusers model folder needs this config.json beside its weights",
            path.display()
        ))
    })
}

fn bad_config(path: &Path, why: &str) -> Error {
    Error::bad_input(format!(
        "{} is not a usable diffusers config: {why}",
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
    fn vae_config_defaults_and_list_sample_size() {
        let c = VaeConfig::from_json(r#"{"block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],
            "sample_size": [512, 512], "scaling_factor": 0.13025}"#)
        .unwrap();
        assert_eq!(c.sample_size, 512);
        assert_eq!(c.downscale_factor(), 8);
        assert_eq!(c.latent_channels, 4);
        assert!(c.force_upcast && c.use_quant_conv && c.mid_block_add_attention);
        assert_eq!(c.shift_factor, None);
        let d = VaeConfig::from_json("{}").unwrap();
        assert!((d.scaling_factor - 0.18215).abs() < 1e-12);
        assert_eq!(d.sample_size, 32);
    }

    #[test]
    fn text_encoder_config_defaults_and_eos_list() {
        let c = TextEncoderConfig::from_json(
            r#"{"hidden_act": "gelu", "eos_token_id": [2, 3],
            "hidden_size": 64, "num_attention_heads": 4}"#,
        )
        .unwrap();
        assert_eq!(c.eos_token_id, 2);
        assert_eq!(c.max_position_embeddings, 77);
        assert_eq!(c.projection_dim, None);
        assert!((c.layer_norm_eps - 1e-5).abs() < 1e-15);
        assert!(TextEncoderConfig::from_json(r#"{"hidden_act": "relu"}"#).is_err());
    }

    #[test]
    fn missing_config_file_is_bad_input() {
        let err = UNetConfig::load(Path::new("/nonexistent/unet/config.json")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("config.json"));
    }
}
