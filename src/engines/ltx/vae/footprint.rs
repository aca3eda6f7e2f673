//! What an LTX-Video VAE decode needs beyond its weights, for the memory planner.
//!
//! The decoder runs a whole clip (all frames) through every layer at once, so its peak is in
//! the up blocks, where activations are widest in pixels and frames: the last block's resnets
//! (channels `decoder_block_out_channels[0] / upsample_factor[0]` at full resolution over the
//! patch, every output frame) and the upsampler feeding them (its conv's output is
//! `8 / factor` times its input, then depth-to-space copies it). The model walks the decoder as
//! `coders::Decoder` builds it and keeps the largest of
//! - a causal conv of `c_in → c_out` on `T` frames of `px` pixels: the block's input kept for
//!   the residual, the conv's input, its time-padded copy and that copy's frame-major copy
//!   (`T + 2` frames each), and the f32 running sum of the taps while a tap's output is added
//!   (old sum, tap, new sum: `nn::conv3d`);
//! - an upsampler: its input, the conv's output and its depth-to-space copy; residual ones
//!   also the input's depth-to-space copy repeated to the output's size and the sum;
//! - the end: conv_out's input, its output and the unpatchified frames;
//!
//! plus the decoded frames' f32 copy when the decoder runs in bf16/f16. Tiled: one tile's
//! peak plus every tile's frames (kept until blended), or at the end those, the blended rows
//! and the assembled clip.
//!
//! Measured against CPU decodes in f32 (the ignored test `measured_peak_matches_the_estimate`:
//! a 0.9.5-shaped decoder at 1/4 of its channels, one resnet a block, zero weights; the growth
//! of the process's peak RSS over the decode, after `malloc_trim` and a VmHWM reset):
//!
//! | latents (t, h, w) | frames     | tile (latents) | estimate  | measured  | measured/est. |
//! |-------------------|------------|----------------|-----------|-----------|---------------|
//! | 2 x 4 x 6         | 9x128x192  | -              |  15.1 MiB |  21.4 MiB | 1.42          |
//! | 3 x 6 x 8         | 17x192x256 | -              |  55.7 MiB |  56.1 MiB | 1.01          |
//! | 3 x 8 x 12        | 17x256x384 | -              | 111.4 MiB | 141.8 MiB | 1.27          |
//! | 3 x 8 x 12        | 17x256x384 | 4 every 3      |  68.1 MiB |  77.5 MiB | 1.14          |
//!
//! The difference is the CPU conv's im2col bands (`nn::kernels::conv::COL_BAND_BYTES`, up to
//! 32 MiB whatever the size, less where a layer's whole im2col is smaller) plus a few MiB of
//! allocator slack: the estimate counts tensors only, so on the CPU add up to ~36 MiB. On CUDA
//! the allocator's pool and cuDNN's workspace come on top instead. For the released 0.9.x VAEs
//! in bf16 it gives 10.2 GiB for 768x512 at 161 frames (6.7 GiB in diffusers' tiles) and
//! 14.1 GiB for 1280x704 at 97 frames.

use super::config::LtxVaeConfig;

