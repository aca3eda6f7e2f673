//! The memory planner: before a job loads anything, estimate its peak memory from the model's exact
//! tensor sizes (safetensors headers) at the run dtype plus the activations of its size, compare
//! with the device's budget, and pick the cheapest plan that fits, in this order: everything
//! resident, staged components, attention slicing, VAE tiling, a smaller batch per pass.

pub mod activations;
pub mod flow;
pub mod flux;
pub mod footprint;
pub mod lora;
pub mod media;
pub mod stages;
pub mod video;
pub mod video_vae;
pub mod zimage;

use candle_core::DType;
use serde::Serialize;

pub use activations::ConvWorkspace;
pub use flux::plan_flux_folder;
pub use footprint::ModelFootprint;
pub use lora::LoraBytes;
pub use stages::{Candidate, DeviceTraits, JobShape, PlanStep};
pub use zimage::plan_zimage_folder;

use crate::device::DeviceMemory;
use crate::device::memory::format_bytes;
use crate::engines::sd::request::MemoryModes;
use crate::vocab::{Backend, Residency};
use crate::{Error, Result};

/// Query chunks tried by the attention-slicing step, largest (fastest) first.
const SLICE_LADDER: [u64; 3] = [1024, 256, 64];
/// Unified memory freezes the whole machine when exceeded: keep this share of the budget free.
const UNIFIED_HEADROOM_PERCENT: u64 = 15;

/// A choice the user fixed with a flag; `None` lets the planner choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    pub residency: Option<Residency>,
    /// `Some(None)`: slicing off (the engine's automatic chunking); `Some(Some(n))`: n queries.
    pub attention_slice: Option<Option<u64>>,
    pub vae_tiling: Option<bool>,
}

/// A job as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub width: u32,
    pub height: u32,
    pub batch: u32,
    /// guidance > 1: the UNet runs the negative prompt too.
    pub guided: bool,
    /// img2img / inpainting: the VAE encodes the init image.
    pub img2img: bool,
    pub dtype: DType,
    pub device: Backend,
    pub memory: DeviceMemory,
    /// `--memory-budget`, in bytes.
    pub budget_cap: Option<u64>,
    pub overrides: Overrides,
    /// The engine runs candle's stock layers (`Switches::stock_kernels`): other workspaces.
    pub stock_kernels: bool,
    /// What the job's LoRAs hold (none: zero).
    pub lora: LoraBytes,
}

/// Bytes per stage category, at the chosen plan's worst stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub text_encoders_bytes: u64,
    pub unet_bytes: u64,
    pub vae_bytes: u64,
    /// The worst stage's activations (or mapped file while loading).
    pub working_bytes: u64,
    pub overhead_bytes: u64,
    /// The stage that sets the peak.
    pub peak_stage: String,
    /// The job's LoRAs (counted in the stages too).
    #[serde(skip_serializing_if = "LoraBytes::is_empty")]
    pub lora: LoraBytes,
}

/// The plan the runner applies: residency and memory modes, the images per pass, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    pub steps: Vec<PlanStep>,
    pub peak_bytes: u64,
    /// What the job may use: the device's budget, capped by --memory-budget, less headroom on
    /// unified memory.
    pub budget_bytes: u64,
    pub fits: bool,
    pub residency: Residency,
    pub attention_slice: Option<usize>,
    pub vae_tiling: bool,
    /// Images per pass; the job's images run in ceil(requested / batch) passes.
    pub batch: u32,
    pub requested_batch: u32,
    pub dtype: String,
    pub breakdown: Breakdown,
    /// When nothing fits: changes that would make the job fit, for the message.
    pub suggestions: Vec<String>,
    /// What the user should know about the job planned, e.g. that its size was taken from the
    /// init image or scaled down to the limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl MemoryPlan {
    /// The engine's memory modes for this plan.
    pub fn memory_modes(&self) -> MemoryModes {
        MemoryModes {
            attention_slice: self.attention_slice,
            vae_tiling: self.vae_tiling,
        }
    }

    /// Refuses a plan that does not fit (exit 2), before anything is loaded.
    pub fn require_fit(&self) -> Result<()> {
        if self.fits {
            return Ok(());
        }
        let fixes = if self.suggestions.is_empty() {
            "free memory (close other programs) or use a smaller model".to_owned()
        } else {
            self.suggestions.join("; or ")
        };
        Err(Error::bad_input(format!(
            "not enough memory: this job needs about {} at its peak ({}) but {} is available; \
             to make it fit: {fixes}",
            format_bytes(self.peak_bytes),
            self.breakdown.peak_stage,
            format_bytes(self.budget_bytes)
        )))
    }
}

