//! What the SD 3.5 engine tells the memory planner: the transformer's shape in FLUX's terms (the
//! planner's flow-model estimate: joint blocks only, so FLUX's single-block term over-counts a
//! little) and the text lengths it runs (CLIP's 77 tokens before T5's).

use std::path::Path;

use crate::engines::flux::footprint::FluxArch;
use crate::engines::nn::text::t5;

use super::transformer::Sd3TransformerConfig;

/// The CLIP tokens before T5's in every prompt's states.
pub const CLIP_TOKENS: u64 = 77;

/// From transformer/config.json and (unless `no_t5`) text_encoder_3/config.json, checked as the
/// engine checks them. Without T5 its width is the transformer's joint_attention_dim (the zeros'
/// width) and it has no layers to run.
pub fn arch(dir: &Path, no_t5: bool) -> crate::Result<FluxArch> {
    let c = Sd3TransformerConfig::load(&dir.join("transformer/config.json"))?;
    let (t5_width, t5_heads, t5_ff) = if no_t5 {
        (c.joint_attention_dim as u64, 0, 0)
    } else {
        let t = t5::load_config(&dir.join("text_encoder_3/config.json"))?;
        (t.d_model as u64, t.num_heads as u64, t.d_ff as u64)
    };
    Ok(FluxArch {
        hidden: c.inner_dim() as u64,
        heads: c.num_attention_heads as u64,
        head_dim: c.attention_head_dim as u64,
        in_channels: (c.in_channels * c.patch_size * c.patch_size) as u64,
        t5_width,
        t5_heads,
        t5_ff,
    })
}

/// Whether `dir` holds an SD 3 transformer (the planner's choice of footprint).
pub fn is_sd3_folder(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("transformer/config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("_class_name")?.as_str().map(str::to_owned))
        .is_some_and(|c| c.starts_with("SD3Transformer"))
}
