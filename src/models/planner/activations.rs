//! Activation memory of one UNet step, one VAE decode (or encode) and one text-encoder pass, from
//! the architecture and the job's size. The formulas follow what this engine allocates (candle
//! keeps every live tensor; nothing is in-place):
//! - the UNet holds every down-block output for the skip connections until the up path uses it;
//! - attention materialises f32 scores and softmax for one query chunk: rows x chunk x keys,
//!   where rows = batch x heads and the chunk is the whole query set, the `Auto` budget's share,
//!   or the sliced size;
//! - a 3x3 convolution holds its input, a norm/activation temporary, its output and a workspace:
//!   the full im2col matrix (input x 9) on CUDA/Metal, an NHWC copy of the input on the CPU
//!   (candle 0.11 tiles im2col there);
//! - the VAE decodes one image at a time; its largest tensors are at full resolution.

use serde::Serialize;

use super::footprint::{TextArch, UNetArch, VaeArch};

/// How candle computes convolutions on the job's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvWorkspace {
    /// CUDA and Metal: the full im2col matrix.
    Im2col,
    /// The CPU: tiled im2col, so only an NHWC copy of the input.
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
}

/// The engine's `AttentionMode::Auto` score budget per chunk (src/engines/sd/attention.rs).
pub fn auto_score_budget(conv: ConvWorkspace) -> u64 {
    match conv {
        ConvWorkspace::InputCopy => 64 << 20,
        ConvWorkspace::Im2col => 512 << 20,
    }
}

/// Scores and softmax of one query chunk (f32 both, plus a cast back for half inputs), and f32
/// copies of q and k when the inputs are half precision.
fn attention_bytes(s: &ActivationShape, rows: u64, queries: u64, keys: u64, dim: u64) -> u64 {
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

/// A 3x3 convolution at `pixels` positions: input, a norm/activation temporary of the input's
/// size, the output and the workspace.
fn conv_bytes(s: &ActivationShape, batch: u64, c_in: u64, c_out: u64, pixels: u64) -> u64 {
    let work = match s.conv {
        ConvWorkspace::Im2col => c_in * 9,
        ConvWorkspace::InputCopy => c_in,
    };
    batch * pixels * s.elem * (2 * c_in + c_out + work)
}

/// One UNet evaluation (all steps have the same shape).
pub fn unet_step(arch: &UNetArch, s: &ActivationShape) -> u64 {
    let b = s.images * if s.guided { 2 } else { 1 };
    let ch = &arch.block_out_channels;
    let levels = ch.len();
    let pixels = |level: usize| (s.latent_h >> level).max(1) * (s.latent_w >> level).max(1);
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

    let mut transient = conv_bytes(s, b, arch.in_channels, c0, pixels(0));
    for (i, &c) in ch.iter().enumerate() {
        let prev = if i == 0 { c0 } else { ch[i - 1] };
        transient = transient.max(conv_bytes(s, b, prev.max(c), c, pixels(i)));
        // Up path at this level: the first resnet sees the deeper level's output plus a skip.
        let deeper = ch.get(i + 1).copied().unwrap_or(c);
        transient = transient.max(conv_bytes(s, b, deeper + c, c, pixels(i)));
        if arch.attention.get(i).copied().unwrap_or(false) {
            let n = pixels(i);
            let heads = arch.heads.get(i).copied().unwrap_or(8).max(1);
            let rows = b * heads;
            let dim = c / heads;
            // q, k, v, output and the residual, plus the scores of one chunk.
            let self_attn = 5 * b * n * c * s.elem + attention_bytes(s, rows, n, n, dim);
            // GEGLU: the 8C projection, its two 4C halves' product and the output.
            let feed_forward = b * n * (8 * c + 4 * c + 2 * c) * s.elem;
            transient = transient.max(self_attn).max(feed_forward);
        }
    }
    let context = b * 77 * arch.cross_attention_dim * s.elem;
    skips + transient + context
}

/// Decoding one image (one tile when tiling) at `latent_h x latent_w`.
pub fn vae_decode(arch: &VaeArch, s: &ActivationShape) -> u64 {
    let rev: Vec<u64> = arch.block_out_channels.iter().rev().copied().collect();
    let levels = rev.len();
    let pixels = |k: usize| (s.latent_h << k) * (s.latent_w << k);
    let top = rev.first().copied().unwrap_or(512);
    let mut worst = conv_bytes(s, 1, arch.latent_channels, top, pixels(0));
    // The mid block's single-head attention over every latent position.
    let n = pixels(0);
    worst = worst.max(4 * n * top * s.elem + attention_bytes(s, 1, n, n, top));
    for (k, &c) in rev.iter().enumerate() {
        let prev = if k == 0 { top } else { rev[k - 1] };
        worst = worst.max(conv_bytes(s, 1, prev, c, pixels(k)));
        if k + 1 < levels {
            // The upsampler: nearest x2, then a conv at the next resolution.
            worst = worst.max(conv_bytes(s, 1, c, c, pixels(k + 1)));
        }
    }
    let full = pixels(levels.saturating_sub(1));
    // The decoded images of the pass, kept until all are done.
    worst + s.images * 3 * full * s.elem
}

/// Encoding one image (img2img / inpainting) at full resolution.
pub fn vae_encode(arch: &VaeArch, s: &ActivationShape) -> u64 {
    let ch = &arch.block_out_channels;
    let levels = ch.len();
    let shift = levels.saturating_sub(1);
    let pixels = |i: usize| ((s.latent_h << shift) >> i) * ((s.latent_w << shift) >> i);
    let mut worst = 0;
    for (i, &c) in ch.iter().enumerate() {
        let prev = if i == 0 { 3 } else { ch[i - 1] };
        worst = worst.max(conv_bytes(s, 1, prev.max(c), c, pixels(i)));
    }
    let top = ch.last().copied().unwrap_or(512);
    let n = s.latent_h * s.latent_w;
    worst.max(4 * n * top * s.elem + attention_bytes(s, 1, n, n, top))
}

/// One text-encoder pass over the prompt (and the negative prompt when guided).
pub fn text_encoder(arch: &TextArch, s: &ActivationShape) -> u64 {
    let b = if s.guided { 2 } else { 1 };
    let t = arch.tokens;
    let hidden = b * t * (6 * arch.hidden_size + 2 * arch.intermediate_size) * s.elem;
    hidden + b * arch.heads * t * t * 8
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

    #[test]
    fn activations_grow_with_resolution_and_gpu_im2col() {
        let vae = VaeArch {
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            force_upcast: true,
        };
        let small = vae_decode(&vae, &shape(256, None, ConvWorkspace::InputCopy));
        let big = vae_decode(&vae, &shape(512, None, ConvWorkspace::InputCopy));
        assert!(big > 3 * small, "{small} -> {big}");
        let gpu = vae_decode(&vae, &shape(512, None, ConvWorkspace::Im2col));
        assert!(gpu > 2 * big, "im2col is 9x the input: {big} -> {gpu}");
        // At 512x512 the decoder's 256-channel convs at full resolution dominate: ~1.3 GiB on the CPU.
        assert!(big > 1 << 30 && big < 2 << 30, "{big}");
        assert!(vae_encode(&vae, &shape(512, None, ConvWorkspace::InputCopy)) < big);
    }
}
