//! Building the transformer's layers from a weight source (diffusers safetensors or a GGUF),
//! one layer at a time under the original checkpoint's names, each checked against the config.

use candle_core::Tensor;

use super::blocks::{Block, FinalLayer, QkNorm};
use super::config::ZImageTransformerConfig;
use super::embed::FREQ_DIM;
use super::load_dense::WeightSource;
use crate::engines::flux::transformer::linear::Linear;
use crate::error::Result;

/// The timestep embedder's hidden width (diffusers' `mid_size=1024`).
const T_MID: usize = 1024;

/// Everything but the blocks.
pub struct Outer {
    /// `x_embedder`: patch values to the model width.
    pub x_embedder: Linear,
    /// `t_embedder.mlp.0`, `.2` (SiLU between).
    pub t_in: Linear,
    pub t_out: Linear,
    /// `cap_embedder.0` (RMSNorm scale) and `cap_embedder.1`.
    pub cap_norm: Tensor,
    pub cap_linear: Linear,
    /// `x_pad_token`, `cap_pad_token`: (1, dim).
    pub x_pad: Tensor,
    pub cap_pad: Tensor,
    pub final_layer: FinalLayer,
}

pub fn outer(src: &dyn WeightSource, c: &ZImageTransformerConfig) -> Result<Outer> {
    let (d, a) = (c.dim, c.adaln_dim());
    Ok(Outer {
        x_embedder: src.linear("x_embedder", c.patch_dim(), &[d], true)?,
        t_in: src.linear("t_embedder.mlp.0", FREQ_DIM, &[T_MID], true)?,
        t_out: src.linear("t_embedder.mlp.2", T_MID, &[a], true)?,
        cap_norm: src.tensor("cap_embedder.0.weight", &[c.cap_feat_dim])?,
        cap_linear: src.linear("cap_embedder.1", c.cap_feat_dim, &[d], true)?,
        x_pad: src.tensor("x_pad_token", &[1, d])?,
        cap_pad: src.tensor("cap_pad_token", &[1, d])?,
        final_layer: FinalLayer {
            modulation: src.linear("final_layer.adaLN_modulation.1", a, &[d], true)?,
            linear: src.linear("final_layer.linear", d, &[c.patch_dim()], true)?,
        },
    })
}

/// Block `p` (`layers.3`, `noise_refiner.0`, `context_refiner.1`), with its modulation or not.
pub fn block(
    src: &dyn WeightSource,
    p: &str,
    modulated: bool,
    c: &ZImageTransformerConfig,
) -> Result<Block> {
    let (d, f, hd) = (c.dim, c.ffn_dim(), c.head_dim());
    let qk_norm = if c.qk_norm {
        Some(QkNorm {
            query: src.tensor(&format!("{p}.attention.q_norm.weight"), &[hd])?,
            key: src.tensor(&format!("{p}.attention.k_norm.weight"), &[hd])?,
        })
    } else {
        None
    };
    let norm = |n: &str| src.tensor(&format!("{p}.{n}.weight"), &[d]);
    let modulation = if modulated {
        Some(src.linear(
            &format!("{p}.adaLN_modulation.0"),
            c.adaln_dim(),
            &[d; 4],
            true,
        )?)
    } else {
        None
    };
    Ok(Block {
        qkv: src.linear(&format!("{p}.attention.qkv"), d, &[d; 3], false)?,
        qk_norm,
        out: src.linear(&format!("{p}.attention.out"), d, &[d], false)?,
        w1: src.linear(&format!("{p}.feed_forward.w1"), d, &[f], false)?,
        w2: src.linear(&format!("{p}.feed_forward.w2"), f, &[d], false)?,
        w3: src.linear(&format!("{p}.feed_forward.w3"), d, &[f], false)?,
        norms: [
            norm("attention_norm1")?,
            norm("attention_norm2")?,
            norm("ffn_norm1")?,
            norm("ffn_norm2")?,
        ],
        modulation,
        heads: c.n_heads,
        eps: c.norm_eps,
    })
}
