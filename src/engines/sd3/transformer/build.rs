//! Building the transformer's layers from a layer source (a diffusers folder or a GGUF), one
//! layer at a time under the original checkpoint's names, each checked against the config.

use candle_core::Tensor;

use super::blocks::{Attention, ContextBlock, FinalLayer, JointBlock, Mlp, XBlock};
use super::config::Sd3TransformerConfig;
use crate::engines::flux::transformer::blocks::QkNorm;
use crate::engines::flux::transformer::embeddings::{MlpEmbedder, TIME_PROJ_DIM, TimeTextEmbed};
use crate::engines::flux::transformer::linear::{Linear, Weight};
use crate::engines::nn::layer_source::LayerSource;
use crate::error::Result;

/// Everything but the blocks.
pub struct Outer {
    /// The patch embedding's convolution as a matrix (dim, in_channels * patch * patch).
    pub patch: Linear,
    /// Learned positions (pos_embed_max_size², dim), row-major over the grid.
    pub pos_embed: Tensor,
    pub context_embedder: Linear,
    pub time_text: TimeTextEmbed,
    pub final_layer: FinalLayer,
}

fn mlp_embedder(src: &dyn LayerSource, name: &str, in_dim: usize, d: usize) -> Result<MlpEmbedder> {
    Ok(MlpEmbedder {
        in_layer: src.linear(&format!("{name}.mlp.0"), in_dim, &[d], true)?,
        out_layer: src.linear(&format!("{name}.mlp.2"), d, &[d], true)?,
    })
}

/// `fast`: our kernels for the patch embedding's matmul (the layer source's other linears carry
/// their own).
pub fn outer(src: &dyn LayerSource, c: &Sd3TransformerConfig, fast: bool) -> Result<Outer> {
    let d = c.inner_dim();
    let p = c.patch_size;
    let patch_in = c.in_channels * p * p;
    let weight = src
        .tensor("x_embedder.proj.weight", &[d, c.in_channels, p, p])?
        .reshape((d, patch_in))?;
    let bias = src.tensor("x_embedder.proj.bias", &[d])?;
    let grid = c.pos_embed_max_size * c.pos_embed_max_size;
    Ok(Outer {
        patch: Linear::new(Weight::Dense(weight), Some(bias), fast),
        pos_embed: src.tensor("pos_embed", &[1, grid, d])?.squeeze(0)?,
        context_embedder: src.linear("context_embedder", c.joint_attention_dim, &[d], true)?,
        time_text: TimeTextEmbed {
            time: mlp_embedder(src, "t_embedder", TIME_PROJ_DIM, d)?,
            guidance: None,
            vector: mlp_embedder(src, "y_embedder", c.pooled_projection_dim, d)?,
        },
        final_layer: FinalLayer {
            modulation: src.linear("final_layer.adaLN_modulation.1", d, &[d, d], true)?,
            linear: src.linear("final_layer.linear", d, &[p * p * c.out_channels], true)?,
        },
    })
}

/// `{prefix}.qkv`, its q/k norms (when the config has them) and, unless `pre_only`, `.proj`.
fn attention(
    src: &dyn LayerSource,
    prefix: &str,
    c: &Sd3TransformerConfig,
    pre_only: bool,
) -> Result<Attention> {
    let (d, hd) = (c.inner_dim(), c.attention_head_dim);
    let norm = if c.qk_norm {
        Some(QkNorm {
            query: src.tensor(&format!("{prefix}.ln_q.weight"), &[hd])?,
            key: src.tensor(&format!("{prefix}.ln_k.weight"), &[hd])?,
        })
    } else {
        None
    };
    let proj = if pre_only {
        None
    } else {
        Some(src.linear(&format!("{prefix}.proj"), d, &[d], true)?)
    };
    Ok(Attention {
        qkv: src.linear(&format!("{prefix}.qkv"), d, &[d; 3], true)?,
        norm,
        proj,
    })
}

fn mlp(src: &dyn LayerSource, prefix: &str, c: &Sd3TransformerConfig) -> Result<Mlp> {
    let (d, m) = (c.inner_dim(), c.mlp_dim());
    Ok(Mlp {
        fc1: src.linear(&format!("{prefix}.mlp.fc1"), d, &[m], true)?,
        fc2: src.linear(&format!("{prefix}.mlp.fc2"), m, &[d], true)?,
    })
}

pub fn joint_block(
    src: &dyn LayerSource,
    i: usize,
    c: &Sd3TransformerConfig,
) -> Result<JointBlock> {
    let d = c.inner_dim();
    let (x, ctx) = (
        format!("joint_blocks.{i}.x_block"),
        format!("joint_blocks.{i}.context_block"),
    );
    let dual = c.dual_attention(i);
    let pre_only = c.context_pre_only(i);
    let x_mods = if dual { 9 } else { 6 };
    let c_mods = if pre_only { 2 } else { 6 };
    Ok(JointBlock {
        x: XBlock {
            modulation: src.linear(
                &format!("{x}.adaLN_modulation.1"),
                d,
                &vec![d; x_mods],
                true,
            )?,
            attn: attention(src, &format!("{x}.attn"), c, false)?,
            attn2: if dual {
                Some(attention(src, &format!("{x}.attn2"), c, false)?)
            } else {
                None
            },
            mlp: mlp(src, &x, c)?,
        },
        context: ContextBlock {
            modulation: src.linear(
                &format!("{ctx}.adaLN_modulation.1"),
                d,
                &vec![d; c_mods],
                true,
            )?,
            attn: attention(src, &format!("{ctx}.attn"), c, pre_only)?,
            mlp: if pre_only {
                None
            } else {
                Some(mlp(src, &ctx, c)?)
            },
        },
        heads: c.num_attention_heads,
    })
}
