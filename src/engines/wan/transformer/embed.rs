//! What goes into and comes out of Wan's blocks: the patch embedding and its inverse, the
//! condition embedder (diffusers' WanTimeTextImageEmbedding, text-to-video: timestep and text)
//! and the 3D rotary tables (WanRotaryPosEmbed).

use candle_core::{DType, Device, Module, Result, Tensor};

use super::blocks::layer_norm;
use crate::engines::flux::transformer::embeddings::sinusoidal;
use crate::engines::flux::transformer::linear::Linear;
use crate::engines::nn::activation::gelu_erf;
use crate::engines::nn::rotary::{MultiAxisRope, RopeTables};

/// The rotary base diffusers uses for Wan.
const ROPE_THETA: f64 = 10_000.0;

/// Latents (b, C, F, H, W) as patch tokens (b, F'*H'*W', C*pt*ph*pw): frame-major, then rows,
/// then columns; a token's values in the Conv3d weight's order (channel, t, y, x), so the patch
/// embedding (kernel = stride = patch) is one linear layer.
pub fn patchify(latents: &Tensor, [pt, ph, pw]: [usize; 3]) -> Result<Tensor> {
    let (b, c, f, h, w) = latents.dims5()?;
    let (ft, ht, wt) = (f / pt, h / ph, w / pw);
    latents
        .reshape(vec![b, c, ft, pt, ht, ph, wt, pw])?
        .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])?
        .reshape((b, ft * ht * wt, c * pt * ph * pw))
}

/// proj_out's tokens (b, F'*H'*W', pt*ph*pw*C) back to (b, C, F, H, W) (diffusers'
/// `reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)`).
pub fn unpatchify(
    tokens: &Tensor,
    c: usize,
    [pt, ph, pw]: [usize; 3],
    (ft, ht, wt): (usize, usize, usize),
) -> Result<Tensor> {
    let b = tokens.dim(0)?;
    tokens
        .reshape(vec![b, ft, ht, wt, pt, ph, pw, c])?
        .permute(vec![0, 7, 1, 4, 2, 5, 3, 6])?
        .reshape((b, c, ft * pt, ht * ph, wt * pw))
}

/// The patch grid's rotary tables: one (frame, row, column) id per token.
pub fn rope_tables(
    axes: [usize; 3],
    (ft, ht, wt): (usize, usize, usize),
    device: &Device,
) -> Result<RopeTables> {
    let mut ids = Vec::with_capacity(ft * ht * wt * 3);
    for f in 0..ft {
        for y in 0..ht {
            for x in 0..wt {
                ids.extend([f as f32, y as f32, x as f32]);
            }
        }
    }
    let ids = Tensor::from_vec(ids, (ft * ht * wt, 3), device)?;
    MultiAxisRope::new(ROPE_THETA, &axes)?.tables(&ids)
}

