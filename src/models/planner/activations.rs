//! Activation memory of one UNet step, one VAE decode (or encode) and one text-encoder pass, from
//! the architecture and the job's size. The formulas follow what this engine allocates (candle
//! keeps every live tensor; nothing is in-place):
//! - the UNet holds every down-block output for the skip connections until the up path uses it;
//! - attention materialises f32 scores and softmax for one query chunk: rows x chunk x keys,
//!   where rows = batch x heads and the chunk is the whole query set, the `Auto` budget's share,
//!   or the sliced size;
//! - a 3x3 convolution holds what is live around it (its input, the GroupNorm+SiLU output it
//!   reads, a resnet's input while its second conv runs), a workspace, its output and a second
//!   output-sized tensor (the bias-added copy; on the CPU a third: the band outputs the heap
//!   may keep, see `conv_bytes`). The
//!   workspace is the full im2col matrix (input x 9) on CUDA/Metal, one band of it (32 MiB, at
//!   least one output row) on the CPU in f32 (the engine's own kernel; the planner reads its
//!   figures from `engines::sd::footprint`), an NHWC copy of the input on the CPU otherwise (candle 0.11's
//!   tiled conv2d for half precision, or `PALLAIDIUM_STOCK_KERNELS=1`);
//! - the VAE decodes one image at a time; its largest tensors are at full resolution, where the
//!   last upsampler's conv (256 channels for SD) holds its quarter-size input, the x2 copy and
//!   the outputs besides the workspace: on the CPU in f32 (64 + 256 + 3 x 256) channels x H x W
//!   x 4 bytes + 32 MiB, 1.09 GiB at 512x512 and 4.28 GiB at 1024x1024; with a full im2col
//!   matrix and two outputs (GPU) (64 + 256 + 2304 + 2 x 256) channels, 3.06 and 12.25 GiB.

use serde::Serialize;

use super::footprint::{TextArch, UNetArch, VaeArch};
use crate::engines::sd::footprint as sd_footprint;

/// How candle computes convolutions on the job's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvWorkspace {
    /// Metal (candle's conv2d): the full im2col matrix.
    Im2col,
    /// CUDA (the engine's kernel, `engines/nn/kernels/cuda/conv.rs`): the im2col matrix in
    /// chunks of at most `sd_footprint::CUDA_CONV_BUDGET_BYTES`, at least 8 positions.
    Im2colChunked,
    /// The CPU: in f32 the engine's own kernel builds the im2col matrix one band of output rows
    /// at a time; other dtypes (and `PALLAIDIUM_STOCK_KERNELS=1`) go through candle's tiled
    /// conv2d, which only copies the input to NHWC.
    InputCopy,
}

/// What decides activation sizes, besides the architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationShape {
    /// Latent height and width (pixels / VAE scale factor).
    pub latent_h: u64,
    pub latent_w: u64,
    /// Images in one pass.
    pub images: u64,
    /// Classifier-free guidance doubles the UNet batch.
    pub guided: bool,
    /// Bytes per element of the compute dtype.
    pub elem: u64,
    pub conv: ConvWorkspace,
    /// Query chunk of sliced attention; `None` is the engine's `Auto` (a per-device score budget).
    pub attention_slice: Option<u64>,
    /// candle's stock layers (PALLAIDIUM_STOCK_KERNELS) instead of the engine's own kernels.
    pub stock_kernels: bool,
}

/// The engine's `AttentionMode::Auto` score budget per chunk (`engines::sd::footprint`): the
/// CPU's (the only backend whose convolutions copy their input) or a GPU's.
pub fn auto_score_budget(conv: ConvWorkspace) -> u64 {
    sd_footprint::attention_score_budget(conv == ConvWorkspace::InputCopy)
}

