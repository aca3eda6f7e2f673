//! What surrounds the blocks: the timestep's sinusoidal embedding, patchify / unpatchify of the
//! latents, the sequences' padding to `SEQ_MULTI_OF` tokens, the position ids diffusers builds
//! for caption and image tokens, and the 3-axis RoPE tables over them (diffusers' RopeEmbedder:
//! per axis, f64 frequencies and angles rounded to f32, cos/sin of those; neighbouring values of
//! a head pair up, `view_as_complex`).

use candle_core::{DType, Device, Result, Tensor};

use super::config::{F_PATCH, PATCH};
use crate::engines::nn::rotary::{Pairing, RopeTables};

/// diffusers' `SEQ_MULTI_OF`: caption and image sequences are padded to a multiple of it.
pub const SEQ_MULTI_OF: usize = 32;
/// The timestep embedder's sinusoidal width and `max_period`.
pub const FREQ_DIM: usize = 256;
const MAX_PERIOD: f64 = 10_000.0;

/// `len` rounded up to a multiple of [`SEQ_MULTI_OF`] (diffusers' `len + (-len) % 32`).
pub fn padded_len(len: usize) -> usize {
    len.div_ceil(SEQ_MULTI_OF) * SEQ_MULTI_OF
}

/// TimestepEmbedder.timestep_embedding(t, 256): (b,) -> (b, 256) f32, cosines first. f32
/// arithmetic as torch's (the exponent, its exp, the product with `t`, each rounded once); exp,
/// cos and sin taken in f64 and rounded, which torch's f32 kernels return up to an ulp.
pub fn timestep_embedding(t: &[f32], device: &Device) -> Result<Tensor> {
    let half = FREQ_DIM / 2;
    let neg_log = -(MAX_PERIOD.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|i| f64::from((neg_log * i as f32) / half as f32).exp() as f32)
        .collect();
    let mut out = Vec::with_capacity(t.len() * FREQ_DIM);
    for &t in t {
        let args: Vec<f64> = freqs.iter().map(|&f| f64::from(t * f)).collect();
        out.extend(args.iter().map(|a| a.cos() as f32));
        out.extend(args.iter().map(|a| a.sin() as f32));
    }
    Tensor::from_vec(out, (t.len(), FREQ_DIM), device)
}

/// Latents (b, C, F, H, W) as tokens (b, F*H/2*W/2, 2*2*C): frame-major, then rows, then
/// columns; a token's values are (row in patch, column in patch, channel), channel fastest
/// (diffusers' `_patchify_image`, `permute(1, 3, 5, 2, 4, 6, 0)`, with its one-frame patch).
pub fn patchify(latents: &Tensor) -> Result<Tensor> {
    let (b, c, f, h, w) = latents.dims5()?;
    let (ht, wt) = (h / PATCH, w / PATCH);
    latents
        .reshape(vec![b, c, f, ht, PATCH, wt, PATCH])?
        .permute(vec![0, 2, 3, 5, 4, 6, 1])?
        .reshape((b, f / F_PATCH * ht * wt, F_PATCH * PATCH * PATCH * c))
}

/// The inverse of [`patchify`]: the first F*H/2*W/2 tokens of (b, n, 4*C) as (b, C, F, H, W).
pub fn unpatchify(tokens: &Tensor, c: usize, (f, h, w): (usize, usize, usize)) -> Result<Tensor> {
    let b = tokens.dim(0)?;
    let (ht, wt) = (h / PATCH, w / PATCH);
    tokens
        .narrow(1, 0, f * ht * wt)?
        .reshape(vec![b, f, ht, wt, PATCH, PATCH, c])?
        .permute(vec![0, 6, 1, 2, 4, 3, 5])?
        .reshape((b, c, f, h, w))
}

/// Position ids (sequence, row, column) of a caption padded to `cap_total` tokens: (1 + j, 0,
/// 0) for every token, padding included (diffusers' caption grid spans the padded length).
pub fn caption_ids(cap_total: usize) -> Vec<[usize; 3]> {
    (0..cap_total).map(|j| [1 + j, 0, 0]).collect()
}

/// Position ids of an image of (F, H, W) latent tokens after a caption of `cap_total`: (cap_total
/// + 1 + f, h, w) in token order, then (0, 0, 0) for its padding to a multiple of 32.
pub fn image_ids(cap_total: usize, (f, h, w): (usize, usize, usize)) -> Vec<[usize; 3]> {
    let mut ids = Vec::with_capacity(padded_len(f * h * w));
    for fi in 0..f {
        for hi in 0..h {
            ids.extend((0..w).map(|wi| [cap_total + 1 + fi, hi, wi]));
        }
    }
    ids.resize(padded_len(f * h * w), [0, 0, 0]);
    ids
}

/// diffusers' RopeEmbedder for one (theta, axes_dims, axes_lens).
#[derive(Debug, Clone)]
pub struct Rope {
    /// Per axis: theta^(-2i / dim) for each pair (f64, as diffusers), and the table's length.
    axes: Vec<(Vec<f64>, usize)>,
}

impl Rope {
    pub fn new(theta: f64, dims: &[usize], lens: &[usize]) -> Self {
        let axes = dims
            .iter()
            .zip(lens)
            .map(|(&d, &len)| {
                let freqs = (0..d / 2)
                    .map(|i| 1.0 / theta.powf((2 * i) as f64 / d as f64))
                    .collect();
                (freqs, len)
            })
            .collect();
        Self { axes }
    }

