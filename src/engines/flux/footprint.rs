//! What the FLUX engine tells the memory planner: the transformer's shape (for its activations)
//! and how the weights it loads sit in memory (a GGUF transformer stays quantized; a GGUF T5 is
//! dequantized at load into T5's dtype).

use std::path::Path;

use candle_core::DType;

use super::transformer::FluxTransformerConfig;
use crate::engines::nn::text::t5::{self, T5Encoder};

/// The transformer's numbers the activation estimate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FluxArch {
    pub hidden: u64,
    pub heads: u64,
    pub head_dim: u64,
    /// Packed latent channels (16 x 2 x 2).
    pub in_channels: u64,
    /// T5's width.
    pub t5_width: u64,
    pub t5_heads: u64,
    pub t5_ff: u64,
}

impl FluxArch {
    /// From transformer/config.json and text_encoder_2/config.json (checked as the engine
    /// checks them).
    pub fn read(dir: &Path) -> crate::Result<Self> {
        let c = FluxTransformerConfig::load(&dir.join("transformer/config.json"))?;
        let t = t5::load_config(&dir.join("text_encoder_2/config.json"))?;
        Ok(Self {
            hidden: (c.num_attention_heads * c.attention_head_dim) as u64,
            heads: c.num_attention_heads as u64,
            head_dim: c.attention_head_dim as u64,
            in_channels: c.in_channels as u64,
            t5_width: t.d_model as u64,
            t5_heads: t.num_heads as u64,
            t5_ff: t.d_ff as u64,
        })
    }

    /// The largest live set of one transformer forward over `tokens` (text + image) for
    /// `images` images, besides attention scores: the two residual streams with their normed
    /// and modulated copies, a fused qkv projection with rotated f32 copies of q and k, and a
    /// single block's fused qkv+MLP projection with its GELU output and the concatenation
    /// linear2 reads (7 + 4 + 5 hidden widths).
    pub fn step_bytes(&self, tokens: u64, images: u64, elem: u64) -> u64 {
        let row = images * tokens * self.hidden;
        let streams = 4 * row * elem;
        let qkv = 3 * row * elem + 2 * row * 4;
        let single = (7 + 4 + 5) * row * elem;
        streams + qkv.max(single)
    }
}

/// The dtype T5 computes in for a run in `dtype` (never f16).
pub fn t5_dtype(dtype: DType) -> DType {
    T5Encoder::dtype_for(dtype)
}
