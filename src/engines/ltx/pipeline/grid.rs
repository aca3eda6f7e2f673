//! Sizes and shapes of an LTX-Video clip: the latent grid a request makes, the folder's configs
//! checked against each other, and diffusers' `_pack_latents` / `_unpack_latents`.

use std::path::Path;

use candle_core::Tensor;

use crate::engines::flux::scheduler::FlowMatchConfig;
use crate::engines::ltx::transformer::LtxTransformerConfig;
use crate::engines::ltx::vae::LtxVaeConfig;
use crate::error::{Error, Result};

/// The latent grid (frames, height, width) of a clip, after checking the sizes: frames
/// 1 + r n, sides multiples of the VAE's spatial ratio.
pub fn latent_grid(vae: &LtxVaeConfig, frames: u32, width: u32, height: u32) -> Result<[usize; 3]> {
    let (rt, rs) = (vae.temporal_ratio() as u32, vae.spatial_ratio() as u32);
    if frames == 0
        || !(frames - 1).is_multiple_of(rt)
        || !width.is_multiple_of(rs)
        || !height.is_multiple_of(rs)
        || width == 0
        || height == 0
    {
        return Err(Error::bad_input(format!(
            "LTX-Video makes {rt}n+1 frames at sides in multiples of {rs}, not {frames} frames \
             at {width}x{height}"
        )));
    }
    Ok([
        ((frames - 1) / rt + 1) as usize,
        (height / rs) as usize,
        (width / rs) as usize,
    ])
}

/// Reads the configs an LTX job needs before its weights (sizes are checked by the caller with
/// [`latent_grid`]).
pub fn check_configs(dir: &Path) -> Result<(LtxTransformerConfig, LtxVaeConfig)> {
    let t = LtxTransformerConfig::read(&dir.join("transformer"))?;
    let vae = LtxVaeConfig::read(&dir.join("vae"))?;
    if t.in_channels != vae.latent_channels * t.patch_size * t.patch_size * t.patch_size_t
        || t.out_channels != t.in_channels
    {
        return Err(Error::bad_input(format!(
            "{}: the VAE has {} latent channels but the transformer takes {} and makes {}; the \
             folder mixes models",
            dir.display(),
            vae.latent_channels,
            t.in_channels,
            t.out_channels
        )));
    }
    FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
    Ok((t, vae))
}

/// `_pack_latents`: (b, c, f, h, w) → (b, f/pt h/p w/p, c pt p p).
pub fn pack(x: &Tensor, p: usize, pt: usize) -> candle_core::Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    let (f2, h2, w2) = (f / pt, h / p, w / p);
    x.reshape(vec![b, c, f2, pt, h2, p, w2, p])?
        .permute([0, 2, 4, 6, 1, 3, 5, 7])?
        .contiguous()?
        .reshape((b, f2 * h2 * w2, c * pt * p * p))
}

/// `_unpack_latents`: the inverse of [`pack`] for the grid (f, h, w) of patches.
pub fn unpack(x: &Tensor, grid: [usize; 3], p: usize, pt: usize) -> candle_core::Result<Tensor> {
    let (b, _, cpp) = x.dims3()?;
    let c = cpp / (pt * p * p);
    let [f, h, w] = grid;
    x.reshape(vec![b, f, h, w, c, pt, p, p])?
        .permute([0, 4, 1, 5, 2, 6, 3, 7])?
        .contiguous()?
        .reshape((b, c, f * pt, h * p, w * p))
}