    /// cos/sin tables for `ids` on `device`. An id past its axis's table is refused, as the
    /// index into diffusers' precomputed table would be.
    pub fn tables(&self, ids: &[[usize; 3]], device: &Device) -> Result<RopeTables> {
        let pairs: usize = self.axes.iter().map(|(f, _)| f.len()).sum();
        let mut cos = Vec::with_capacity(ids.len() * pairs);
        let mut sin = Vec::with_capacity(ids.len() * pairs);
        for row in ids {
            for (axis, (&id, (freqs, len))) in row.iter().zip(&self.axes).enumerate() {
                if id >= *len {
                    candle_core::bail!(
                        "position {id} on rotary axis {axis} is past its table of {len} \
                         (`axes_lens`): the caption or the image is too long for this model"
                    );
                }
                for &f in freqs {
                    // torch.outer in f64, `.float()`, then polar (cos, sin) in f32.
                    let angle = f64::from((id as f64 * f) as f32);
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let table = |v: Vec<f32>| Tensor::from_vec(v, (ids.len(), pairs), device);
        Ok(RopeTables {
            cos: table(cos)?,
            sin: table(sin)?,
            pairing: Pairing::Neighbours,
        })
    }
}

/// `rows` (b, n, dim) followed by `pad` copies of `token` (1, dim): (b, n + pad, dim).
pub fn append_pad(rows: &Tensor, token: &Tensor, pad: usize) -> Result<Tensor> {
    if pad == 0 {
        return Ok(rows.clone());
    }
    let (b, _, dim) = rows.dims3()?;
    let pads = token
        .to_dtype(rows.dtype())?
        .reshape((1, 1, dim))?
        .broadcast_as((b, pad, dim))?;
    Tensor::cat(&[rows, &pads.contiguous()?], 1)
}

/// Concatenates two tables along positions.
pub fn cat_tables(a: &RopeTables, b: &RopeTables) -> Result<RopeTables> {
    Ok(RopeTables {
        cos: Tensor::cat(&[&a.cos, &b.cos], 0)?,
        sin: Tensor::cat(&[&a.sin, &b.sin], 0)?,
        pairing: a.pairing,
    })
}

/// A tensor's values as f32 on the CPU (timesteps).
pub fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patchify_orders_tokens_and_values_as_diffusers() {
        let dev = Device::Cpu;
        // (1, C=2, F=1, H=4, W=2): value = c*100 + h*10 + w.
        let v: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..4).flat_map(move |h| (0..2).map(move |w| (c * 100 + h * 10 + w) as f32))
            })
            .collect();
        let x = Tensor::from_vec(v, (1, 2, 1, 4, 2), &dev).unwrap();
        let p = patchify(&x).unwrap();
        assert_eq!(p.dims(), &[1, 2, 8]);
        let rows = p.get(0).unwrap().to_vec2::<f32>().unwrap();
        // Token 1 = patch row 1; values (ph, pw, c) with c fastest.
        assert_eq!(rows[1], vec![20., 120., 21., 121., 30., 130., 31., 131.]);
        let padded = Tensor::cat(&[&p, &p.zeros_like().unwrap()], 1).unwrap();
        let back = unpatchify(&padded, 2, (1, 4, 2)).unwrap();
        let d = crate::engines::nn::compare::max_abs_diff(&back, &x)
            .unwrap()
            .0;
        assert_eq!(d, 0.0);
    }

    #[test]
    fn ids_follow_diffusers_grids_and_padding() {
        assert_eq!(padded_len(32), 32);
        assert_eq!(padded_len(33), 64);
        let cap = caption_ids(padded_len(7));
        assert_eq!((cap.len(), cap[0], cap[31]), (32, [1, 0, 0], [32, 0, 0]));
        let img = image_ids(32, (1, 2, 3));
        assert_eq!(img.len(), 32);
        assert_eq!(&img[..4], &[[33, 0, 0], [33, 0, 1], [33, 0, 2], [33, 1, 0]]);
        assert_eq!(img[6], [0, 0, 0]);
    }

    #[test]
    fn rope_tables_are_the_angles_of_each_axis() {
        let rope = Rope::new(256.0, &[2, 4, 2], &[8, 8, 8]);
        let t = rope.tables(&[[3, 2, 5]], &Device::Cpu).unwrap();
        let cos = t.cos.to_vec2::<f32>().unwrap();
        let want = [3.0f64, 2.0, 2.0 / 16.0, 5.0].map(|a| a.cos() as f32);
        for (a, b) in cos[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} {b}");
        }
        let e = rope.tables(&[[8, 0, 0]], &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("axes_lens"), "{e}");
    }

    #[test]
    fn the_timestep_embedding_is_cos_then_sin() {
        let e = timestep_embedding(&[0.0, 500.0], &Device::Cpu).unwrap();
        let rows = e.to_vec2::<f32>().unwrap();
        assert_eq!(rows[0][0], 1.0);
        assert_eq!(rows[0][128], 0.0);
        assert!((rows[1][0] - 500f32.cos()).abs() < 1e-6);
        assert!((rows[1][128] - 500f32.sin()).abs() < 1e-6);
    }
}
