//! Scaled dot-product attention for the UNet, the VAE and CLIP, batched over heads.
//!
//! The default path never materialises the whole `(batch*heads, queries, keys)` score matrix for
//! large token counts: it processes the queries in chunks sized to a memory budget. Each chunk's
//! softmax still sees every key, so chunking does not change the arithmetic (only the order of
//! independent rows), which is why sliced and full attention agree to float rounding.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::engines::progress::CancelToken;
use crate::engines::sd::kernels::Kernels;

/// `AttentionMode::Auto`'s budget for one query chunk's scores on the CPU (and the planner's,
/// through `sd::footprint`).
pub(crate) const CPU_SCORE_BUDGET_BYTES: usize = 64 << 20;
/// The same on a GPU.
pub(crate) const GPU_SCORE_BUDGET_BYTES: usize = 512 << 20;

/// How attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionMode {
    /// Query chunks sized so one chunk's scores stay under a per-device budget (the default).
    #[default]
    Auto,
    /// The whole score matrix at once (reference path; most memory).
    Full,
    /// Queries processed `query_chunk` tokens at a time.
    Sliced { query_chunk: usize },
}

impl AttentionMode {
    /// The pipeline's `attention_slice` option: `Some(n)` slices by `n` queries, `None` is `Auto`.
    pub fn from_slice(slice: Option<usize>) -> Self {
        match slice {
            Some(n) => Self::Sliced {
                query_chunk: n.max(1),
            },
            None => Self::Auto,
        }
    }

    /// Queries per chunk for a score block of `rows` (batch*heads) by `keys` in `score_bytes`
    /// bytes per score.
    fn query_chunk(
        self,
        rows: usize,
        queries: usize,
        keys: usize,
        score_bytes: usize,
        device: &Device,
    ) -> usize {
        match self {
            Self::Full => queries,
            Self::Sliced { query_chunk } => query_chunk.clamp(1, queries.max(1)),
            Self::Auto => {
                // One chunk's scores (plus its softmax) under this budget: small enough to stay
                // in cache-friendly sizes on the CPU, large enough to keep a GPU busy.
                let budget = if device.is_cpu() {
                    CPU_SCORE_BUDGET_BYTES
                } else {
                    GPU_SCORE_BUDGET_BYTES
                };
                let per_query = rows
                    .saturating_mul(keys)
                    .saturating_mul(score_bytes.max(1))
                    .max(1);
                (budget / per_query).clamp(1, queries.max(1))
            }
        }
    }
}

/// The type the scores and softmax are computed in. f32 inputs stay f32. Half-precision inputs
/// are upcast to f32, except f16 on CUDA with our kernels on and no `upcast` asked: there the
/// scores stay f16 from a tensor-core GEMM with f32 accumulation (diffusers' own attention
/// processor keeps f16 scores the same way when `upcast_attention` is off) and candle's softmax
/// accumulates in f32; that halves the score traffic, which dominates GPU attention.
fn score_dtype(in_dtype: DType, upcast: bool, fast: bool, device: &Device) -> DType {
    match in_dtype {
        DType::F32 | DType::F64 if !upcast => in_dtype,
        DType::F16 if !upcast && fast && device.is_cuda() => DType::F16,
        _ => DType::F32,
    }
}

/// Queries per cancellation check when attention is watched: about a second of CPU work at the
/// largest sizes (65536 keys), and no split at all below 8192 queries.
const WATCHED_QUERY_CHUNK: usize = 4096;

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
    if fast
        && let Some(out) =
            crate::engines::sd::kernels::fused_attention_packed(q, k, v, heads, scale)
    {
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
    if fast && let Some(out) = crate::engines::sd::kernels::fused_attention(q, k, v) {
        return out;
    }
    if fast && let Some(out) = crate::engines::sd::kernels::cpu_attention(q, k, v) {
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
        let probs =
            crate::engines::sd::kernels::softmax_last_dim(scores, fast)?.to_dtype(in_dtype)?;
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

/// diffusers' `Attention` as the UNet uses it: to_q/to_k/to_v (no bias) and to_out.0.
#[derive(Debug)]
pub struct CrossAttention {
    to_q: candle_nn::Linear,
    to_k: candle_nn::Linear,
    to_v: candle_nn::Linear,
    to_out: candle_nn::Linear,
    heads: usize,
    upcast: bool,
    kernels: Kernels,
}

impl CrossAttention {
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
        upcast: bool,
        kernels: Kernels,
    ) -> Result<Self> {
        let inner = heads * dim_head;
        let context_dim = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: candle_nn::linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_k: candle_nn::linear_no_bias(context_dim, inner, vb.pp("to_k"))?,
            to_v: candle_nn::linear_no_bias(context_dim, inner, vb.pp("to_v"))?,
            to_out: candle_nn::linear(inner, query_dim, vb.pp("to_out.0"))?,
            heads,
            upcast,
            kernels,
        })
    }

    /// `xs` (b, n, query_dim); `context` (b, m, context_dim) or None for self-attention.
    pub fn forward(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        mode: AttentionMode,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let context = context.unwrap_or(xs);
        use crate::engines::sd::kernels::linear;
        let fast = self.kernels.fast();
        let q = linear(&self.to_q, xs, fast)?;
        let k = linear(&self.to_k, context, fast)?;
        let v = linear(&self.to_v, context, fast)?;
        let (heads, upcast) = (self.heads, self.upcast);
        let out = attention_watched(&q, &k, &v, heads, upcast, mode, fast, cancel)?;
        linear(&self.to_out, &out, fast)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