/// Linear, activation, linear.
#[derive(Debug, Clone)]
pub struct TwoLayer {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

/// The timestep and text embeddings.
#[derive(Debug, Clone)]
pub struct ConditionEmbedder {
    /// diffusers' TimestepEmbedding (SiLU), in f32 (diffusers keeps `time_embedder` in f32).
    pub time_embedder: TwoLayer,
    /// `time_proj`: SiLU(temb) -> the 6 modulation vectors of every block.
    pub time_proj: Linear,
    /// PixArtAlphaTextProjection with tanh-GELU.
    pub text_embedder: TwoLayer,
    /// Wan 2.1 I2V's CLIP image embedder.
    pub image_embedder: Option<ImageEmbedder>,
    pub freq_dim: usize,
}

/// The condition embedder's outputs; `t` is 1 (one timestep per item) or the token count
/// (Wan 2.2 TI2V's per-token timesteps).
pub struct Conditions {
    /// (b, t, dim) f32: the output norm's modulation input.
    pub temb: Tensor,
    /// (b, t, 6, dim) f32: every block's modulation input.
    pub proj: Tensor,
    /// (b, seq, dim) in the model's dtype.
    pub text: Tensor,
}

impl ConditionEmbedder {
    /// `timestep` (b,) or (b, t); `text` (b, seq, text_dim) in the model's dtype.
    pub fn forward(&self, timestep: &Tensor, text: &Tensor) -> Result<Conditions> {
        let dtype = text.dtype();
        let (b, t) = match timestep.dims() {
            &[b] => (b, 1),
            &[b, t] => (b, t),
            dims => candle_core::bail!("timestep {dims:?}: expected (batch,) or (batch, tokens)"),
        };
        let freq = sinusoidal(timestep, self.freq_dim)?;
        let te = &self.time_embedder;
        let temb = te
            .linear_2
            .forward(&te.linear_1.forward(&freq)?.silu()?)?
            .to_dtype(dtype)?;
        let proj = self.time_proj.forward(&temb.silu()?)?;
        let dim = temb.dim(1)?;
        let temb = temb.to_dtype(DType::F32)?.reshape((b, t, dim))?;
        let proj = proj.to_dtype(DType::F32)?.reshape((b, t, 6, dim))?;
        let tx = &self.text_embedder;
        let text = tx.linear_2.forward(&tx.linear_1.forward(text)?.gelu()?)?;
        Ok(Conditions { temb, proj, text })
    }
}

/// diffusers' FP32LayerNorm default eps (the image embedder's norms).
const IMAGE_NORM_EPS: f64 = 1e-5;

/// Wan 2.1 I2V's WanImageEmbedding: CLIP image features through LayerNorm, a GELU (erf) MLP and
/// LayerNorm to the model width; FLF2V adds a position embedding over the two frames' tokens.
#[derive(Debug, Clone)]
pub struct ImageEmbedder {
    /// (weight, bias) in f32.
    pub norm1: (Tensor, Tensor),
    pub ff_in: Linear,
    pub ff_out: Linear,
    pub norm2: (Tensor, Tensor),
    /// (1, 2 * tokens, image_dim) f32.
    pub pos_embed: Option<Tensor>,
}

impl ImageEmbedder {
    /// `image` (n, tokens, image_dim) -> (n, tokens, dim) in `dtype`; with a position embedding
    /// each pair of images (first and last frame) becomes one (n / 2, 2 * tokens, dim).
    pub fn forward(&self, image: &Tensor, dtype: DType) -> Result<Tensor> {
        let mut x = image.to_dtype(DType::F32)?;
        if let Some(pos) = &self.pos_embed {
            let (n, tokens, width) = x.dims3()?;
            if !n.is_multiple_of(2) || 2 * tokens != pos.dim(1)? {
                candle_core::bail!(
                    "image features {:?}: this model (pos_embed_seq_len {}) takes pairs of \
                     images (first and last frame) of {} tokens each",
                    x.dims(),
                    pos.dim(1)?,
                    pos.dim(1)? / 2
                );
            }
            x = x.reshape((n / 2, 2 * tokens, width))?.broadcast_add(pos)?;
        }
        let normed = layer_norm(&x, IMAGE_NORM_EPS, Some(&self.norm1))?.to_dtype(dtype)?;
        let hidden = gelu_erf(&self.ff_in.forward(&normed)?)?;
        let out = self.ff_out.forward(&hidden)?;
        layer_norm(&out, IMAGE_NORM_EPS, Some(&self.norm2))?.to_dtype(dtype)
    }
}

/// `table` (1, n, dim) + `proj` (b, t, n, dim), cut into n (b, t, dim) f32 vectors.
pub fn modulation(table: &Tensor, proj: &Tensor) -> Result<Vec<Tensor>> {
    let n = table.dim(1)?;
    let sum = proj.broadcast_add(&table.unsqueeze(0)?)?;
    (0..n).map(|i| sum.narrow(2, i, 1)?.squeeze(2)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unpatchify_inverts_a_patchify_of_the_same_order() {
        // patchify orders a token (c, t, y, x), unpatchify (t, y, x, c): check each against an
        // explicit index.
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 3.0 * 2.0 * 4.0 * 6.0, &dev)
            .unwrap()
            .reshape((1, 3, 2, 4, 6))
            .unwrap();
        let p = patchify(&x, [1, 2, 2]).unwrap();
        assert_eq!(p.dims(), &[1, 2 * 2 * 3, 12]);
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let at = |c: usize, f: usize, y: usize, xx: usize| xs[(((c * 2 + f) * 4 + y) * 6) + xx];
        let ps = p.to_vec3::<f32>().unwrap();
        // token (f 1, row 1, col 2), value (c 2, t 0, y 1, x 0)
        assert_eq!(ps[0][6 + 3 + 2][2 * 4 + 2], at(2, 1, 3, 4));
        // Tokens in (t, y, x, c) order come back to the latents.
        let q = p
            .reshape((1, 12, 3, 4))
            .unwrap()
            .transpose(2, 3)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((1, 12, 12))
            .unwrap();
        let back = unpatchify(&q, 3, [1, 2, 2], (2, 2, 3)).unwrap();
        let diff = (back - &x).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
