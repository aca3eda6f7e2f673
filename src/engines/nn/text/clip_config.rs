//! `text_encoder*/config.json` (transformers' CLIPTextModel / CLIPTextModelWithProjection).

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check::{self as check, bad_config, read_config, unsupported};
use crate::error::Result;

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
        check::positive(&[
            ("vocab_size", r.vocab_size),
            ("hidden_size", r.hidden_size),
            ("intermediate_size", r.intermediate_size),
            ("num_hidden_layers", r.num_hidden_layers),
            ("max_position_embeddings", r.max_position_embeddings),
            ("projection_dim", r.projection_dim.unwrap_or(1)),
        ])?;
        check::multiple_of(
            "hidden_size",
            r.hidden_size,
            "num_attention_heads",
            r.num_attention_heads,
        )?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        for (json, key) in [
            (r#"{"num_attention_heads": 0}"#, "`num_attention_heads` = 0"),
            (r#"{"vocab_size": 0}"#, "`vocab_size` = 0"),
            (
                r#"{"hidden_size": 100, "num_attention_heads": 8}"#,
                "`hidden_size` = 100",
            ),
            (
                r#"{"max_position_embeddings": 0}"#,
                "`max_position_embeddings` = 0",
            ),
        ] {
            let err = TextEncoderConfig::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
