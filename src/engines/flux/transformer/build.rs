//! Building the transformer's layers from a weight source (diffusers safetensors or a GGUF), one
//! layer at a time under BFL's names, each checked against the config.

use candle_core::Tensor;

use super::blocks::{DoubleBlock, QkNorm, SingleBlock, StreamWeights};
use super::config::FluxTransformerConfig;
use super::embeddings::{MlpEmbedder, TIME_PROJ_DIM, TimeTextEmbed};
use super::linear::Linear;
use crate::error::Result;

/// Where the weights come from; every error is bad input naming the file and the tensor.
pub trait WeightSource {
    /// BFL's linear layer `name` (a module path): weight (sum of `outs`, `in_dim`) and bias.
    /// `outs` is how a fused layer splits into diffusers' projections (one entry when unfused).
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize]) -> Result<Linear>;
    /// A 1-D tensor (a norm scale) under its full BFL name.
    fn vector(&self, name: &str, len: usize) -> Result<Tensor>;
    /// Whether the source holds BFL's linear layer `name`.
    fn has_linear(&self, name: &str) -> bool;
}

/// Everything but the blocks.
pub struct Outer {
    pub img_in: Linear,
    pub txt_in: Linear,
    pub time_text: TimeTextEmbed,
    /// `final_layer.adaLN_modulation.1`: shift, scale.
    pub final_modulation: Linear,
    pub final_linear: Linear,
}

fn embedder(src: &dyn WeightSource, name: &str, in_dim: usize, dim: usize) -> Result<MlpEmbedder> {
    Ok(MlpEmbedder {
        in_layer: src.linear(&format!("{name}.in_layer"), in_dim, &[dim])?,
        out_layer: src.linear(&format!("{name}.out_layer"), dim, &[dim])?,
    })
}

pub fn outer(src: &dyn WeightSource, c: &FluxTransformerConfig) -> Result<Outer> {
    let d = c.inner_dim();
    let guidance = if c.guidance_embeds {
        Some(embedder(src, "guidance_in", TIME_PROJ_DIM, d)?)
    } else {
        None
    };
    Ok(Outer {
        img_in: src.linear("img_in", c.in_channels, &[d])?,
        txt_in: src.linear("txt_in", c.joint_attention_dim, &[d])?,
        time_text: TimeTextEmbed {
            time: embedder(src, "time_in", TIME_PROJ_DIM, d)?,
            guidance,
            vector: embedder(src, "vector_in", c.pooled_projection_dim, d)?,
        },
        final_modulation: src.linear("final_layer.adaLN_modulation.1", d, &[d, d])?,
        final_linear: src.linear("final_layer.linear", d, &[c.out_channels()])?,
    })
}

fn qk_norm(src: &dyn WeightSource, prefix: &str, c: &FluxTransformerConfig) -> Result<QkNorm> {
    let hd = c.attention_head_dim;
    Ok(QkNorm {
        query: src.vector(&format!("{prefix}.query_norm.scale"), hd)?,
        key: src.vector(&format!("{prefix}.key_norm.scale"), hd)?,
    })
}

fn stream(
    src: &dyn WeightSource,
    p: &str,
    kind: &str,
    c: &FluxTransformerConfig,
) -> Result<StreamWeights> {
    let (d, m) = (c.inner_dim(), c.mlp_dim());
    Ok(StreamWeights {
        modulation: src.linear(&format!("{p}.{kind}_mod.lin"), d, &[d; 6])?,
        qkv: src.linear(&format!("{p}.{kind}_attn.qkv"), d, &[d; 3])?,
        norm: qk_norm(src, &format!("{p}.{kind}_attn.norm"), c)?,
        proj: src.linear(&format!("{p}.{kind}_attn.proj"), d, &[d])?,
        mlp_in: src.linear(&format!("{p}.{kind}_mlp.0"), d, &[m])?,
        mlp_out: src.linear(&format!("{p}.{kind}_mlp.2"), m, &[d])?,
    })
}

pub fn double_block(
    src: &dyn WeightSource,
    i: usize,
    c: &FluxTransformerConfig,
) -> Result<DoubleBlock> {
    let p = format!("double_blocks.{i}");
    Ok(DoubleBlock {
        img: stream(src, &p, "img", c)?,
        txt: stream(src, &p, "txt", c)?,
        heads: c.num_attention_heads,
    })
}

pub fn single_block(
    src: &dyn WeightSource,
    i: usize,
    c: &FluxTransformerConfig,
) -> Result<SingleBlock> {
    let (d, m) = (c.inner_dim(), c.mlp_dim());
    let p = format!("single_blocks.{i}");
    Ok(SingleBlock {
        modulation: src.linear(&format!("{p}.modulation.lin"), d, &[d; 3])?,
        linear1: src.linear(&format!("{p}.linear1"), d, &[d, d, d, m])?,
        norm: qk_norm(src, &format!("{p}.norm"), c)?,
        linear2: src.linear(&format!("{p}.linear2"), d + m, &[d])?,
        heads: c.num_attention_heads,
        inner_dim: d,
    })
}
