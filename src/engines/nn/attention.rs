//! Attention, once for every family: the scaled dot-product core, its masks, the
//! multi-head block with its projections, and the key/value cache for incremental decoding.
//!
//! - `packed`: the fast path on the projections' `(batch, tokens, heads*d)` layout, with this
//!   crate's fused CPU/CUDA kernels (`nn::kernels`), query chunks under a memory budget
//!   (`AttentionMode`) and cancellation between chunks: the UNet and the VAE.
//! - `heads`: attention on `(batch, heads, tokens, d)` with an optional additive mask and grouped
//!   key/value heads; `Numerics` records where a model scales and in which type it takes the
//!   softmax, so each keeps the arithmetic of the implementation it is checked against.
//! - `block::MultiHeadAttention`: q/k/v/out projections loaded under configurable names (or one
//!   fused qkv), self- or cross-attention; CLIP, Whisper, BLIP, MusicGen and Parler-TTS use it.
//! - `KvCache` (past keys/values of a decoder) and `causal_mask`.
//!
//! The kernels themselves live in `nn::kernels` (one CUDA PTX build for all of them).

mod block;
mod heads;
mod kv_cache;
mod mask;
mod packed;

pub use block::{AttentionConfig, MultiHeadAttention, ProjectionBias, ProjectionNames};
pub use heads::{Numerics, Precision, ScaleAt, attend};
pub use kv_cache::KvCache;
pub use mask::causal_mask;
pub use packed::{attention_heads, attention_watched, attention_with};

use candle_core::Device;

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
    pub(crate) fn query_chunk(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod block_tests;
