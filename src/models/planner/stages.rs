//! The stages of one job and what is in memory during each, for a given residency and set of
//! memory modes. Peak memory is the largest stage plus the runtime's own overhead.

use serde::Serialize;

use super::activations::{self, ActivationShape, ConvWorkspace};
use super::footprint::{ComponentWeights, ModelFootprint};
use crate::vocab::Residency;

/// One stage of a job and the bytes it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    /// `load text_encoder`, `encode prompt`, `load unet`, `denoise`, `load vae`, `vae decode` ...
    pub stage: String,
    /// Weights in memory during the stage.
    pub weights_bytes: u64,
    /// Activations (or, while loading, the tensor being copied out of its mapped file).
    pub working_bytes: u64,
    /// weights + working + runtime overhead.
    pub total_bytes: u64,
}

/// Where the job runs, as far as memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTraits {
    pub conv: ConvWorkspace,
    /// Weight files are mapped into the same memory the budget counts (CPU, unified memory):
    /// while a component loads, the pages of the tensor being copied count as well as the
    /// tensors copied so far. The loader drops each tensor's pages once copied and unmaps the
    /// files when the component is built, so nothing stays mapped between stages (in staged
    /// residency either).
    pub mapped_files_count: bool,
    /// The runtime itself: allocator slack, thread stacks, BLAS workspaces, the binary.
    pub overhead_bytes: u64,
    /// The engine runs candle's stock layers (PALLAIDIUM_STOCK_KERNELS), not ours.
    pub stock_kernels: bool,
}

/// The options one candidate plan fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub residency: Residency,
    pub attention_slice: Option<u64>,
    pub vae_tiling: bool,
    pub batch: u32,
}

/// What the job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobShape {
    pub width: u32,
    pub height: u32,
    pub guided: bool,
    pub img2img: bool,
    /// Bytes per element of the compute dtype and of the VAE's (f32 when upcast).
    pub elem: u64,
    pub vae_elem: u64,
    pub vae_scale: u32,
}

/// The engine's VAE tile, in latent cells (src/engines/sd/pipeline.rs: `decode_tiled(_, 64, 16)`).
pub const VAE_TILE_LATENT: u64 = 64;

/// glibc's malloc (Linux) serves a request below its mmap threshold from its heap and keeps that
/// memory in the process after `free`, for later requests; larger requests are mapped and
/// unmapped. The threshold starts at 128 KiB and rises to the size of every mapped block freed,
/// up to 32 MiB (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit).
const MMAP_THRESHOLD_MIN: u64 = 128 << 10;
const MMAP_THRESHOLD_MAX: u64 = 32 << 20;

/// What a staged CPU job on glibc still holds after releasing the UNet: the UNet tensors that
/// came from the heap, and the threshold that decides which: the largest block of at most 32 MiB
/// freed before them (the text encoders' tensors, released before the UNet loads, and the
/// stored-dtype copies that converting loads free). Measured on SD 1.5 f32: 0.66 GiB of the
/// 3.2 GiB UNet stays (the UNet's tensors under the CLIP MLP's 9 MiB); the VAE then loads into
/// that freed heap.
fn heap_after_unet(fp: &ModelFootprint, job: &JobShape, dev: &DeviceTraits) -> (u64, u64) {
    if dev.conv != ConvWorkspace::InputCopy || !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return (0, u64::MAX);
    }
    let run = job.elem;
    let mut threshold = MMAP_THRESHOLD_MIN;
    let mut freed = |bytes: u64| {
        if bytes <= MMAP_THRESHOLD_MAX {
            threshold = threshold.max(bytes);
        }
    };
    for t in fp.text_encoders.iter().flat_map(|c| &c.tensors) {
        freed(t.bytes_at(run));
        if t.converted_at(run) {
            freed(t.stored_bytes());
        }
    }
    for t in fp.unet.tensors.iter().filter(|t| t.converted_at(run)) {
        freed(t.stored_bytes());
    }
    (heap_part(&fp.unet, run, threshold), threshold)
}

/// A component's tensors that come from the heap (at most `threshold` bytes: glibc's threshold is
/// the freed block's size with its header, a page more than the tensor), at the run dtype.
fn heap_part(c: &ComponentWeights, run: u64, threshold: u64) -> u64 {
    c.tensors
        .iter()
        .map(|t| t.bytes_at(run))
        .filter(|&b| b <= threshold)
        .sum()
}