/// Scores and softmax of one query chunk (f32 both, plus a cast back for half inputs), and f32
/// copies of q and k when the inputs are half precision; nothing for CUDA's fused kernels.
pub(super) fn attention_bytes(
    s: &ActivationShape,
    rows: u64,
    queries: u64,
    keys: u64,
    dim: u64,
) -> u64 {
    // CUDA's fused kernels keep the scores on chip.
    let fused = s.conv == ConvWorkspace::Im2colChunked
        && !s.stock_kernels
        && sd_footprint::fused_attention(dim, s.elem);
    if fused {
        return 0;
    }
    let chunk = match s.attention_slice {
        Some(n) => n.clamp(1, queries),
        None => (auto_score_budget(s.conv) / (rows * keys * 4).max(1)).clamp(1, queries),
    };
    let half_cast = if s.elem < 4 { s.elem } else { 0 };
    let scores = rows * chunk * keys * (8 + half_cast);
    let upcast_qk = if s.elem < 4 {
        rows * (queries + keys) * dim * 4
    } else {
        0
    };
    scores + upcast_qk
}

/// The engine's CPU f32 convolution builds its im2col matrix in bands of at most this many bytes,
/// and at least one output row (`engines::sd::footprint`).
pub const CPU_COL_BAND_BYTES: u64 = sd_footprint::CPU_CONV_BAND_BYTES;

/// The engine's own CPU f32 kernel runs this convolution (rather than candle's conv2d).
fn cpu_banded(s: &ActivationShape) -> bool {
    s.conv == ConvWorkspace::InputCopy && s.elem == 4 && !s.stock_kernels
}

/// Bytes of the workspace of a 3x3 convolution over `c_in` channels with `pixels` output
/// positions in rows of `row`, for `batch` inputs.
fn conv_workspace(s: &ActivationShape, batch: u64, c_in: u64, pixels: u64, row: u64) -> u64 {
    let full = batch * 9 * c_in * pixels * s.elem;
    match s.conv {
        _ if cpu_banded(s) => full.min(CPU_COL_BAND_BYTES.max(batch * 9 * c_in * row * s.elem)),
        ConvWorkspace::Im2col => full,
        ConvWorkspace::Im2colChunked if !s.stock_kernels => {
            let budget = sd_footprint::CUDA_CONV_BUDGET_BYTES;
            full.min(budget.max(9 * c_in * 8 * s.elem))
        }
        ConvWorkspace::Im2colChunked => full,
        ConvWorkspace::InputCopy => batch * c_in * pixels * s.elem,
    }
}

/// A 3x3 convolution with `pixels` output positions in rows of `row`: `held` channels of the
/// tensors live around it at that resolution (its input included), its workspace, its output and
/// a second output-sized tensor (candle adds the bias as a separate op, so both exist for a
/// moment). The CPU kernel's band outputs (a few MiB each, under glibc's mmap threshold) come
/// from the heap, which may keep them after the concatenation frees them while the
/// concatenated output and its bias-added copy are mapped anew: a third output-sized block.
/// Measured (BENCHMARKS.md) the decode sits between two and three: a bound, not an average.
fn conv_bytes(
    s: &ActivationShape,
    batch: u64,
    held: u64,
    (c_in, c_out): (u64, u64),
    pixels: u64,
    row: u64,
) -> u64 {
    let outputs = if cpu_banded(s) { 3 } else { 2 };
    batch * pixels * s.elem * (held + outputs * c_out) + conv_workspace(s, batch, c_in, pixels, row)
}

/// A resnet block of one image (the VAE's: no time embedding): `conv1` reads GroupNorm+SiLU of
/// the input while the input is held; `conv2` reads GroupNorm+SiLU of `h` while the input and
/// `h` are held (the shortcut is added last).
fn resnet_bytes(s: &ActivationShape, (c_in, c_out): (u64, u64), pixels: u64, row: u64) -> u64 {
    let conv1 = conv_bytes(s, 1, 2 * c_in, (c_in, c_out), pixels, row);
    let conv2 = conv_bytes(s, 1, c_in + 2 * c_out, (c_out, c_out), pixels, row);
    conv1.max(conv2)
}

