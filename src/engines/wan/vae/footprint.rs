//! What a Wan VAE decode needs beyond its weights, for the memory planner: the feature caches
//! (two frames of every causal conv's input, kept for the whole decode), the largest layer's
//! working set for one chunk (input, output and the conv3d's f32 sum), the mid block's attention
//! scores, and the decoded frames (f32). Tiling bounds the first three by the tile.

use super::config::WanVaeConfig;
use crate::engines::nn::conv3d_causal::CACHE_T;

/// Bytes, by what holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeFootprint {
    pub caches: u64,
    pub working: u64,
    pub attention: u64,
    pub output: u64,
}

impl DecodeFootprint {
    pub fn total(&self) -> u64 {
        self.caches + self.working + self.attention + self.output
    }
}

/// A decode of latents `frames` x `height` x `width` (latent units) with activations of
/// `elem_bytes` each (2 for f16/bf16, 4 for f32); `tile`: `Some((tile, overlap))` in latents
/// when decoding in tiles (`WanVae::tiled_decode`). Attention scores count in full, bounded
/// by `score_budget` (the attention's query-chunk budget for the device).
pub fn decode_footprint(
    cfg: &WanVaeConfig,
    frames: usize,
    height: usize,
    width: usize,
    elem_bytes: usize,
    tile: Option<(usize, usize)>,
    score_budget: u64,
) -> DecodeFootprint {
    let (th, tw) = match tile {
        Some((t, _)) if height > t || width > t => (height.min(t), width.min(t)),
        _ => (height, width),
    };
    let ratio = cfg.spatial_ratio() as u64;
    // Wan 2.2 decodes at half the pixels (2x2 patches in channels), so its last stages run at
    // spatial_ratio / patch.
    let patch = cfg.patch_size.unwrap_or(1).max(1) as u64;
    let (mut caches, mut working) = (0u64, 0u64);
    let b = elem_bytes as u64;
    let base = cfg.decoder_dim();
    let stages = cfg.dim_mult.len();
    let last = cfg.dim_mult.last().copied().unwrap_or(1);
    let dims: Vec<u64> = std::iter::once(last)
        .chain(cfg.dim_mult.iter().rev().copied())
        .map(|m| (m * base) as u64)
        .collect();
    // One causal conv of `in_c` → `out_c` on `f` frames of `px` pixels.
    let mut conv = |in_c: u64, out_c: u64, f: u64, px: u64| {
        caches += CACHE_T as u64 * in_c * px * b;
        // The input with the cached frames in front, one tap's frames, the output, its f32 sum.
        let w = (in_c * (f + CACHE_T as u64) + in_c * f + out_c * f) * px * b + out_c * f * px * 4;
        working = working.max(w);
    };
    let mut px = (th * tw) as u64;
    let mut f = 1u64;
    conv(cfg.z_dim as u64, dims[0], f, px);
    for _ in 0..4 {
        conv(dims[0], dims[0], f, px); // the mid block's two residual blocks
    }
    let attention = (f * px * px * 4).min(score_budget.max(1));
    let up_t = cfg.temporal_upsample();
    let mut c = dims[0];
    for i in 0..stages {
        let out = dims[i + 1];
        for _ in 0..=cfg.num_res_blocks {
            conv(c, out, f, px);
            conv(out, out, f, px);
            c = out;
        }
        if i + 1 != stages {
            if up_t[i] {
                conv(out, 2 * out, f, px);
                f *= 2;
            }
            px *= 4;
            // Wan 2.1's upsamplers halve the channels; 2.2's keep them.
            c = if cfg.is_residual { out } else { out / 2 };
        }
    }
    conv(c, cfg.out_channels as u64, f, px);
    let out_frames = 1 + cfg.temporal_ratio() as u64 * frames.saturating_sub(1) as u64;
    let full_px = height as u64 * width as u64 * ratio * ratio;
    // Tiled: every tile's decoded frames are kept until blended (overlaps counted twice).
    let tiled_px = match tile {
        Some((t, o)) if height > t || width > t => {
            let step = t.saturating_sub(o).max(1);
            let (rows, cols) = (height.div_ceil(step) as u64, width.div_ceil(step) as u64);
            rows * cols * (th * tw) as u64 * ratio * ratio
        }
        _ => full_px,
    };
    let output = cfg.out_channels as u64 * out_frames * (tiled_px + full_px) * 4 / (patch * patch);
    DecodeFootprint {
        caches,
        working,
        attention,
        output,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wan21() -> WanVaeConfig {
        serde_json::from_str(r#"{"base_dim": 96, "z_dim": 16}"#).unwrap()
    }

    #[test]
    fn bigger_decodes_need_more_and_tiles_need_less() {
        let cfg = wan21();
        let budget = 512 << 20;
        let small = decode_footprint(&cfg, 9, 60, 104, 2, None, budget);
        let long = decode_footprint(&cfg, 21, 60, 104, 2, None, budget);
        let tiled = decode_footprint(&cfg, 9, 60, 104, 2, Some((32, 8)), budget);
        assert!(long.output > small.output);
        assert_eq!(
            long.caches, small.caches,
            "caches do not grow with the clip"
        );
        assert!(tiled.caches < small.caches && tiled.working < small.working);
        // 480x832: caches are hundreds of MB to a few GB in bf16, not bytes or terabytes.
        let gib = small.total() as f64 / (1u64 << 30) as f64;
        assert!((0.5..64.0).contains(&gib), "{gib} GiB");
        // Wan 2.2 (16x, patches of 2): the same frames need latents of half the size.
        let wan22: WanVaeConfig = serde_json::from_str(
            r#"{"base_dim": 160, "decoder_base_dim": 256, "z_dim": 48, "is_residual": true,
                "patch_size": 2, "in_channels": 12, "out_channels": 12,
                "scale_factor_spatial": 16,
                "latents_mean": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
                                 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],
                "latents_std": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
                                1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}"#,
        )
        .unwrap();
        let f22 = decode_footprint(&wan22, 9, 30, 52, 2, None, budget);
        assert_eq!(f22.output, small.output, "the same 480x832 frames");
        assert!(f22.caches > 0 && f22.working > 0);
    }
}
