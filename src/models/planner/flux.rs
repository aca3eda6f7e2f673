//! FLUX's (and SD 3.5's) stages for the flow planner (`planner::flow`): CLIP + T5 (a GGUF T5
//! kept quantized), then the transformer (a GGUF one stays quantized), then the VAE. SD 3.5 adds
//! CLIP-G, CLIP's 77 tokens before T5's and classifier-free guidance's second row per image;
//! `--no-t5` drops T5.

use std::path::{Path, PathBuf};

use candle_core::DType;

use super::activations::{self, ActivationShape};
use super::flow::{FlowModel, Held, Source, step};
use super::footprint::{ComponentWeights, component};
use super::stages::{Candidate, DeviceTraits, PlanStep};
use super::{MemoryPlan, PlanRequest};
use crate::Result;
use crate::engines::flux::footprint::{FluxArch, t5_dtype};
use crate::engines::sd::footprint::VaeArch;
use crate::vocab::Residency;

/// What only a FLUX job adds to the plan request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FluxJob {
    /// T5 tokens.
    pub max_sequence_length: u32,
    /// `--transformer` / `--text-encoder-2` (T5: FLUX's text_encoder_2/, SD 3.5's
    /// text_encoder_3/), or a quantized variant's files.
    pub transformer: Option<PathBuf>,
    pub text_encoder_2: Option<PathBuf>,
    /// SD 3.5 without T5 (`--no-t5`).
    pub no_t5: bool,
}

/// A FLUX folder's weights as the engine will hold them, and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct FluxFootprint {
    pub arch: FluxArch,
    pub vae_arch: VaeArch,
    clip: ComponentWeights,
    t5: Source,
    transformer: Source,
    vae: ComponentWeights,
    /// SD 3.5: CLIP tokens before T5's (77), and whether guidance doubles the denoised rows.
    sd3: bool,
}

impl FluxFootprint {
    pub fn read(dir: &Path, fp16_variant: bool, job: &FluxJob) -> Result<Self> {
        let _span = tracing::info_span!("flux_footprint", dir = %dir.display()).entered();
        let source = |file: &Option<PathBuf>, name: &str| {
            Source::read(dir, file.as_deref(), name, fp16_variant)
        };
        let vae = crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
        if crate::engines::sd3::footprint::is_sd3_folder(dir) {
            return Self::read_sd3(dir, fp16_variant, job, vae, &source);
        }
        Ok(Self {
            sd3: false,
            arch: FluxArch::read(dir)?,
            vae_arch: VaeArch::from_config(&vae),
            clip: component(&dir.join("text_encoder"), "text_encoder", fp16_variant)?,
            t5: source(&job.text_encoder_2, "text_encoder_2")?,
            transformer: source(&job.transformer, "transformer")?,
            vae: component(&dir.join("vae"), "vae", fp16_variant)?,
        })
    }

    /// An SD 3.5 folder: both CLIPs as one component, T5 in text_encoder_3/ (none with
    /// `--no-t5`).
    fn read_sd3(
        dir: &Path,
        fp16_variant: bool,
        job: &FluxJob,
        vae: crate::engines::sd::config::VaeConfig,
        source: &dyn Fn(&Option<PathBuf>, &str) -> Result<Source>,
    ) -> Result<Self> {
        let mut clip = component(&dir.join("text_encoder"), "text_encoder", fp16_variant)?;
        let g = component(&dir.join("text_encoder_2"), "text_encoder_2", fp16_variant)?;
        clip.files.extend(g.files);
        clip.file_bytes += g.file_bytes;
        clip.float_elements += g.float_elements;
        clip.other_bytes += g.other_bytes;
        clip.largest_tensor_bytes = clip.largest_tensor_bytes.max(g.largest_tensor_bytes);
        clip.tensors.extend(g.tensors);
        let t5 = if job.no_t5 {
            Source::Folder(ComponentWeights::from_headers("text_encoder_3", &[]))
        } else {
            source(&job.text_encoder_2, "text_encoder_3")?
        };
        Ok(Self {
            sd3: true,
            arch: crate::engines::sd3::footprint::arch(dir, job.no_t5)?,
            vae_arch: VaeArch::from_config(&vae),
            clip,
            t5,
            transformer: source(&job.transformer, "transformer")?,
            vae: component(&dir.join("vae"), "vae", fp16_variant)?,
        })
    }

    fn clip_held(&self, elem: u64) -> Held {
        Held {
            bytes: self.clip.bytes_at(elem),
            transient: self.clip.largest_tensor_bytes,
        }
    }

    fn t5_held(&self, dtype: DType) -> Held {
        let t5 = t5_dtype(dtype);
        match &self.t5 {
            Source::Folder(c) => Held {
                bytes: c.bytes_at(t5.size_in_bytes() as u64),
                transient: c.largest_tensor_bytes,
            },
            // Kept quantized (`QuantizedT5Encoder`): the stored bytes, plus the token
            // embedding dequantized once to f32; each layer's weight is dequantized for its
            // matmul.
            Source::Gguf(g) => Held {
                bytes: g.stored + g.largest_dequantized(DType::F32),
                transient: 2 * g.largest_dequantized(t5),
            },
        }
    }

    fn transformer_held(&self, elem: u64) -> Held {
        self.transformer.transformer_held(elem)
    }

