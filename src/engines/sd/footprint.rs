//! What the memory planner asks the SD engine about its working memory, so that it never reads
//! the kernels' internals: which attention keeps its scores on chip, how large the convolutions'
//! workspaces and attention's score chunks may grow. The planner's arithmetic over these lives in
//! models/planner/activations.rs; its tests pin the predictions.

use super::kernels;
use crate::engines::nn::attention::{CPU_SCORE_BUDGET_BYTES, GPU_SCORE_BUDGET_BYTES};

/// Whether CUDA's fused attention kernels (which keep the scores on chip) run heads of `head_dim`.
pub fn fused_attention(head_dim: u64) -> bool {
    usize::try_from(head_dim).is_ok_and(|d| kernels::FUSED_ATTENTION_HEAD_DIMS.contains(&d))
}

/// `AttentionMode::Auto`'s budget for one query chunk's scores (and their softmax), on the CPU or
/// on a GPU.
pub fn attention_score_budget(on_cpu: bool) -> u64 {
    let budget = if on_cpu {
        CPU_SCORE_BUDGET_BYTES
    } else {
        GPU_SCORE_BUDGET_BYTES
    };
    budget as u64
}

/// The CPU f32 convolution builds its im2col matrix in bands of at most this many bytes (and at
/// least one output row).
pub const CPU_CONV_BAND_BYTES: u64 = kernels::conv::COL_BAND_BYTES as u64;

/// The CUDA convolution's im2col workspace: at most this many bytes (and at least 8 positions).
pub const CUDA_CONV_BUDGET_BYTES: u64 = kernels::conv::CUDA_COL_BUDGET_BYTES as u64;