/// The peak working bytes of decoding latents `latent` = (frames, height, width) (latent
/// units) with activations of `elem_bytes` each (2 for bf16/f16, 4 for f32), whole or with
/// `tile` = `Some((tile, stride))` in latents (`LtxVae::tiled_decode`; diffusers tiles only
/// latents larger than a tile).
pub fn decode_footprint(
    cfg: &LtxVaeConfig,
    latent: (usize, usize, usize),
    elem_bytes: usize,
    tile: Option<(usize, usize)>,
) -> u64 {
    let (frames, height, width) = latent;
    let b = elem_bytes as u64;
    let tiles = tile.filter(|&(t, _)| height > t || width > t);
    let (th, tw) = match tiles {
        Some((t, _)) => (height.min(t), width.min(t)),
        None => (height, width),
    };
    let working = decoder_peak(cfg, frames, th * tw, b);
    let ratio = cfg.spatial_ratio() as u64;
    let out_frames = 1 + cfg.temporal_ratio() as u64 * frames.saturating_sub(1) as u64;
    // Decoded frames of `px` latent pixels, in elements.
    let out = |px: u64| cfg.out_channels as u64 * out_frames * px * ratio * ratio;
    let full = out((height * width) as u64);
    // The f32 copy of the result when the decoder runs in a narrower type.
    let widened = if b == 4 { 0 } else { full * 4 };
    match tiles {
        Some((t, stride)) => {
            let stride = stride.max(1);
            let (rows, cols) = (height.div_ceil(stride), width.div_ceil(stride));
            // Every tile's frames (the last row and column cut by the edge) stay until blended;
            // then the rows and the clip are concatenated.
            let tiled_px: u64 = (0..rows)
                .flat_map(|i| (0..cols).map(move |j| (i, j)))
                .map(|(i, j)| (t.min(height - i * stride) * t.min(width - j * stride)) as u64)
                .sum();
            let grid = out(tiled_px) * b;
            (working + grid).max(grid + 2 * full * b + widened)
        }
        None => working + widened,
    }
}

/// The largest working set of one layer of the decoder on `frames` latent frames of `px`
/// latent pixels, in bytes.
fn decoder_peak(cfg: &LtxVaeConfig, frames: usize, px: usize, b: u64) -> u64 {
    let n = cfg.decoder_block_out_channels.len();
    let rev = |v: &[usize]| {
        v.iter()
            .take(n)
            .rev()
            .map(|&c| c as u64)
            .collect::<Vec<_>>()
    };
    let chans = rev(&cfg.decoder_block_out_channels);
    let factor = rev(&cfg.upsample_factor);
    let scaling: Vec<bool> = cfg
        .decoder_spatio_temporal_scaling
        .iter()
        .take(n)
        .rev()
        .copied()
        .collect();
    let (mut t, mut px) = (frames as u64, px as u64);
    let mut peak = 0u64;
    // A causal conv `c_in → c_out` in a block whose input of `keep` channels stays alive:
    // that input, the conv's input, its time-padded and frame-major copies, and the f32 sum of
    // the taps while the next tap's output is added (old sum, tap, new sum).
    let conv = |keep: u64, c_in: u64, c_out: u64, t: u64, px: u64| {
        let acts = keep * t + c_in * t + 2 * c_in * (t + 2);
        acts * px * b + 3 * c_out * t * px * 4
    };
    let mut c = chans.first().copied().unwrap_or(0);
    peak = peak.max(conv(0, cfg.latent_channels as u64, c, t, px));
    peak = peak.max(conv(c, c, c, t, px)); // the mid block's resnets
    for (i, &block_c) in chans.iter().enumerate() {
        let f = factor.get(i).copied().unwrap_or(1).max(1);
        let out_c = block_c / f;
        let in_c = c / f;
        if in_c != out_c {
            peak = peak.max(conv(c, c, out_c, t, px));
            c = out_c;
        }
        if scaling.get(i).copied().unwrap_or(false) {
            // conv c → 8c/f, depth-to-space (2, 2, 2) to c/f channels on 2t - 1 frames: the
            // input, the conv's output and its depth-to-space copy; residual: the input's
            // depth-to-space copy, repeated to the output's size, and the sum.
            let up = 8 * c / f * t * px;
            let x = c * t * px;
            let alive = if cfg
                .upsample_residual
                .get(n - 1 - i)
                .copied()
                .unwrap_or(false)
            {
                2 * x + 3 * up
            } else {
                x + 2 * up
            };
            peak = peak.max(alive * b);
            c /= f;
            t = 2 * t - 1;
            px *= 4;
        }
        peak = peak.max(conv(c, c, c, t, px));
    }
    let p = cfg.patch_size as u64;
    let out_c = cfg.out_channels as u64 * p * p * cfg.patch_size_t as u64;
    // conv_out, then its input (still bound), its output and the unpatchified frames.
    peak.max(conv(c, c, out_c, t, px))
        .max((c + 2 * out_c) * t * px * b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "footprint_tests.rs"]
mod tests;
