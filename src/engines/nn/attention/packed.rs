//! Scaled dot-product attention on the projections' packed layout, `(batch, tokens, heads*d)`,
//! with this crate's kernels (the UNet, the VAE and `bench ops`).
//!
//! The default path never materialises the whole `(batch*heads, queries, keys)` score matrix for
//! large token counts: it processes the queries in chunks sized to a memory budget. Each chunk's
//! softmax still sees every key, so chunking does not change the arithmetic (only the order of
//! independent rows), which is why sliced and full attention agree to float rounding.

use candle_core::{DType, Device, Result, Tensor};

use super::AttentionMode;
use crate::engines::nn::kernels;
use crate::engines::progress::CancelToken;

/// The type the scores and softmax are computed in. f32 inputs stay f32. Half-precision inputs
/// are upcast to f32, except f16 on CUDA with our kernels on and no `upcast` asked: there the
/// scores stay f16 from a tensor-core GEMM with f32 accumulation (diffusers' own attention
/// processor keeps f16 scores the same way when `upcast_attention` is off) and candle's softmax
/// accumulates in f32; that halves the score traffic, which dominates GPU attention.
pub(super) fn score_dtype(in_dtype: DType, upcast: bool, fast: bool, device: &Device) -> DType {
    match in_dtype {
        DType::F32 | DType::F64 if !upcast => in_dtype,
        DType::F16 if !upcast && fast && device.is_cuda() => DType::F16,
        _ => DType::F32,
    }
}

/// Queries per cancellation check when attention is watched: about a second of CPU work at the
/// largest sizes (65536 keys), and no split at all below 8192 queries.
pub(super) const WATCHED_QUERY_CHUNK: usize = 4096;

/// `attention_with`, checking `cancel` between chunks of queries, so one attention over a
/// 2048x2048 image does not hold a cancel for minutes. Query rows are independent, so the
/// chunks give the same numbers as one call.
#[allow(clippy::too_many_arguments)] // attention_with's seven, plus the cancel
pub fn attention_watched(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    upcast: bool,
    mode: AttentionMode,
    fast: bool,
    cancel: &CancelToken,
) -> Result<Tensor> {
    cancel.check()?;
    let n_q = q.dim(1)?;
    if n_q <= 2 * WATCHED_QUERY_CHUNK {
        return attention_with(q, k, v, heads, upcast, mode, fast);
    }
    let mut outs = Vec::with_capacity(n_q.div_ceil(WATCHED_QUERY_CHUNK));
    let mut start = 0;
    while start < n_q {
        cancel.check()?;
        let len = WATCHED_QUERY_CHUNK.min(n_q - start);
        outs.push(attention_with(
            &q.narrow(1, start, len)?,
            k,
            v,
            heads,
            upcast,
            mode,
            fast,
        )?);
        start += len;
    }
    Tensor::cat(&outs, 1)
}

/// `q` (b, n_q, heads*d), `k`/`v` (b, n_k, heads*d) -> (b, n_q, heads*d). Scores and softmax
/// run in the type `score_dtype` picks (f32 unless f16 on CUDA); `fast`: our kernels
/// (`Kernels::fast`), else candle's ops throughout.
pub fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    upcast: bool,
    mode: AttentionMode,
    fast: bool,
) -> Result<Tensor> {
    let (b, n_q, inner) = q.dims3()?;
    let n_k = k.dim(1)?;
    let d = inner / heads;
    let split = |t: &Tensor, n: usize| -> Result<Tensor> {
        t.reshape((b, n, heads, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * heads, n, d))
    };
    let scale = (d as f64).powf(-0.5);
    // Tensor cores straight from this layout where they apply (f32 scores and softmax inside,
    // so `upcast` is honoured; no scores stored, so `mode` has nothing to slice).
    if fast && let Some(out) = kernels::fused_attention_packed(q, k, v, heads, scale) {
        return out;
    }
    let q = (split(q, n_q)? * scale)?;
    let k = split(k, n_k)?;
    let v = split(v, n_k)?;
    let out = attention_heads(&q, &k, &v, upcast, mode, fast)?;
    out.reshape((b, heads, n_q, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, n_q, inner))
}

/// Attention on per-head tensors: `q` (rows, n_q, d) already scaled, `k`/`v` (rows, n_k, d).
/// With `fast` on CUDA and a head size our fused kernel covers, one kernel with an online
/// softmax (f32 inside; the scores are never stored, so `mode` has nothing to slice).
pub fn attention_heads(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    upcast: bool,
    mode: AttentionMode,
    fast: bool,
) -> Result<Tensor> {
    if fast && let Some(out) = kernels::fused_attention(q, k, v) {
        return out;
    }
    if fast && let Some(out) = kernels::cpu_attention(q, k, v) {
        return out;
    }
    let (rows, n_q, _) = q.dims3()?;
    let n_k = k.dim(1)?;
    let in_dtype = v.dtype();
    let score_dtype = score_dtype(in_dtype, upcast, fast, q.device());
    let q = q.to_dtype(score_dtype)?;
    let kt = k.to_dtype(score_dtype)?.t()?;
    let chunk = mode.query_chunk(rows, n_q, n_k, score_dtype.size_in_bytes(), q.device());
    let one_chunk = |qc: &Tensor| -> Result<Tensor> {
        let scores = qc.matmul(&kt)?;
        let probs = kernels::softmax_last_dim(scores, fast)?.to_dtype(in_dtype)?;
        probs.matmul(v)
    };
    if chunk >= n_q {
        return one_chunk(&q);
    }
    let mut outs = Vec::with_capacity(n_q.div_ceil(chunk));
    let mut start = 0;
    while start < n_q {
        let len = chunk.min(n_q - start);
        outs.push(one_chunk(&q.narrow(1, start, len)?)?);
        start += len;
    }
    Tensor::cat(&outs, 1)
}