/// One UNet evaluation (all steps have the same shape).
pub fn unet_step(arch: &UNetArch, s: &ActivationShape) -> u64 {
    let b = s.images * if s.guided { 2 } else { 1 };
    let ch = &arch.block_out_channels;
    let levels = ch.len();
    let pixels = |level: usize| (s.latent_h >> level).max(1) * (s.latent_w >> level).max(1);
    let row = |level: usize| (s.latent_w >> level).max(1);
    let layers = |i: usize| arch.layers_per_block.get(i).copied().unwrap_or(2);

    // Skip connections: conv_in, every down resnet and downsampler output.
    let c0 = ch.first().copied().unwrap_or(320);
    let mut skips = c0 * pixels(0);
    for (i, &c) in ch.iter().enumerate() {
        skips += layers(i) * c * pixels(i);
        if i + 1 < levels {
            skips += c * pixels(i + 1);
        }
    }
    let skips = skips * b * s.elem;

    let cin = arch.in_channels;
    let mut transient = conv_bytes(s, b, cin, (cin, c0), pixels(0), row(0));
    for (i, &c) in ch.iter().enumerate() {
        let prev = if i == 0 { c0 } else { ch[i - 1] };
        let widest = prev.max(c);
        transient = transient.max(conv_bytes(s, b, 2 * widest, (widest, c), pixels(i), row(i)));
        // Up path at this level: the first resnet sees the deeper level's output plus a skip.
        let deeper = ch.get(i + 1).copied().unwrap_or(c);
        let joined = deeper + c;
        transient = transient.max(conv_bytes(s, b, 2 * joined, (joined, c), pixels(i), row(i)));
        if arch.attention.get(i).copied().unwrap_or(false) {
            let n = pixels(i);
            let heads = arch.heads.get(i).copied().unwrap_or(8).max(1);
            let rows = b * heads;
            let dim = c / heads;
            // Held through a transformer block: its NCHW input, the GroupNorm of it, the tokens,
            // the block's running residual and its LayerNorm (5C).
            let held = 5 * b * n * c * s.elem;
            // Self-attention: q, k, v, their per-head copies (q scaled once more) and the
            // chunks' outputs with their concatenation, plus the scores of one chunk.
            let self_attn = held + 8 * b * n * c * s.elem + attention_bytes(s, rows, n, n, dim);
            // GEGLU: the 8C projection and its bias-added copy (the 4C gated output is made
            // once the unbiased copy is freed).
            let feed_forward = held + 16 * b * n * c * s.elem;
            transient = transient.max(self_attn).max(feed_forward);
        }
    }
    let context = b * 77 * arch.cross_attention_dim * s.elem;
    skips + transient + context
}

/// The VAE's mid block at `n` latent positions and `c` channels: its resnets, and the
/// single-head attention (the normed input, its token copy, q, k, v, the scaled and split q, the
/// chunks' outputs and their concatenation: about eight `c`-channel tensors besides the scores
/// of one query chunk).
fn vae_mid_block(s: &ActivationShape, c: u64, n: u64, row: u64) -> u64 {
    resnet_bytes(s, (c, c), n, row).max(8 * n * c * s.elem + attention_bytes(s, 1, n, n, c))
}