/// The steps of a job under `cand` on a device with `dev`.
pub fn steps(
    fp: &ModelFootprint,
    job: &JobShape,
    cand: &Candidate,
    dev: &DeviceTraits,
) -> Vec<PlanStep> {
    let latent_h = u64::from(job.height / job.vae_scale.max(1));
    let latent_w = u64::from(job.width / job.vae_scale.max(1));
    let shape = ActivationShape {
        latent_h,
        latent_w,
        images: u64::from(cand.batch.max(1)),
        guided: job.guided,
        elem: job.elem,
        conv: dev.conv,
        attention_slice: cand.attention_slice,
        stock_kernels: dev.stock_kernels,
    };
    let vae_shape = |tiled: bool| ActivationShape {
        elem: job.vae_elem,
        latent_h: if tiled {
            latent_h.min(VAE_TILE_LATENT)
        } else {
            latent_h
        },
        latent_w: if tiled {
            latent_w.min(VAE_TILE_LATENT)
        } else {
            latent_w
        },
        ..shape
    };
    let te_bytes: Vec<u64> = fp
        .text_encoders
        .iter()
        .map(|t| t.bytes_at(job.elem))
        .collect();
    let te_total: u64 = te_bytes.iter().sum();
    // ControlNets load with the UNet and stay while it denoises.
    let controlnets: u64 = fp.controlnets.iter().map(|c| c.bytes_at(job.elem)).sum();
    let unet = fp.unet.bytes_at(job.elem) + controlnets;
    let vae = fp.vae.bytes_at(job.vae_elem);
    let te_act = fp
        .text_arch
        .iter()
        .map(|a| activations::text_encoder(a, &shape))
        .max()
        .unwrap_or(0);
    // A ControlNet's pass is the UNet's encoding half (within the UNet's step); its residuals,
    // one per skip and the mid block's, are held through the UNet's pass.
    let unet_act = activations::unet_step(&fp.unet_arch, &shape)
        + if fp.controlnets.is_empty() {
            0
        } else {
            activations::control_residuals(&fp.unet_arch, &shape)
        };
    let tiles = cand.vae_tiling && (latent_h > VAE_TILE_LATENT || latent_w > VAE_TILE_LATENT);
    // Tiled, the decoded tiles (they overlap), the blended rows and the whole image add up to
    // about three RGB images at full size besides one tile's decode.
    let assembled = if tiles {
        3 * shape.images * 3 * latent_h * latent_w * u64::from(job.vae_scale).pow(2) * job.vae_elem
    } else {
        0
    };
    let decode_act = activations::vae_decode(&fp.vae_arch, &vae_shape(cand.vae_tiling)) + assembled;
    let encode_act = activations::vae_encode(&fp.vae_arch, &vae_shape(false));
    let latents = shape.images * 4 * latent_h * latent_w * 4 * 4;
    // Loading one tensor: its mapped pages and, when converted, its stored-dtype copy.
    let mapped = |c: &ComponentWeights| {
        if dev.mapped_files_count {
            2 * c.largest_tensor_bytes
        } else {
            0
        }
    };

    let mut out = Vec::new();
    let mut push = |stage: &str, weights: u64, working: u64| {
        out.push(PlanStep {
            stage: stage.to_owned(),
            weights_bytes: weights,
            working_bytes: working,
            total_bytes: weights + working + dev.overhead_bytes,
        });
    };
    match cand.residency {
        Residency::Resident => {
            let mut loaded = 0;
            for (t, bytes) in fp.text_encoders.iter().zip(&te_bytes) {
                loaded += bytes;
                push(&format!("load {}", t.name), loaded, mapped(t));
            }
            loaded += unet;
            push("load unet", loaded, mapped(&fp.unet));
            loaded += vae;
            push("load vae", loaded, mapped(&fp.vae));
            push("encode prompt", loaded, te_act);
            if job.img2img {
                push("vae encode", loaded, encode_act + latents);
            }
            push("denoise", loaded, unet_act + latents);
            push("vae decode", loaded, decode_act + latents);
        }
        Residency::Staged => {
            // The VAE's heap-sized tensors reuse what the UNet left in the heap.
            let (residue, threshold) = heap_after_unet(fp, job, dev);
            let vae_heap = heap_part(&fp.vae, job.vae_elem, threshold).min(vae);
            let vae_after_unet = vae - vae_heap + vae_heap.max(residue);
            let mut loaded = 0;
            for (t, bytes) in fp.text_encoders.iter().zip(&te_bytes) {
                loaded += bytes;
                push(&format!("load {}", t.name), loaded, mapped(t));
            }
            push("encode prompt", te_total, te_act);
            if job.img2img {
                push("load vae", vae, mapped(&fp.vae));
                push("vae encode", vae, encode_act + latents);
            }
            push("load unet", unet, mapped(&fp.unet) + latents);
            push("denoise", unet, unet_act + latents);
            push("load vae", vae_after_unet, mapped(&fp.vae) + latents);
            push("vae decode", vae_after_unet, decode_act + latents);
        }
    }
    out
}
