//! Scaled dot-product attention on per-head tensors, `(batch, heads, tokens, d)`, with an
//! optional additive mask and grouped key/value heads: what the transformer families (CLIP,
//! Whisper, BLIP, MusicGen, Parler-TTS) compute. The models' references differ in where they
//! scale and in which type they take the softmax; `Numerics` keeps each one's arithmetic, so
//! outputs stay bit for bit what the model's own code gave.

use candle_core::{DType, Result, Tensor};

/// Where the `1/sqrt(d)` scale is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleAt {
    /// On the queries before the score product (CLIP, Whisper, BLIP's vision, Parler-TTS).
    #[default]
    Queries,
    /// On the scores after it (BLIP's text decoder, MusicGen).
    Scores,
}

/// The types of the scores and the softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Scores and softmax in the inputs' type.
    #[default]
    Native,
    /// Scores in the inputs' type, the softmax in f32, then back to the inputs' type.
    SoftmaxF32,
    /// Queries (after scaling) and keys upcast: scores and softmax in f32.
    ScoresF32,
}

/// How one model computes its attention; the default is scaled queries, native types, strided
/// keys, all heads at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Numerics {
    pub scale_at: ScaleAt,
    pub precision: Precision,
    /// The transposed keys copied contiguous before the score product (else a strided view):
    /// the same values, but a GEMM may sum a one-row product in another order.
    pub contiguous_keys: bool,
    /// Scores over this many bytes (counted as f32) are computed one head at a time, so a long
    /// sequence's score tensor stays small and reused (Whisper's encoder over 1500 positions).
    pub split_heads_above: Option<usize>,
}

/// `softmax(q kᵀ · d^-½ + mask) v` per head: `q` (b, heads, t, d) unscaled, `k`/`v`
/// (b, kv_heads, s, d) with `heads` a multiple of `kv_heads`, `mask` broadcast onto the
/// (b, heads, t, s) scores. Returns (b, heads, t, d) in `v`'s type.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    numerics: &Numerics,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let (k, v) = if kv_heads != heads && kv_heads > 0 {
        let groups = heads / kv_heads;
        (
            candle_transformers::utils::repeat_kv(k.clone(), groups)?.contiguous()?,
            candle_transformers::utils::repeat_kv(v.clone(), groups)?.contiguous()?,
        )
    } else {
        (k.clone(), v.clone())
    };
    let scale = (d as f64).powf(-0.5);
    let q = match numerics.scale_at {
        ScaleAt::Queries => (q * scale)?,
        ScaleAt::Scores => q.clone(),
    };
    let s = k.dim(2)?;
    let one = |q: &Tensor, k: &Tensor, v: &Tensor| one_pass(q, k, v, mask, numerics, scale);
    let split = numerics
        .split_heads_above
        .is_some_and(|limit| heads >= 2 && b * heads * t * s * 4 > limit);
    if !split {
        return one(&q, &k, &v);
    }
    let parts = (0..heads)
        .map(|h| {
            one(
                &q.narrow(1, h, 1)?,
                &k.narrow(1, h, 1)?,
                &v.narrow(1, h, 1)?,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// Scores, mask, softmax and the product with `v` in one go; `q` already scaled when
/// `ScaleAt::Queries`.
fn one_pass(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    numerics: &Numerics,
    scale: f64,
) -> Result<Tensor> {
    let (q, k) = match numerics.precision {
        Precision::ScoresF32 => (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?),
        Precision::Native | Precision::SoftmaxF32 => (q.clone(), k.clone()),
    };
    let k_t = if numerics.contiguous_keys {
        k.t()?.contiguous()?
    } else {
        k.t()?
    };
    let mut scores = q.matmul(&k_t)?;
    if numerics.scale_at == ScaleAt::Scores {
        scores = (scores * scale)?;
    }
    if let Some(mask) = mask {
        scores = scores.broadcast_add(&mask.to_dtype(scores.dtype())?)?;
    }
    let probs = match numerics.precision {
        Precision::Native => candle_nn::ops::softmax_last_dim(&scores)?,
        Precision::SoftmaxF32 | Precision::ScoresF32 => {
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?
        }
    };
    probs.matmul(v)
}