/// Decoding one image (one tile when tiling) at `latent_h x latent_w`: the largest of its
/// layers' live sets (see the module notes), plus the decoded images of the pass.
pub fn vae_decode(arch: &VaeArch, s: &ActivationShape) -> u64 {
    let rev: Vec<u64> = arch.block_out_channels.iter().rev().copied().collect();
    let levels = rev.len();
    let pixels = |k: usize| (s.latent_h << k) * (s.latent_w << k);
    let row = |k: usize| s.latent_w << k;
    let top = rev.first().copied().unwrap_or(512);
    let latent = arch.latent_channels;
    let mut worst = conv_bytes(s, 1, latent, (latent, top), pixels(0), row(0));
    worst = worst.max(vae_mid_block(s, top, pixels(0), row(0)));
    let mut prev = top;
    for (k, &c) in rev.iter().enumerate() {
        // The first resnet changes the channels; the others keep them.
        worst = worst.max(resnet_bytes(s, (prev, c), pixels(k), row(k)));
        worst = worst.max(resnet_bytes(s, (c, c), pixels(k), row(k)));
        if k + 1 < levels {
            // The upsampler: the block's output stays while its nearest x2 copy is convolved.
            let here = c * pixels(k) * s.elem;
            let up = conv_bytes(s, 1, c, (c, c), pixels(k + 1), row(k + 1));
            worst = worst.max(here + up);
        }
        prev = c;
    }
    let full = pixels(levels.saturating_sub(1));
    // conv_norm_out + SiLU, then conv_out to RGB.
    let bottom = rev.last().copied().unwrap_or(128);
    let last = levels.saturating_sub(1);
    worst = worst.max(conv_bytes(s, 1, 2 * bottom, (bottom, 3), full, row(last)));
    // The decoded images of the pass, kept until all are done.
    worst + s.images * 3 * full * s.elem
}

/// Encoding one image (img2img / inpainting) at full resolution.
pub fn vae_encode(arch: &VaeArch, s: &ActivationShape) -> u64 {
    let ch = &arch.block_out_channels;
    let levels = ch.len();
    let shift = levels.saturating_sub(1);
    let pixels = |i: usize| ((s.latent_h << shift) >> i) * ((s.latent_w << shift) >> i);
    let row = |i: usize| (s.latent_w << shift) >> i;
    let first = ch.first().copied().unwrap_or(128);
    let mut worst = conv_bytes(s, 1, 3, (3, first), pixels(0), row(0));
    let mut prev = first;
    for (i, &c) in ch.iter().enumerate() {
        worst = worst.max(resnet_bytes(s, (prev, c), pixels(i), row(i)));
        worst = worst.max(resnet_bytes(s, (c, c), pixels(i), row(i)));
        if i + 1 < levels {
            // The downsampler: the block output and its padded copy, a stride-2 conv.
            let here = 2 * c * pixels(i) * s.elem;
            let down = conv_bytes(s, 1, 0, (c, c), pixels(i + 1), row(i + 1));
            worst = worst.max(here + down);
        }
        prev = c;
    }
    let top = ch.last().copied().unwrap_or(512);
    let n = s.latent_h * s.latent_w;
    worst.max(vae_mid_block(s, top, n, s.latent_w))
}

/// One text-encoder pass over the prompt (and the negative prompt when guided).
pub fn text_encoder(arch: &TextArch, s: &ActivationShape) -> u64 {
    let b = if s.guided { 2 } else { 1 };
    let t = arch.tokens;
    let hidden = b * t * (6 * arch.hidden_size + 2 * arch.intermediate_size) * s.elem;
    hidden + b * arch.heads * t * t * 8
}