/// How the device's memory behaves, for the stage model.
pub fn device_traits(device: Backend, memory: &DeviceMemory) -> DeviceTraits {
    let (conv, overhead) = match device {
        Backend::Cpu => (ConvWorkspace::InputCopy, 256 << 20),
        Backend::Cuda => (ConvWorkspace::Im2colChunked, 384 << 20),
        Backend::Metal => (ConvWorkspace::Im2col, 384 << 20),
    };
    DeviceTraits {
        conv,
        mapped_files_count: !matches!(memory, DeviceMemory::Discrete { .. }),
        overhead_bytes: overhead,
        stock_kernels: false,
    }
}

/// `device_traits` of the request's device, with its kernel choice.
pub(super) fn request_traits(req: &PlanRequest) -> DeviceTraits {
    DeviceTraits {
        stock_kernels: req.stock_kernels,
        ..device_traits(req.device, &req.memory)
    }
}

/// The budget a plan must fit: capped by the flag, with headroom kept on unified memory.
pub fn effective_budget(memory: &DeviceMemory, cap: Option<u64>) -> u64 {
    let budget = memory.capped_budget(cap);
    match memory {
        DeviceMemory::Unified { .. } => budget - budget * UNIFIED_HEADROOM_PERCENT / 100,
        _ => budget,
    }
}

fn elem_bytes(dtype: DType) -> u64 {
    dtype.size_in_bytes() as u64
}

fn job_shape(fp: &ModelFootprint, req: &PlanRequest) -> JobShape {
    let elem = elem_bytes(req.dtype);
    JobShape {
        width: req.width,
        height: req.height,
        guided: req.guided,
        img2img: req.img2img,
        elem,
        // f16 VAEs that say `force_upcast` are planned in f32: SDXL's run in f32 (the engine
        // upcasts them as diffusers does); SD 1.x/2.x decode in f16 but redo a decode that
        // overflows in f32, and the plan must cover that.
        vae_elem: if req.dtype == DType::F16 && fp.vae_arch.force_upcast {
            4
        } else {
            elem
        },
        vae_scale: 1
            << fp
                .vae_arch
                .block_out_channels
                .len()
                .saturating_sub(1)
                .min(8),
    }
}

/// Plans one job on a model whose footprint was read with `ModelFootprint::read`.
pub fn plan(fp: &ModelFootprint, req: &PlanRequest) -> MemoryPlan {
    let budget = effective_budget(&req.memory, req.budget_cap);
    let dev = request_traits(req);
    let job = job_shape(fp, req);
    let candidates = candidates(req);
    let evaluate = |cand: &Candidate| {
        let steps = req.lora.apply(stages::steps(fp, &job, cand, &dev));
        let peak = steps.iter().map(|s| s.total_bytes).max().unwrap_or(0);
        (steps, peak)
    };
    let mut last = None;
    for cand in &candidates {
        let (steps, peak) = evaluate(cand);
        let fits = peak <= budget;
        last = Some((*cand, steps, peak));
        if fits {
            break;
        }
    }
    let (cand, steps, peak) = last.unwrap_or_else(|| {
        let cand = candidates_fallback(req);
        let (steps, peak) = evaluate(&cand);
        (cand, steps, peak)
    });
    let fits = peak <= budget;
    let suggestions = if fits {
        Vec::new()
    } else {
        suggestions(fp, req, budget)
    };
    MemoryPlan {
        breakdown: breakdown(fp, &job, &steps, &dev, req.lora),
        steps,
        peak_bytes: peak,
        budget_bytes: budget,
        fits,
        residency: cand.residency,
        attention_slice: cand.attention_slice.map(|n| n as usize),
        vae_tiling: cand.vae_tiling,
        batch: cand.batch,
        requested_batch: req.batch.max(1),
        dtype: crate::engines::nn::dtype::dtype_name(req.dtype).to_owned(),
        suggestions,
        warnings: Vec::new(),
    }
}

pub(super) fn candidates_fallback(req: &PlanRequest) -> Candidate {
    Candidate {
        residency: req.overrides.residency.unwrap_or_default(),
        attention_slice: req.overrides.attention_slice.flatten(),
        vae_tiling: req.overrides.vae_tiling.unwrap_or(false),
        batch: req.batch.max(1),
    }
}

/// Candidates cheapest-to-run first; each later one keeps the savings of those before it.
/// Options fixed by flags stay fixed.
pub(super) fn candidates(req: &PlanRequest) -> Vec<Candidate> {
    let o = &req.overrides;
    let mut out = Vec::new();
    let mut cand = candidates_fallback(req);
    out.push(cand);
    if o.residency.is_none() {
        cand.residency = Residency::Staged;
        out.push(cand);
    }
    if o.attention_slice.is_none() {
        for n in SLICE_LADDER {
            cand.attention_slice = Some(n);
            out.push(cand);
        }
    }
    if o.vae_tiling.is_none() {
        cand.vae_tiling = true;
        out.push(cand);
    }
    // Smaller passes; on unified memory never more than half the requested images at once once
    // we are here, since the machine is already short.
    let mut batch = cand.batch;
    while batch > 1 {
        batch /= 2;
        cand.batch = batch.max(1);
        out.push(cand);
    }
    out.dedup();
    out
}

