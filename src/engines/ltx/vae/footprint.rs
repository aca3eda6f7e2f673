//! The working memory of an LTX-Video decode, for the planner (first estimate; see the doc of
//! `decode_footprint`).

use super::LtxVaeConfig;

/// Peak working bytes of decoding latents (frames, h, w): the decoder's last stage runs at
/// (frames x temporal ratio, h x spatial / patch, w x spatial / patch) with
/// `decoder_block_out_channels[0]` channels, and a resnet there holds about four such tensors
/// (its input, the normalised copy, the convolution's output, the sum); the frames come out as
/// f32. With `tile` (side, stride in latents) one tile's worth plus the whole output.
pub fn decode_footprint(
    cfg: &LtxVaeConfig,
    (frames, h, w): (usize, usize, usize),
    elem_bytes: usize,
    tile: Option<(usize, usize)>,
) -> u64 {
    let (th, tw) = match tile {
        Some((t, _)) => (h.min(t), w.min(t)),
        None => (h, w),
    };
    let f = 1 + cfg.temporal_ratio() * frames.saturating_sub(1);
    let r = cfg.spatial_ratio();
    let p = cfg.patch_size.max(1);
    let c = cfg
        .decoder_block_out_channels
        .first()
        .copied()
        .unwrap_or(128);
    let stage = (f * c * (th * r / p) * (tw * r / p)) as u64;
    let output = (f * 3 * h * r * w * r * 4) as u64;
    4 * stage * elem_bytes as u64 + output
}