    fn vae_held(&self, elem: u64) -> Held {
        Held {
            bytes: self.vae.bytes_at(elem),
            transient: self.vae.largest_tensor_bytes,
        }
    }
}

/// The stages of one candidate plan.
fn steps(
    fp: &FluxFootprint,
    req: &PlanRequest,
    job: &FluxJob,
    cand: &Candidate,
    dev: &DeviceTraits,
) -> Vec<PlanStep> {
    let elem = req.dtype.size_in_bytes() as u64;
    let images = u64::from(cand.batch.max(1));
    let clip = fp.clip_held(elem);
    let t5 = fp.t5_held(req.dtype);
    let transformer = fp.transformer_held(elem);
    let vae = fp.vae_held(elem);
    let resident = cand.residency == Residency::Resident;
    let all = clip.bytes + t5.bytes + transformer.bytes + vae.bytes;
    let held = |own: u64| if resident { all } else { own };
    let (lh, lw) = (u64::from(req.height) / 8, u64::from(req.width) / 8);
    let image_tokens = (lh / 2) * (lw / 2);
    let text_tokens = u64::from(job.max_sequence_length);
    let clip_tokens = if fp.sd3 {
        crate::engines::sd3::footprint::CLIP_TOKENS
    } else {
        0
    };
    let tokens = image_tokens + text_tokens + clip_tokens;
    // SD 3.5's classifier-free guidance runs negative and positive rows in one batch.
    let rows = if fp.sd3 && req.guided {
        2 * images
    } else {
        images
    };
    let shape = ActivationShape {
        latent_h: lh,
        latent_w: lw,
        images: 1,
        guided: false,
        elem,
        conv: dev.conv,
        attention_slice: cand.attention_slice,
        stock_kernels: dev.stock_kernels,
    };
    let a = &fp.arch;
    let t5_elem = t5_dtype(req.dtype).size_in_bytes() as u64;
    let t5_rows = text_tokens;
    let text_work = t5_rows * (4 * a.t5_width + 2 * a.t5_ff) * t5_elem
        + a.t5_heads * t5_rows * t5_rows * 4
        + t5.transient.max(clip.transient);
    let scores = activations::attention_bytes(
        &ActivationShape {
            images: rows,
            ..shape
        },
        rows * a.heads,
        tokens,
        tokens,
        a.head_dim,
    );
    // Latents, noise and their packed copies of the pass in f32.
    let latents = 4 * rows * 16 * lh * lw * 4;
    let denoise_work = a.step_bytes(tokens, rows, elem) + scores + latents + transformer.transient;
    let tile = if cand.vae_tiling { lh.min(64) } else { lh };
    let tile_w = if cand.vae_tiling { lw.min(64) } else { lw };
    let vae_shape = ActivationShape {
        latent_h: tile,
        latent_w: tile_w,
        images,
        ..shape
    };
    let mut out = vec![
        step(
            match (fp.sd3, job.no_t5) {
                (true, true) => "encode prompt (CLIP-L + CLIP-G)",
                (true, false) => "encode prompt (CLIPs + T5)",
                _ => "encode prompt (CLIP + T5)",
            },
            held(clip.bytes + t5.bytes),
            text_work,
            dev,
        ),
        step(
            "denoise (transformer)",
            held(transformer.bytes),
            denoise_work,
            dev,
        ),
    ];
    if req.img2img {
        let enc = activations::vae_encode(
            &fp.vae_arch,
            &ActivationShape {
                images: 1,
                ..vae_shape
            },
        );
        out.insert(1, step("vae encode", held(vae.bytes), enc, dev));
    }
    let dec = activations::vae_decode(&fp.vae_arch, &vae_shape) + vae.transient;
    out.push(step("vae decode", held(vae.bytes), dec, dev));
    out
}

/// A FLUX footprint with its job's T5 length: what the flow planner plans.
struct FluxModel<'a> {
    fp: &'a FluxFootprint,
    job: &'a FluxJob,
}

impl FlowModel for FluxModel<'_> {
    fn steps(&self, req: &PlanRequest, cand: &Candidate, dev: &DeviceTraits) -> Vec<PlanStep> {
        steps(self.fp, req, self.job, cand, dev)
    }

    fn held_bytes(&self, dtype: DType) -> (u64, u64, u64) {
        let (fp, elem) = (self.fp, dtype.size_in_bytes() as u64);
        (
            fp.clip_held(elem).bytes + fp.t5_held(dtype).bytes,
            fp.transformer_held(elem).bytes,
            fp.vae_held(elem).bytes,
        )
    }

    fn dense_transformer(&self) -> bool {
        matches!(self.fp.transformer, Source::Folder(_))
    }

    fn suggested_quant(&self) -> &'static str {
        "q4_k_s"
    }
}

/// Plans one FLUX job: the first candidate that fits, else the last, with what would fit.
pub fn plan(fp: &FluxFootprint, req: &PlanRequest, job: &FluxJob) -> MemoryPlan {
    super::flow::plan(&FluxModel { fp, job }, req)
}

/// Reads a FLUX folder's footprint (with the job's replacement weights) and plans a job on it.
pub fn plan_flux_folder(
    dir: &std::path::Path,
    fp16_variant: bool,
    req: &PlanRequest,
    job: &FluxJob,
) -> Result<MemoryPlan> {
    let fp = FluxFootprint::read(dir, fp16_variant, job)?;
    Ok(plan(&fp, req, job))
}
