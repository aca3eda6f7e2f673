//! The Qwen3 text encoder from a llama.cpp-named GGUF (`general.architecture` "qwen3": the
//! Qwen3-4B-*.gguf files Z-Image users download instead of the 8 GB bf16 safetensors). The names
//! our encoder asks for (transformers' Qwen3Model) are mapped to llama.cpp's, and each tensor is
//! dequantized when the model asks for it (never the whole file at once). The config stays the
//! model folder's `text_encoder/config.json`: llama.cpp's metadata has no `head_dim` for Qwen3
//! (4B's 128 is not hidden/heads). llama.cpp does not permute Qwen's q/k rows (NEOX rotary), so
//! the weights are used as stored.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};

use super::qwen::QwenEncoder;
use super::qwen_config::QwenConfig;
use crate::engines::nn::weights::gguf::{GgufWeights, NameMap};
use crate::error::{Error, Result};

/// llama.cpp's `general.architecture` for Qwen3 dense models.
pub const ARCHITECTURE: &str = "qwen3";

/// The GGUF name (llama.cpp's gguf-py tensor names) of a tensor transformers' Qwen3Model calls
/// `name`; names without a counterpart are returned as they are (so a missing tensor's error
/// names what was asked for).
pub fn gguf_name(name: &str) -> String {
    match name {
        "embed_tokens.weight" => return "token_embd.weight".into(),
        "norm.weight" => return "output_norm.weight".into(),
        _ => {}
    }
    let Some((block, rest)) = name
        .strip_prefix("layers.")
        .and_then(|rest| rest.split_once('.'))
    else {
        return name.to_string();
    };
    if block.parse::<usize>().is_err() {
        return name.to_string();
    }
    let stored = match rest {
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return name.to_string(),
    };
    format!("blk.{block}.{stored}")
}

impl QwenEncoder {
    /// The encoder from a llama.cpp Qwen3 GGUF with `config` (the model folder's
    /// `text_encoder/config.json`), in `dtype_for(dtype, device)`. Another architecture, a block
    /// count other than the config's, a missing tensor, a wrong shape or a truncated file is bad
    /// input naming the file.
    pub fn load_gguf(
        path: &Path,
        config: QwenConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let _span = tracing::info_span!("qwen_gguf_load", path = %path.display()).entered();
        let dtype = Self::dtype_for(dtype, device);
        let names: NameMap = Arc::new(gguf_name);
        let weights = GgufWeights::open(path, Some(ARCHITECTURE), dtype, device, Some(names))?;
        let blocks = weights.file().block_count("blk.");
        if blocks != config.num_hidden_layers {
            return Err(Error::bad_input(format!(
                "{}: the GGUF holds {blocks} Qwen3 blocks but the model's text_encoder/config.json \
                 has {} (a GGUF of another Qwen3 size? Z-Image-Turbo reads Qwen3-4B)",
                path.display(),
                config.num_hidden_layers
            )));
        }
        weights.build("Qwen3 text encoder", |vb| Self::new(vb, config))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn transformers_names_map_to_llama_cpp_names() {
        for (ours, theirs) in [
            ("embed_tokens.weight", "token_embd.weight"),
            ("norm.weight", "output_norm.weight"),
            ("layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"),
            ("layers.35.self_attn.k_proj.weight", "blk.35.attn_k.weight"),
            ("layers.2.self_attn.v_proj.weight", "blk.2.attn_v.weight"),
            (
                "layers.2.self_attn.o_proj.weight",
                "blk.2.attn_output.weight",
            ),
            (
                "layers.2.self_attn.q_norm.weight",
                "blk.2.attn_q_norm.weight",
            ),
            (
                "layers.2.self_attn.k_norm.weight",
                "blk.2.attn_k_norm.weight",
            ),
            ("layers.1.input_layernorm.weight", "blk.1.attn_norm.weight"),
            (
                "layers.1.post_attention_layernorm.weight",
                "blk.1.ffn_norm.weight",
            ),
            ("layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight"),
            ("layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight"),
            ("layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight"),
        ] {
            assert_eq!(gguf_name(ours), theirs, "{ours}");
        }
        for unknown in [
            "lm_head.weight",
            "layers.x.mlp.up_proj.weight",
            "layers.1.mlp.other.weight",
            "model.embed_tokens.weight",
        ] {
            assert_eq!(gguf_name(unknown), unknown);
        }
    }
}
