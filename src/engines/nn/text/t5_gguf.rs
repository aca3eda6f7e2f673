//! The T5 encoder from a llama.cpp-named GGUF (`general.architecture` "t5encoder": city96's
//! t5-v1_1-xxl-encoder GGUFs FLUX users download instead of the 9.5 GB safetensors). The names
//! candle's T5 asks for (transformers' T5EncoderModel) are mapped to llama.cpp's, and each tensor
//! is dequantized when the model asks for it (never the whole file at once) into f32 or bf16:
//! T5's activations overflow f16, so the encoder never computes in it (`T5Encoder::dtype_for`).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};

use super::t5::{T5Config, T5Encoder};
use super::umt5::Umt5Encoder;
use crate::engines::nn::weights::gguf::{GgufWeights, NameMap};
use crate::error::{Error, Result};

/// llama.cpp's `general.architecture` for an encoder-only T5.
pub const ARCHITECTURE: &str = "t5encoder";

/// The GGUF name (llama.cpp's gguf-py tensor names for T5 encoders) of a tensor transformers'
/// T5EncoderModel calls `name`; names without a counterpart are returned as they are (so a
/// missing tensor's error names what was asked for).
pub fn gguf_name(name: &str) -> String {
    match name {
        // The embedding is shared (`shared`) or the encoder's own (`encoder.embed_tokens`).
        "shared.weight" | "encoder.embed_tokens.weight" => return "token_embd.weight".into(),
        "encoder.final_layer_norm.weight" => return "enc.output_norm.weight".into(),
        _ => {}
    }
    let Some(rest) = name.strip_prefix("encoder.block.") else {
        return name.to_string();
    };
    let Some((block, rest)) = rest.split_once('.') else {
        return name.to_string();
    };
    if block.parse::<usize>().is_err() {
        return name.to_string();
    }
    let stored = match rest {
        "layer.0.SelfAttention.q.weight" => "attn_q.weight",
        "layer.0.SelfAttention.k.weight" => "attn_k.weight",
        "layer.0.SelfAttention.v.weight" => "attn_v.weight",
        "layer.0.SelfAttention.o.weight" => "attn_o.weight",
        "layer.0.SelfAttention.relative_attention_bias.weight" => "attn_rel_b.weight",
        "layer.0.layer_norm.weight" => "attn_norm.weight",
        // Gated (v1.1, FLUX's): wi_0 is the gelu-gated branch, wi_1 the linear one.
        "layer.1.DenseReluDense.wi_0.weight" => "ffn_gate.weight",
        "layer.1.DenseReluDense.wi_1.weight" => "ffn_up.weight",
        // T5 v1.0's single input projection.
        "layer.1.DenseReluDense.wi.weight" => "ffn_up.weight",
        "layer.1.DenseReluDense.wo.weight" => "ffn_down.weight",
        "layer.1.layer_norm.weight" => "ffn_norm.weight",
        _ => return name.to_string(),
    };
    format!("enc.blk.{block}.{stored}")
}

/// A llama.cpp-named T5 encoder GGUF under transformers' names, tensors dequantized into `dtype`
/// as asked for; the file's block count must be the config's.
fn open_gguf(path: &Path, config: &T5Config, device: &Device, dtype: DType) -> Result<GgufWeights> {
    let names: NameMap = Arc::new(gguf_name);
    let weights = GgufWeights::open(path, Some(ARCHITECTURE), dtype, device, Some(names))?;
    let blocks = weights.file().block_count("enc.blk.");
    if blocks != config.num_layers {
        return Err(Error::bad_input(format!(
            "{}: the GGUF holds {blocks} T5 encoder blocks but the config's `num_layers` is \
             {} (a GGUF of another T5?)",
            path.display(),
            config.num_layers
        )));
    }
    Ok(weights)
}

