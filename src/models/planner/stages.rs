//! The stages of one job and what is in memory during each, for a given residency and set of
//! memory modes. Peak memory is the largest stage plus the runtime's own overhead.

use serde::Serialize;

use super::activations::{self, ActivationShape, ConvWorkspace};
use super::footprint::ModelFootprint;
use crate::engines::sd::request::Residency;

/// One stage of a job and the bytes it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    /// `load text_encoder`, `encode prompt`, `load unet`, `denoise`, `load vae`, `vae decode` ...
    pub stage: String,
    /// Weights in memory during the stage.
    pub weights_bytes: u64,
    /// Activations (or, while loading, the mapped weight file being read).
    pub working_bytes: u64,
    /// weights + working + runtime overhead.
    pub total_bytes: u64,
}

/// Where the job runs, as far as memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTraits {
    pub conv: ConvWorkspace,
    /// Weight files are mapped into the same memory the budget counts (CPU, unified memory):
    /// while a component loads, its file's pages count as well as its tensors.
    pub mapped_files_count: bool,
    /// The runtime itself: allocator slack, thread stacks, BLAS workspaces, the binary.
    pub overhead_bytes: u64,
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
    let unet = fp.unet.bytes_at(job.elem);
    let vae = fp.vae.bytes_at(job.vae_elem);
    let te_act = fp
        .text_arch
        .iter()
        .map(|a| activations::text_encoder(a, &shape))
        .max()
        .unwrap_or(0);
    let unet_act = activations::unet_step(&fp.unet_arch, &shape);
    let decode_act = activations::vae_decode(&fp.vae_arch, &vae_shape(cand.vae_tiling));
    let encode_act = activations::vae_encode(&fp.vae_arch, &vae_shape(false));
    let latents = shape.images * 4 * latent_h * latent_w * 4 * 4;
    let mapped = |bytes: u64| if dev.mapped_files_count { bytes } else { 0 };

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
                push(&format!("load {}", t.name), loaded, mapped(t.file_bytes));
            }
            loaded += unet;
            push("load unet", loaded, mapped(fp.unet.file_bytes));
            loaded += vae;
            push("load vae", loaded, mapped(fp.vae.file_bytes));
            push("encode prompt", loaded, te_act);
            if job.img2img {
                push("vae encode", loaded, encode_act + latents);
            }
            push("denoise", loaded, unet_act + latents);
            push("vae decode", loaded, decode_act + latents);
        }
        Residency::Staged => {
            let mut loaded = 0;
            for (t, bytes) in fp.text_encoders.iter().zip(&te_bytes) {
                loaded += bytes;
                push(&format!("load {}", t.name), loaded, mapped(t.file_bytes));
            }
            push("encode prompt", te_total, te_act);
            if job.img2img {
                push("load vae", vae, mapped(fp.vae.file_bytes));
                push("vae encode", vae, encode_act + latents);
            }
            push("load unet", unet, mapped(fp.unet.file_bytes) + latents);
            push("denoise", unet, unet_act + latents);
            push("load vae", vae, mapped(fp.vae.file_bytes) + latents);
            push("vae decode", vae, decode_act + latents);
        }
    }
    out
}
