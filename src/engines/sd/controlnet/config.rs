//! A diffusers ControlNetModel config: the UNet config of its encoding half (its keys are the
//! UNet's, less the up blocks) and the conditioning embedding's.

use std::path::Path;

use serde::Deserialize;

use crate::engines::sd::config::UNetConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ControlNetConfig {
    /// The encoding half, read as a UNet config with mirrored up blocks (unused).
    pub unet: UNetConfig,
    pub conditioning_channels: usize,
    pub conditioning_embedding_out_channels: Vec<usize>,
    /// `controlnet_conditioning_channel_order`: "bgr" flips the control image's channels.
    pub bgr: bool,
}

fn three() -> usize {
    3
}
fn cond_channels() -> Vec<usize> {
    vec![16, 32, 96, 256]
}
fn rgb() -> String {
    "rgb".to_owned()
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default = "three")]
    conditioning_channels: usize,
    #[serde(default = "cond_channels")]
    conditioning_embedding_out_channels: Vec<usize>,
    #[serde(default = "rgb")]
    controlnet_conditioning_channel_order: String,
    #[serde(default)]
    global_pool_conditions: bool,
    #[serde(default)]
    class_embed_type: Option<String>,
}

impl ControlNetConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |what: String| Error::bad_input(format!("{}: {what}", path.display()));
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        Self::from_json(&text).map_err(bad)
    }

    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        if raw.global_pool_conditions {
            return Err(
                "global_pool_conditions (shuffle-style ControlNets) is not supported".into(),
            );
        }
        if raw.class_embed_type.is_some() {
            return Err("class_embed_type is not supported".into());
        }
        let order = raw
            .controlnet_conditioning_channel_order
            .to_ascii_lowercase();
        if order != "rgb" && order != "bgr" {
            return Err(format!(
                "controlnet_conditioning_channel_order {order}: not rgb or bgr"
            ));
        }
        if raw.conditioning_embedding_out_channels.is_empty() {
            return Err("conditioning_embedding_out_channels is empty".into());
        }
        // The UNet keys the encoding half uses; the up blocks mirror the down blocks.
        if let Some(obj) = value.as_object_mut() {
            let downs: Vec<String> = obj
                .get("down_block_types")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let ups: Vec<String> = downs
                .iter()
                .rev()
                .map(|d| d.replace("Down", "Up"))
                .collect();
            obj.insert("up_block_types".into(), serde_json::json!(ups));
            obj.insert("out_channels".into(), serde_json::json!(4));
        }
        let unet = UNetConfig::from_json(&value.to_string())?;
        Ok(Self {
            unet,
            conditioning_channels: raw.conditioning_channels,
            conditioning_embedding_out_channels: raw.conditioning_embedding_out_channels,
            bgr: order == "bgr",
        })
    }
}
