//! Building [`WanTransformer`] from a diffusers `transformer/` folder (safetensors, sharded or
//! not) under diffusers' names.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::WanTransformer;
use super::blocks::{AddedKv, Attention, AttentionRun, Block};
use super::config::WanTransformerConfig;
use super::embed::{ConditionEmbedder, ImageEmbedder, TwoLayer};
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

/// `name.weight` and `name.bias` (len) in f32 (diffusers' FP32LayerNorm).
fn norm_affine(vb: &VarBuilder, name: &str, len: usize) -> R<(Tensor, Tensor)> {
    let vb = vb.clone().set_dtype(DType::F32).pp(name);
    Ok((vb.get(len, "weight")?, vb.get(len, "bias")?))
}

fn image_embedder(
    vb: &VarBuilder,
    c: &WanTransformerConfig,
    fast: bool,
) -> R<Option<ImageEmbedder>> {
    let Some(image_dim) = c.image_dim else {
        return Ok(None);
    };
    let d = c.inner_dim();
    let pos_embed = match c.pos_embed_seq_len {
        Some(len) => Some(
            vb.clone()
                .set_dtype(DType::F32)
                .get((1, len, image_dim), "pos_embed")?,
        ),
        None => None,
    };
    Ok(Some(ImageEmbedder {
        norm1: norm_affine(vb, "norm1", image_dim)?,
        ff_in: linear(vb, "ff.net.0.proj", (image_dim, image_dim), fast)?,
        ff_out: linear(vb, "ff.net.2", (image_dim, d), fast)?,
        norm2: norm_affine(vb, "norm2", d)?,
        pos_embed,
    }))
}

fn attention(
    vb: &VarBuilder,
    c: &WanTransformerConfig,
    added_kv: Option<usize>,
    fast: bool,
) -> R<Attention> {
    let d = c.inner_dim();
    let added = match added_kv {
        Some(width) => Some(AddedKv {
            add_k_proj: linear(vb, "add_k_proj", (width, d), fast)?,
            add_v_proj: linear(vb, "add_v_proj", (width, d), fast)?,
            norm_added_k: vb.get(d, "norm_added_k.weight")?.to_dtype(DType::F32)?,
        }),
        None => None,
    };
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
        added,
    })
}

fn block(vb: &VarBuilder, c: &WanTransformerConfig, fast: bool) -> R<Block> {
    let d = c.inner_dim();
    let f32s = vb.clone().set_dtype(DType::F32);
    let norm2 = if c.cross_attn_norm {
        Some(norm_affine(vb, "norm2", d)?)
    } else {
        None
    };
    Ok(Block {
        attn1: attention(&vb.pp("attn1"), c, None, fast)?,
        attn2: attention(&vb.pp("attn2"), c, c.added_kv_proj_dim, fast)?,
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
            image_embedder: image_embedder(&ce.pp("image_embedder"), c, fast)?,
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
        rope_cache: std::sync::Mutex::new(None),
    })
}