fn breakdown(
    fp: &ModelFootprint,
    job: &JobShape,
    steps: &[PlanStep],
    dev: &DeviceTraits,
    lora: LoraBytes,
) -> Breakdown {
    let worst = steps.iter().max_by_key(|s| s.total_bytes);
    Breakdown {
        text_encoders_bytes: fp.text_encoders.iter().map(|t| t.bytes_at(job.elem)).sum(),
        unet_bytes: fp.unet.bytes_at(job.elem),
        vae_bytes: fp.vae.bytes_at(job.vae_elem),
        working_bytes: worst.map_or(0, |s| s.working_bytes),
        overhead_bytes: dev.overhead_bytes,
        peak_stage: worst.map_or_else(String::new, |s| s.stage.clone()),
        lora,
    }
}

/// What would make a job fit that does not: a smaller size, half precision, a larger budget.
fn suggestions(fp: &ModelFootprint, req: &PlanRequest, budget: u64) -> Vec<String> {
    let mut out = Vec::new();
    let fits = |r: &PlanRequest| plan_fits(fp, r, budget);
    let mut smaller = req.clone();
    while smaller.width > 256 || smaller.height > 256 {
        smaller.width = (smaller.width * 3 / 4).max(64) / 64 * 64;
        smaller.height = (smaller.height * 3 / 4).max(64) / 64 * 64;
        if fits(&smaller) {
            out.push(format!(
                "--width {} --height {}",
                smaller.width, smaller.height
            ));
            break;
        }
    }
    if req.dtype == DType::F32 && req.device != Backend::Cpu {
        let half = PlanRequest {
            dtype: DType::F16,
            ..req.clone()
        };
        if fits(&half) {
            out.push("--dtype f16".to_owned());
        }
    }
    let fixed = req.overrides != Overrides::default();
    if fixed
        && fits(&PlanRequest {
            overrides: Overrides::default(),
            ..req.clone()
        })
    {
        out.push(
            "drop --residency/--attention-slicing/--vae-tiling and let the planner choose"
                .to_owned(),
        );
    }
    let loosest = Candidate {
        residency: Residency::Staged,
        attention_slice: Some(64),
        vae_tiling: true,
        batch: 1,
    };
    let need = plan_peak(fp, req, &loosest);
    if req
        .budget_cap
        .is_some_and(|cap| cap < req.memory.budget_bytes())
        && need <= req.memory.budget_bytes()
    {
        out.push(format!(
            "raise --memory-budget to at least {}",
            format_bytes(need)
        ));
    } else {
        out.push(format!(
            "free memory so that {} is available",
            format_bytes(need)
        ));
    }
    out
}

fn plan_fits(fp: &ModelFootprint, req: &PlanRequest, budget: u64) -> bool {
    let r = PlanRequest {
        budget_cap: Some(budget),
        ..req.clone()
    };
    let p = plan_without_suggestions(fp, &r);
    p <= budget
}

fn plan_without_suggestions(fp: &ModelFootprint, req: &PlanRequest) -> u64 {
    candidates(req)
        .iter()
        .map(|c| plan_peak(fp, req, c))
        .min()
        .unwrap_or(u64::MAX)
}

fn plan_peak(fp: &ModelFootprint, req: &PlanRequest, cand: &Candidate) -> u64 {
    let job = job_shape(fp, req);
    let dev = request_traits(req);
    req.lora
        .apply(stages::steps(fp, &job, cand, &dev))
        .iter()
        .map(|s| s.total_bytes)
        .max()
        .unwrap_or(0)
}

/// Reads a model folder's footprint and plans a job on it: the one call the runner and the TUI need.
pub fn plan_folder(
    dir: &std::path::Path,
    fp16_variant: bool,
    req: &PlanRequest,
) -> Result<MemoryPlan> {
    plan_folder_with(dir, fp16_variant, req, &[])
}

/// `plan_folder` for a job with ControlNets (their folders).
pub fn plan_folder_with(
    dir: &std::path::Path,
    fp16_variant: bool,
    req: &PlanRequest,
    controlnets: &[std::path::PathBuf],
) -> Result<MemoryPlan> {
    let fp = ModelFootprint::read(dir, fp16_variant)?.with_controlnets(controlnets)?;
    Ok(plan(&fp, req))
}

#[cfg(test)]
mod flux_tests;
#[cfg(test)]
mod gpu_tests;
#[cfg(test)]
mod sd3_tests;
#[cfg(test)]
mod sparse_files;
#[cfg(test)]
mod tests;
