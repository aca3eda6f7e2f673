//! LoRAs on a GGUF transformer, as side branches: a quantized layer is not merged (that would
//! dequantize it, add the change and quantize it again at load: a full-precision copy of each
//! layer while loading, and the LoRA rounded into the quantization grid, where a side branch keeps
//! it exact), so each layer a LoRA changes computes `W x + b + U (D x)`, D the LoRAs' down
//! matrices stacked (rank total, in) and U their up matrices times weight x alpha / rank, each in
//! its projection's rows of a fused layer (out, rank total). Only plain LoRAs: a LoHa's or LoKr's
//! change is a full matrix, no cheaper than the layer.
//!
//! The LoRA is matched against the GGUF's own tensors, named as diffusers names them (BFL's fused
//! layers split at the config's sizes), so the model folder needs no dense transformer weights.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::FluxTransformerConfig;
use super::linear::LoraBranch;
use super::load_dense::swap_halves;
use super::load_gguf::DIFFUSION_MODEL_PREFIX;
use super::names::diffusers_source;
use crate::engines::nn::lora::factors::Factors;
use crate::engines::nn::lora::{ComponentIndex, WeightPatch};
use crate::engines::nn::weights::gguf::GgufFile;
use crate::error::{Error, Result};

/// The diffusers names and shapes of a FLUX GGUF's linear weights (what a LoRA names).
pub fn index(path: &Path, config: &FluxTransformerConfig) -> Result<ComponentIndex> {
    let file = GgufFile::open(path)?;
    let d = config.inner_dim();
    let mut tensors = Vec::new();
    for info in file.tensors() {
        let name = info
            .name
            .strip_prefix(DIFFUSION_MODEL_PREFIX)
            .unwrap_or(&info.name);
        let (Some(bfl), [out, inp]) = (name.strip_suffix(".weight"), info.shape.as_slice()) else {
            continue;
        };
        let Some(source) = diffusers_source(bfl) else {
            continue;
        };
        let outs = match source.parts.len() {
            1 => vec![*out],
            3 => vec![out / 3; 3],
            4 => vec![d, d, d, out.saturating_sub(3 * d)],
            _ => continue,
        };
        for (part, rows) in source.parts.iter().zip(outs) {
            tensors.push((format!("{part}.weight"), vec![rows, *inp]));
        }
    }
    Ok(ComponentIndex::new(tensors, None))
}

/// Refuses (exit 2) a change a side branch cannot carry.
pub fn check_low_rank(patch: &WeightPatch, gguf: &Path) -> Result<()> {
    match patch.first_not_low_rank() {
        None => Ok(()),
        Some((weight, kind)) => Err(Error::bad_input(format!(
            "--lora: a {kind} module (on `{weight}`) cannot be applied to --transformer {}: a \
             GGUF's layers take plain LoRAs only, as side branches; use the dense transformer/ \
             weights for LoHa/LoKr",
            gguf.display()
        ))),
    }
}

/// The side branch of BFL's layer `bfl` (its diffusers projections' sizes `outs`), if a LoRA
/// changes it; in `dtype` on `device`.
pub fn branch(
    patch: &WeightPatch,
    bfl: &str,
    outs: &[usize],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Option<LoraBranch>> {
    let Some(source) = diffusers_source(bfl) else {
        return Ok(None);
    };
    let total: usize = outs.iter().sum();
    let parts: Vec<(&String, usize)> = if source.parts.len() == outs.len() {
        source.parts.iter().zip(outs.iter().copied()).collect()
    } else {
        source.parts.iter().take(1).map(|p| (p, total)).collect()
    };
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    let mut offset = 0;
    for (part, rows) in parts {
        for delta in patch.deltas(&format!("{part}.weight")) {
            let Factors::LowRank { up, down } = &delta.factors else {
                candle_core::bail!("a {} module on a GGUF layer", delta.factors.kind());
            };
            let up = (up.flatten_from(1)?.to_dtype(DType::F32)? * delta.scale)?;
            let up = up.pad_with_zeros(0, offset, total - offset - rows)?;
            ups.push(up);
            downs.push(down.flatten_from(1)?.to_dtype(DType::F32)?);
        }
        offset += rows;
    }
    if ups.is_empty() {
        return Ok(None);
    }
    let mut up = Tensor::cat(&ups, 1)?;
    if source.swap_halves {
        up = swap_halves(&up)?;
    }
    let down = Tensor::cat(&downs, 0)?;
    Ok(Some(LoraBranch {
        down: down.to_dtype(dtype)?.to_device(device)?,
        up: up.to_dtype(dtype)?.to_device(device)?,
    }))
}