impl Umt5Encoder {
    /// The UMT5 encoder from a llama.cpp-named GGUF (city96's umt5-xxl-encoder files: the T5
    /// names, `enc.blk.N.attn_rel_b.weight` in every block), with `config` (Wan's
    /// `text_encoder/config.json`), dequantized into `dtype` (f16 becomes f32). Another
    /// architecture, a block count other than the config's, a block without its relative bias (a
    /// T5 GGUF), a wrong shape or a truncated file is bad input naming the file.
    pub fn load_gguf(
        path: &Path,
        config: &T5Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let _span = tracing::info_span!("umt5_gguf_load", path = %path.display()).entered();
        let dtype = T5Encoder::dtype_for(dtype);
        let weights = open_gguf(path, config, device, dtype)?;
        weights.build("UMT5 encoder", |vb| Self::new(vb, config))
    }
}

impl T5Encoder {
    /// The encoder from a llama.cpp/city96 T5 encoder GGUF, with `config` (FLUX's
    /// `text_encoder_2/config.json`), computing in f32. Another architecture, a block count
    /// other than the config's, a missing tensor, a wrong shape or a truncated file is bad input
    /// naming the file.
    pub fn load_gguf(path: &Path, config: &T5Config, device: &Device) -> Result<Self> {
        Self::load_gguf_as(path, config, device, DType::F32)
    }

    /// [`Self::load_gguf`] in `dtype` (f16 becomes f32, as for safetensors).
    pub fn load_gguf_as(
        path: &Path,
        config: &T5Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let _span = tracing::info_span!("t5_gguf_load", path = %path.display()).entered();
        let dtype = Self::dtype_for(dtype);
        let weights = open_gguf(path, config, device, dtype)?;
        weights.build("T5 encoder", |vb| Self::new(vb, config))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn transformers_names_map_to_llama_cpp_names() {
        for (ours, theirs) in [
            ("shared.weight", "token_embd.weight"),
            ("encoder.embed_tokens.weight", "token_embd.weight"),
            ("encoder.final_layer_norm.weight", "enc.output_norm.weight"),
            (
                "encoder.block.0.layer.0.SelfAttention.q.weight",
                "enc.blk.0.attn_q.weight",
            ),
            (
                "encoder.block.11.layer.0.SelfAttention.k.weight",
                "enc.blk.11.attn_k.weight",
            ),
            (
                "encoder.block.3.layer.0.SelfAttention.v.weight",
                "enc.blk.3.attn_v.weight",
            ),
            (
                "encoder.block.3.layer.0.SelfAttention.o.weight",
                "enc.blk.3.attn_o.weight",
            ),
            (
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "enc.blk.0.attn_rel_b.weight",
            ),
            (
                "encoder.block.2.layer.0.layer_norm.weight",
                "enc.blk.2.attn_norm.weight",
            ),
            (
                "encoder.block.2.layer.1.DenseReluDense.wi_0.weight",
                "enc.blk.2.ffn_gate.weight",
            ),
            (
                "encoder.block.2.layer.1.DenseReluDense.wi_1.weight",
                "enc.blk.2.ffn_up.weight",
            ),
            (
                "encoder.block.2.layer.1.DenseReluDense.wi.weight",
                "enc.blk.2.ffn_up.weight",
            ),
            (
                "encoder.block.23.layer.1.DenseReluDense.wo.weight",
                "enc.blk.23.ffn_down.weight",
            ),
            (
                "encoder.block.2.layer.1.layer_norm.weight",
                "enc.blk.2.ffn_norm.weight",
            ),
        ] {
            assert_eq!(gguf_name(ours), theirs, "{ours}");
        }
        for unknown in [
            "decoder.block.0.layer.0.SelfAttention.q.weight",
            "encoder.block.x.layer.0.SelfAttention.q.weight",
            "encoder.block.0.layer.2.foo",
            "lm_head.weight",
        ] {
            assert_eq!(gguf_name(unknown), unknown);
        }
    }
}
