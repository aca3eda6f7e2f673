//! LTX-Video's rotary positions (diffusers' `LTXVideoRotaryPosEmbed` and `apply_rotary_emb`):
//! each latent token's (frame, row, column), scaled by the pipeline's `rope_interpolation_scale`
//! and the patch sizes over a base grid of 20 frames by 2048 x 2048, mapped to [-1, 1]; `dim / 6`
//! frequencies from 1 to theta (times pi/2) per axis, interleaved (frequency-major, then axis),
//! rotating neighbouring pairs of the whole inner dimension (all heads at once); the first
//! `dim % 6` values do not rotate. Angles are computed in f32 operation by operation as torch
//! does (they reach thousands of radians, so their rounding shows in the cosines).

use candle_core::{Device, Result, Tensor};

use crate::engines::nn::rotary::{Pairing, RopeTables};

const BASE: [f32; 3] = [20.0, 2048.0, 2048.0];
const THETA: f64 = 10_000.0;

/// torch.linspace(start, end, steps) in f32.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps <= 1 {
        return vec![start; steps];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// Cos/sin tables (f, h, w tokens in that order, `dim / 2` pairs) for a latent grid of `grid`
/// (frames, height, width) tokens; `scale`: the pipeline's rope_interpolation_scale (frames:
/// VAE temporal ratio / frame rate; height, width: VAE spatial ratio); `patch` (t, s).
pub fn rope_tables(
    dim: usize,
    grid: [usize; 3],
    scale: Option<[f32; 3]>,
    patch: [usize; 2],
    device: &Device,
) -> Result<RopeTables> {
    let nf = dim / 6;
    let pad_pairs = (dim % 6) / 2;
    let freqs: Vec<f32> = linspace_f32(0.0, 1.0, nf)
        .into_iter()
        .map(|e| {
            let f = THETA.powf(f64::from(e)) as f32;
            (f * std::f32::consts::PI) / 2.0
        })
        .collect();
    let patches = [patch[0] as f32, patch[1] as f32, patch[1] as f32];
    let coord = |axis: usize, i: usize| -> f32 {
        let g = i as f32;
        let g = match scale {
            Some(s) => ((g * s[axis]) * patches[axis]) / BASE[axis],
            None => g,
        };
        g * 2.0 - 1.0
    };
    let [f, h, w] = grid;
    let pairs = dim / 2;
    let seq = f * h * w;
    let mut cos = Vec::with_capacity(seq * pairs);
    let mut sin = Vec::with_capacity(seq * pairs);
    for fi in 0..f {
        for hi in 0..h {
            for wi in 0..w {
                let c = [coord(0, fi), coord(1, hi), coord(2, wi)];
                for _ in 0..pad_pairs {
                    cos.push(1.0);
                    sin.push(0.0);
                }
                for fr in &freqs {
                    for cv in c {
                        let a = f64::from(fr * cv);
                        cos.push(a.cos() as f32);
                        sin.push(a.sin() as f32);
                    }
                }
                // A dim whose remainder by 6 is odd leaves no whole pair: nothing to add.
                for _ in (pad_pairs + 3 * nf)..pairs {
                    cos.push(1.0);
                    sin.push(0.0);
                }
            }
        }
    }
    Ok(RopeTables {
        cos: Tensor::from_vec(cos, (seq, pairs), device)?,
        sin: Tensor::from_vec(sin, (seq, pairs), device)?,
        pairing: Pairing::Neighbours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_torch_ends_and_middle() {
        assert_eq!(linspace_f32(0.0, 1.0, 2), vec![0.0, 1.0]);
        assert_eq!(linspace_f32(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert!(linspace_f32(0.0, 1.0, 0).is_empty());
    }
}