/// The residuals a ControlNet hands the UNet each step: one tensor per skip (conv_in's and each
/// down block's resnets and downsampler) and the mid block's output, for the whole CFG batch.
pub fn control_residuals(arch: &UNetArch, shape: &ActivationShape) -> u64 {
    let batch = shape.images * if shape.guided { 2 } else { 1 };
    let ch = &arch.block_out_channels;
    let (mut h, mut w) = (shape.latent_h, shape.latent_w);
    let mut elements = ch.first().copied().unwrap_or(0) * h * w;
    for (i, &c) in ch.iter().enumerate() {
        let layers = arch.layers_per_block.get(i).copied().unwrap_or(1);
        elements += layers * c * h * w;
        if i + 1 < ch.len() {
            h = h.div_ceil(2);
            w = w.div_ceil(2);
            elements += c * h * w;
        }
    }
    elements += ch.last().copied().unwrap_or(0) * h * w;
    elements * batch * shape.elem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd15_unet() -> UNetArch {
        UNetArch {
            in_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: vec![2; 4],
            heads: vec![8; 4],
            attention: vec![true, true, true, false],
            cross_attention_dim: 768,
        }
    }

    fn shape(side: u64, slice: Option<u64>, conv: ConvWorkspace) -> ActivationShape {
        ActivationShape {
            latent_h: side / 8,
            latent_w: side / 8,
            images: 1,
            guided: true,
            elem: 4,
            conv,
            attention_slice: slice,
            stock_kernels: false,
        }
    }

    #[test]
    fn full_attention_at_512_is_the_score_matrix() {
        // b=2 (CFG) x 8 heads x 4096 x 4096 f32 scores + softmax = 2 GiB at the first block.
        let full = unet_step(
            &sd15_unet(),
            &shape(512, Some(4096), ConvWorkspace::InputCopy),
        );
        assert!(full > 2 << 30 && full < 3 << 30, "{full}");
        let sliced = unet_step(
            &sd15_unet(),
            &shape(512, Some(256), ConvWorkspace::InputCopy),
        );
        assert!(sliced < full / 4, "{sliced} vs {full}");
        let auto = unet_step(&sd15_unet(), &shape(512, None, ConvWorkspace::InputCopy));
        assert!(auto < full / 4 && auto > sliced / 2, "{auto}");
    }

    fn sd15_vae() -> VaeArch {
        VaeArch {
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            force_upcast: true,
        }
    }

    #[test]
    fn vae_decode_is_the_last_upsampler_at_full_resolution() {
        let vae = sd15_vae();
        let cpu = |side| vae_decode(&vae, &shape(side, None, ConvWorkspace::InputCopy));
        let gpu = |side| vae_decode(&vae, &shape(side, None, ConvWorkspace::Im2col));
        let rgb = |side: u64| 3 * side * side * 4;
        // The 256-channel x2 upsampler's conv at H x W in f32: its quarter-size input, the x2
        // copy and the outputs (64 + 256 channels + 3 x 256 on the CPU, 2 x 256 on a GPU), and
        // the workspace: one 32 MiB band of im2col on the CPU, the full 9 x 256 channels on a GPU.
        let band = CPU_COL_BAND_BYTES;
        for side in [256, 512, 768, 1024] {
            let px = side * side;
            assert_eq!(cpu(side), 1088 * px * 4 + band + rgb(side), "{side}");
            assert_eq!(gpu(side), (832 + 2304) * px * 4 + rgb(side), "{side}");
        }
        // 1.09 GiB at 512 and 4.28 GiB at 1024 on the CPU; 3.06 and 12.25 GiB with full im2col.
        assert_eq!(cpu(1024) - band, 4 * (cpu(512) - band));
        assert_eq!(gpu(1024), 4 * gpu(512));
        // Half precision on the CPU goes through candle's tiled conv2d: an input copy.
        let half = ActivationShape {
            elem: 2,
            ..shape(512, None, ConvWorkspace::InputCopy)
        };
        assert_eq!(
            vae_decode(&vae, &half),
            (832 + 256) * 512 * 512 * 2 + 3 * 512 * 512 * 2
        );
        assert!(vae_encode(&vae, &shape(512, None, ConvWorkspace::InputCopy)) < cpu(512));
    }

    #[test]
    fn unet_feed_forward_holds_its_projection_twice() {
        // 1024x1024 with CFG: 2 x 16384 tokens of 320 channels at the first level; the GEGLU
        // projection (8C) before and after its bias plus the block's inputs and norms (5C) is the
        // largest transient there (measured staged: 4.31 GiB at the end of the step).
        let s = shape(1024, None, ConvWorkspace::InputCopy);
        let feed_forward = 21 * 2 * 16384 * 320 * 4;
        let step = unet_step(&sd15_unet(), &s);
        assert!(
            step > feed_forward && step < feed_forward + (1 << 29),
            "{step}"
        );
    }
}
