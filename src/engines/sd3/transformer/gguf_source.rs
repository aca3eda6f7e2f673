//! Weights from an SD 3 / 3.5 GGUF with the original checkpoint's names (city96's
//! sd3.5_*-Q*.gguf, architecture "sd3"), optionally under the `model.diffusion_model.` prefix some
//! converters keep: what diffusers' single-file loader maps. Checked against
//! `transformer/config.json` before any tensor is read.

use std::path::Path;

use candle_core::{DType, Device};

use super::config::Sd3TransformerConfig;
use super::names::name_map;
use crate::engines::flux::transformer::GgufMatmul;
use crate::engines::nn::layer_source::{GgufLayers, LayerSource};
use crate::engines::nn::weights::gguf::GgufFile;
use crate::error::{Error, Result};

/// The prefix ComfyUI-era conversions keep on every name.
const DIFFUSION_MODEL_PREFIX: &str = "model.diffusion_model.";

/// Opens `path`, refusing another architecture, unreadable tensor types, diffusers-named or
/// unrecognisable files, and a file whose blocks or dual attentions disagree with `config`.
pub fn open(
    path: &Path,
    config: &Sd3TransformerConfig,
    device: &Device,
    dtype: DType,
    (fast, matmul): (bool, GgufMatmul),
) -> Result<GgufLayers> {
    let file = GgufFile::open(path)?;
    let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
    match file.architecture() {
        Some("sd3") | None => {}
        Some(found) => {
            return Err(bad(format!(
                "a GGUF of architecture \"{found}\", but an SD 3.5 transformer (\"sd3\") is \
                 needed here (the wrong file?)"
            )));
        }
    }
    file.check_supported()?;
    let probe = "context_embedder.weight";
    let prefix = if file.contains(probe) {
        ""
    } else if file.contains(&format!("{DIFFUSION_MODEL_PREFIX}{probe}")) {
        DIFFUSION_MODEL_PREFIX
    } else if file.contains("transformer_blocks.0.attn.to_q.weight") {
        return Err(bad(
            "an SD 3 GGUF with diffusers' tensor names; only the original checkpoint's names \
             (joint_blocks.N.x_block.attn.qkv, ..., as in city96's SD 3.5 GGUFs) are read"
                .to_string(),
        ));
    } else {
        return Err(bad(format!(
            "no `{probe}`: not an SD 3 transformer GGUF with the original checkpoint's names"
        )));
    };
    let src = GgufLayers::new(
        file,
        prefix,
        name_map(config.num_layers),
        device,
        dtype,
        (fast, matmul),
    );
    check_structure(&src, config)?;
    Ok(src)
}

/// As many blocks as the config says, with the second attention exactly where it says (missing
/// tensors are refused when read; extra ones would be silently ignored otherwise).
fn check_structure(src: &GgufLayers, c: &Sd3TransformerConfig) -> Result<()> {
    let has = |i: usize, layer: &str| src.has_linear(&format!("joint_blocks.{i}.x_block.{layer}"));
    if has(c.num_layers, "attn.qkv") {
        let stored = c.num_layers + (c.num_layers..).take_while(|&i| has(i, "attn.qkv")).count();
        return Err(src.bad(format!(
            "it has {stored} joint blocks but the model's transformer config says num_layers = \
             {} (a GGUF of another model?)",
            c.num_layers
        )));
    }
    for i in 0..c.num_layers {
        if has(i, "attn2.qkv") != c.dual_attention(i) {
            return Err(src.bad(format!(
                "block {i} {} a second attention (attn2) but the model's transformer config's \
                 dual_attention_layers say otherwise (an SD 3.5 Medium GGUF with a Large model \
                 folder, or the reverse?)",
                if has(i, "attn2.qkv") { "has" } else { "lacks" }
            )));
        }
    }
    Ok(())
}
