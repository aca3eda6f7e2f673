//! The memory plan of a flow-matching transformer model (FLUX, Z-Image): text encoders, then the
//! transformer, then the VAE, each at the precision it is held in (a GGUF transformer stays
//! quantized), staged when together they do not fit, with attention slicing, VAE tiling and
//! smaller passes after that (the candidates of `planner::candidates`). Each family says what its
//! stages hold and need ([`FlowModel`]); choosing the candidate and the advice is shared.

use std::path::Path;

use candle_core::DType;

use super::footprint::{ComponentWeights, component};
use super::stages::{Candidate, DeviceTraits, PlanStep};
use super::{Breakdown, MemoryPlan, PlanRequest};
use crate::device::memory::format_bytes;
use crate::engines::nn::weights::gguf;
use crate::vocab::Residency;

/// Weights held at load: bytes at the run dtype, plus the largest single tensor a load or a
/// quantized matmul holds for a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub bytes: u64,
    pub transient: u64,
}

/// Where a network's weights come from: its folder, or a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Folder(ComponentWeights),
    Gguf(gguf::GgufFootprint),
}

impl Source {
    /// `file` (a GGUF, or a safetensors file replacing the folder's) when given, else the
    /// folder's `name/` component.
    pub fn read(
        dir: &Path,
        file: Option<&Path>,
        name: &str,
        fp16_variant: bool,
    ) -> crate::Result<Self> {
        match file {
            Some(f) if f.extension().is_some_and(|e| e == "gguf") => {
                Ok(Self::Gguf(gguf::footprint(f)?))
            }
            Some(f) => {
                let header = crate::models::safetensors_header::read_header(f)?;
                Ok(Self::Folder(ComponentWeights::from_headers(
                    name,
                    &[header],
                )))
            }
            None => Ok(Self::Folder(component(
                &dir.join(name),
                name,
                fp16_variant,
            )?)),
        }
    }

    /// A transformer's weights: a folder's at `elem` bytes a value; a GGUF's as stored, with
    /// one weight dequantized to f32 at a time for its matmul.
    pub fn transformer_held(&self, elem: u64) -> Held {
        match self {
            Self::Folder(c) => Held {
                bytes: c.bytes_at(elem),
                transient: c.largest_tensor_bytes,
            },
            Self::Gguf(g) => Held {
                bytes: g.stored,
                transient: g.largest_dequantized(DType::F32),
            },
        }
    }
}

/// One family's stages for the shared planner.
pub trait FlowModel {
    /// The stages of one candidate plan for `req`.
    fn steps(&self, req: &PlanRequest, cand: &Candidate, dev: &DeviceTraits) -> Vec<PlanStep>;
    /// Bytes held by (text encoders, transformer, VAE) at the run dtype.
    fn held_bytes(&self, dtype: DType) -> (u64, u64, u64);
    /// Whether the transformer is the folder's full-precision one (a GGUF would help).
    fn dense_transformer(&self) -> bool;
    /// The registry's smaller quantized variant of such models (`fetch --quant`).
    fn suggested_quant(&self) -> &'static str;
}

/// A stage holding `weights` and needing `working` bytes besides.
pub fn step(stage: &str, weights: u64, working: u64, dev: &DeviceTraits) -> PlanStep {
    PlanStep {
        stage: stage.to_owned(),
        weights_bytes: weights,
        working_bytes: working,
        total_bytes: weights + working + dev.overhead_bytes,
    }
}

fn peak(steps: &[PlanStep]) -> u64 {
    steps.iter().map(|s| s.total_bytes).max().unwrap_or(0)
}

/// Plans one job: the first candidate that fits, else the last, with what would fit.
pub fn plan(model: &dyn FlowModel, req: &PlanRequest) -> MemoryPlan {
    let budget = super::effective_budget(&req.memory, req.budget_cap);
    let dev = super::request_traits(req);
    let candidates = super::candidates(req);
    let mut chosen = None;
    for cand in &candidates {
        let s = req.lora.apply(model.steps(req, cand, &dev));
        let fits = peak(&s) <= budget;
        chosen = Some((*cand, s));
        if fits {
            break;
        }
    }
    let (cand, steps_taken) = chosen.unwrap_or_else(|| {
        let cand = super::candidates_fallback(req);
        let s = req.lora.apply(model.steps(req, &cand, &dev));
        (cand, s)
    });
    let peak_bytes = peak(&steps_taken);
    let fits = peak_bytes <= budget;
    let worst = steps_taken.iter().max_by_key(|s| s.total_bytes);
    let (text, transformer, vae) = model.held_bytes(req.dtype);
    let breakdown = Breakdown {
        text_encoders_bytes: text,
        unet_bytes: transformer,
        vae_bytes: vae,
        working_bytes: worst.map_or(0, |s| s.working_bytes),
        overhead_bytes: dev.overhead_bytes,
        peak_stage: worst.map_or_else(String::new, |s| s.stage.clone()),
        lora: req.lora,
    };
    let suggestions = if fits {
        vec![]
    } else {
        suggestions(model, req, budget, &dev)
    };
    MemoryPlan {
        steps: steps_taken,
        peak_bytes,
        budget_bytes: budget,
        fits,
        residency: cand.residency,
        attention_slice: cand.attention_slice.map(|n| n as usize),
        vae_tiling: cand.vae_tiling,
        batch: cand.batch,
        requested_batch: req.batch.max(1),
        dtype: crate::engines::nn::dtype::dtype_name(req.dtype).to_owned(),
        breakdown,
        suggestions,
        warnings: Vec::new(),
    }
}

fn suggestions(
    model: &dyn FlowModel,
    req: &PlanRequest,
    budget: u64,
    dev: &DeviceTraits,
) -> Vec<String> {
    let loosest = Candidate {
        residency: Residency::Staged,
        attention_slice: Some(64),
        vae_tiling: true,
        batch: 1,
    };
    let need = |r: &PlanRequest| peak(&r.lora.apply(model.steps(r, &loosest, dev)));
    let mut out = Vec::new();
    let mut smaller = req.clone();
    while smaller.width > 256 || smaller.height > 256 {
        smaller.width = (smaller.width * 3 / 4).max(256) / 64 * 64;
        smaller.height = (smaller.height * 3 / 4).max(256) / 64 * 64;
        if need(&smaller) <= budget {
            out.push(format!(
                "--width {} --height {}",
                smaller.width, smaller.height
            ));
            break;
        }
    }
    if model.dense_transformer() {
        out.push(format!(
            "a quantized transformer: `pallaidium fetch MODEL --quant {}`, or --transformer \
             FILE.gguf",
            model.suggested_quant()
        ));
    }
    if req.dtype == DType::F32 {
        out.push("--dtype bf16".to_owned());
    }
    out.push(format!(
        "free memory so that {} is available",
        format_bytes(need(req))
    ));
    out
}
