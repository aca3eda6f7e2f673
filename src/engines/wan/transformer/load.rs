//! Building [`WanTransformer`] from a diffusers `transformer/` folder (safetensors, sharded or
//! not) under diffusers' names.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::WanTransformer;
use super::blocks::{Attention, AttentionRun, Block};
use super::config::WanTransformerConfig;
use super::embed::{ConditionEmbedder, TwoLayer};
use crate::engines::EngineSwitches;
use crate::engines::flux::transformer::linear::{Linear, Weight};
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::weights::Weights;
use crate::error::Result;

type R<T> = candle_core::Result<T>;

/// `name.weight` (out, in) and `name.bias` (out).
fn linear(vb: &VarBuilder, name: &str, (i, o): (usize, usize), fast: bool) -> R<Linear> {
    let vb = vb.pp(name);
    let w = vb.get((o, i), "weight")?;
    let b = vb.get(o, "bias")?;
    Ok(Linear::new(Weight::Dense(w), Some(b), fast))
}

fn two_layer(vb: &VarBuilder, name: &str, dims: [usize; 3], fast: bool) -> R<TwoLayer> {
    let vb = vb.pp(name);
    Ok(TwoLayer {
        linear_1: linear(&vb, "linear_1", (dims[0], dims[1]), fast)?,
        linear_2: linear(&vb, "linear_2", (dims[1], dims[2]), fast)?,
    })
}

fn attention(vb: &VarBuilder, c: &WanTransformerConfig, fast: bool) -> R<Attention> {
    let d = c.inner_dim();
    let norm = |name: &str| -> R<Option<Tensor>> {
        if c.qk_norm {
            Ok(Some(
                vb.get(d, &format!("{name}.weight"))?.to_dtype(DType::F32)?,
            ))
        } else {
            Ok(None)
        }
    };
    Ok(Attention {
        to_q: linear(vb, "to_q", (d, d), fast)?,
        to_k: linear(vb, "to_k", (d, d), fast)?,
        to_v: linear(vb, "to_v", (d, d), fast)?,
        to_out: linear(vb, "to_out.0", (d, d), fast)?,
        norm_q: norm("norm_q")?,
        norm_k: norm("norm_k")?,
    })
}

fn block(vb: &VarBuilder, c: &WanTransformerConfig, fast: bool) -> R<Block> {
    let d = c.inner_dim();
    let f32s = vb.clone().set_dtype(DType::F32);
    let norm2 = if c.cross_attn_norm {
        Some((f32s.get(d, "norm2.weight")?, f32s.get(d, "norm2.bias")?))
    } else {
        None
    };
    Ok(Block {
        attn1: attention(&vb.pp("attn1"), c, fast)?,
        attn2: attention(&vb.pp("attn2"), c, fast)?,
        norm2,
        ffn_in: linear(vb, "ffn.net.0.proj", (d, c.ffn_dim), fast)?,
        ffn_out: linear(vb, "ffn.net.2", (c.ffn_dim, d), fast)?,
        scale_shift_table: f32s.get((1, 6, d), "scale_shift_table")?,
    })
}

pub fn load(
    dir: &Path,
    config: WanTransformerConfig,
    device: &Device,
    dtype: DType,
    switches: EngineSwitches,
) -> Result<WanTransformer> {
    let fast = switches.kernels().fast();
    let weights = Weights::open(dir, device, dtype, false, switches)?;
    let c = &config;
    let d = c.inner_dim();
    let [pt, ph, pw] = c.patch_size;
    let patch_in = c.in_channels * pt * ph * pw;
    let build = |vb: VarBuilder| -> R<_> {
        let pe = vb.pp("patch_embedding");
        let weight = pe
            .get((d, c.in_channels, pt, ph, pw), "weight")?
            .reshape((d, patch_in))?;
        let patch_embedding = Linear::new(Weight::Dense(weight), Some(pe.get(d, "bias")?), fast);
        let ce = vb.pp("condition_embedder");
        let condition = ConditionEmbedder {
            time_embedder: two_layer(
                &ce.clone().set_dtype(DType::F32),
                "time_embedder",
                [c.freq_dim, d, d],
                fast,
            )?,
            time_proj: linear(&ce, "time_proj", (d, 6 * d), fast)?,
            text_embedder: two_layer(&ce, "text_embedder", [c.text_dim, d, d], fast)?,
            freq_dim: c.freq_dim,
        };
        let blocks = (0..c.num_layers)
            .map(|i| block(&vb.pp(format!("blocks.{i}")), c, fast))
            .collect::<R<Vec<_>>>()?;
        let scale_shift_table = vb
            .clone()
            .set_dtype(DType::F32)
            .get((1, 2, d), "scale_shift_table")?;
        let proj_out = linear(&vb, "proj_out", (d, c.out_channels * pt * ph * pw), fast)?;
        Ok((
            patch_embedding,
            condition,
            blocks,
            scale_shift_table,
            proj_out,
        ))
    };
    let (patch_embedding, condition, blocks, scale_shift_table, proj_out) =
        weights.build("Wan transformer", build)?;
    Ok(WanTransformer {
        config,
        patch_embedding,
        condition,
        blocks,
        scale_shift_table,
        proj_out,
        dtype,
        device: device.clone(),
        attention: AttentionRun {
            mode: AttentionMode::Auto,
            fast,
        },
    })
}
