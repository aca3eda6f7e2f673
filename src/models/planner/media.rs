//! Memory plans for audio and text models: weights at the run dtype (GGUF files as stored), the
//! file mapped while loading where mapped pages count, and the working memory of one run, which
//! grows with the length of what is generated (kv caches, the codec's upsampled signal).

use std::path::{Path, PathBuf};

use candle_core::DType;

use super::stages::PlanStep;
use super::{Breakdown, MemoryPlan, device_traits, effective_budget};
use crate::device::DeviceMemory;
use crate::device::memory::format_bytes;
use crate::engines::media::WorkingSet;
use crate::models::Family;
use crate::vocab::{Backend, Residency};

/// What an audio or text job asks for, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlanRequest {
    pub family: Family,
    /// Bytes of the weights once loaded (`MediaWeights::bytes`).
    pub weights_bytes: u64,
    /// The largest tensor as stored (`MediaWeights`): held twice while it loads,
    /// since each tensor's mapped pages are dropped once copied (`engines::nn::weights`).
    pub largest_tensor_bytes: u64,
    /// Seconds of audio made (music, speech) or read (transcription).
    pub seconds: f64,
    pub batch: u32,
    pub dtype: DType,
    pub device: Backend,
    pub memory: DeviceMemory,
    pub budget_cap: Option<u64>,
    /// Upscalers: the tile side asked for (`--tile`); None: the largest that fits.
    pub tile: Option<u32>,
}

/// The tile side an upscale job runs with: the one asked, else the largest whose working
/// memory fits beside the weights (the smallest if none does; the plan then does not fit).
pub fn upscale_tile(req: &MediaPlanRequest) -> u32 {
    use crate::engines::upscale::{WORKING_SET, footprint};
    let budget = effective_budget(&req.memory, req.budget_cap);
    let dev = device_traits(req.device, &req.memory);
    let fixed = req.weights_bytes + dev.overhead_bytes + WORKING_SET.fixed_bytes;
    let elem = req.dtype.size_in_bytes() as u64;
    req.tile
        .or_else(|| footprint::auto_tile(budget.saturating_sub(fixed), elem))
        .unwrap_or(footprint::TILE_SIDES[footprint::TILE_SIDES.len() - 1])
}

/// Working memory of one run beyond the weights, as the family's engine publishes it
/// (`WORKING_SET` in each engine; SD plans through `planner::plan`), scaled by the element size
/// relative to f32 and the batch.
fn working_bytes(req: &MediaPlanRequest) -> u64 {
    use crate::engines::{audio, text};
    let elem = req.dtype.size_in_bytes() as u64;
    let secs = req.seconds.clamp(0.0, 3600.0);
    let set = match req.family {
        Family::Musicgen => audio::musicgen::WORKING_SET,
        Family::ParlerTts => audio::parler::WORKING_SET,
        Family::Whisper => text::whisper::WORKING_SET,
        Family::Blip => text::blip::WORKING_SET,
        Family::GgufLlm => text::enhance::WORKING_SET,
        Family::Realesrgan => {
            let elem = req.dtype.size_in_bytes() as u64;
            let tile = crate::engines::upscale::footprint::tile_bytes(upscale_tile(req), elem);
            return crate::engines::upscale::WORKING_SET.fixed_bytes + tile;
        }
        Family::Sd1
        | Family::Sd2
        | Family::Sdxl
        | Family::Flux
        | Family::ZImage
        | Family::Sd3
        | Family::Wan
        | Family::Ltx => WorkingSet::mib(0, 0),
    };
    let per_run = set.fixed_bytes + (set.per_second_bytes as f64 * secs) as u64;
    per_run * elem.max(2) / 4 * u64::from(req.batch.max(1))
}

/// The plan for an audio or text job: everything resident, one pass per clip.
pub fn plan_media(req: &MediaPlanRequest) -> MemoryPlan {
    let budget = effective_budget(&req.memory, req.budget_cap);
    let dev = device_traits(req.device, &req.memory);
    let weights = req.weights_bytes;
    let working = working_bytes(req);
    let load_working = if dev.mapped_files_count {
        req.largest_tensor_bytes
    } else {
        0
    };
    let steps = vec![
        PlanStep {
            stage: format!("load {}", req.family),
            weights_bytes: weights,
            working_bytes: load_working,
            total_bytes: weights + load_working + dev.overhead_bytes,
        },
        PlanStep {
            stage: if req.family == Family::Realesrgan {
                format!("upscale (tiles of {} px)", upscale_tile(req))
            } else {
                "generate".to_owned()
            },
            weights_bytes: weights,
            working_bytes: working,
            total_bytes: weights + working + dev.overhead_bytes,
        },
    ];
    let peak_step = steps
        .iter()
        .max_by_key(|s| s.total_bytes)
        .cloned()
        .unwrap_or_else(|| steps[0].clone());
    let fits = peak_step.total_bytes <= budget;
    let mut suggestions = Vec::new();
    if !fits {
        if req.dtype == DType::F32 && req.family != Family::GgufLlm {
            suggestions.push(format!(
                "--dtype f16 (about {} less)",
                format_bytes(weights / 2)
            ));
        }
        if req.family == Family::Realesrgan {
            suggestions.push(format!(
                "a smaller --tile (at least {})",
                crate::jobs::spec::upscale::MIN_TILE
            ));
        }
        if req.seconds > 10.0 {
            suggestions.push("a shorter --duration".to_owned());
        }
        suggestions.push("a smaller model of the same kind (`pallaidium models`)".to_owned());
    }
    MemoryPlan {
        breakdown: Breakdown {
            text_encoders_bytes: 0,
            unet_bytes: weights,
            vae_bytes: 0,
            working_bytes: peak_step.working_bytes,
            overhead_bytes: dev.overhead_bytes,
            peak_stage: peak_step.stage.clone(),
            lora: Default::default(),
        },
        peak_bytes: peak_step.total_bytes,
        steps,
        budget_bytes: budget,
        fits,
        residency: Residency::Resident,
        attention_slice: None,
        vae_tiling: false,
        batch: req.batch.max(1),
        requested_batch: req.batch.max(1),
        dtype: crate::engines::nn::dtype::dtype_name(req.dtype).to_owned(),
        suggestions,
        warnings: Vec::new(),
    }
}

/// What an audio or text model's weight files hold, read from their headers in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaWeights {
    /// Bytes once loaded: safetensors scaled to the compute dtype (they are stored in f32 or
    /// f16), a GGUF file as it is (quantized weights stay quantized).
    pub bytes: u64,
    /// The largest safetensors tensor as stored (GGUF files are read through a file handle,
    /// not a mapping, so they add nothing here).
    pub largest_tensor_bytes: u64,
}

impl MediaWeights {
    /// `path`: a model folder, or a .gguf file.
    pub fn read(path: &Path, dtype: DType) -> Self {
        let files: Vec<PathBuf> = if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            std::fs::read_dir(path)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        let mut out = Self::default();
        for f in &files {
            let Some(size) = f.metadata().ok().map(|m| m.len()) else {
                continue;
            };
            match f.extension().and_then(|e| e.to_str()) {
                Some("gguf") => out.bytes += size,
                Some("safetensors") => match crate::models::safetensors_header::read_header(f) {
                    Ok(h) => {
                        out.bytes += h.bytes_at(dtype.size_in_bytes() as u64);
                        let largest = h
                            .tensors
                            .values()
                            .map(|t| t.elements() * t.dtype.size_in_bytes())
                            .max()
                            .unwrap_or(0);
                        out.largest_tensor_bytes = out.largest_tensor_bytes.max(largest);
                    }
                    Err(_) => out.bytes += size,
                },
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(family: Family, weights: u64, seconds: f64, budget: u64) -> MediaPlanRequest {
        MediaPlanRequest {
            family,
            weights_bytes: weights,
            largest_tensor_bytes: weights / 10,
            seconds,
            batch: 1,
            dtype: DType::F32,
            device: Backend::Cpu,
            memory: DeviceMemory::System {
                total: budget,
                available: budget,
            },
            budget_cap: None,
            tile: None,
        }
    }

    #[test]
    fn upscale_tiles_follow_the_budget_and_the_flag() {
        let roomy = req(Family::Realesrgan, 64 << 20, 0.0, 32 << 30);
        let tight = req(Family::Realesrgan, 64 << 20, 0.0, 2 << 30);
        assert!(upscale_tile(&roomy) > upscale_tile(&tight));
        let plan = plan_media(&tight);
        assert!(plan.fits, "{plan:?}");
        assert!(
            plan.steps[1].stage.contains("tiles of"),
            "{}",
            plan.steps[1].stage
        );
        let asked = MediaPlanRequest {
            tile: Some(1024),
            ..tight
        };
        assert_eq!(upscale_tile(&asked), 1024);
        let plan = plan_media(&asked);
        assert!(!plan.fits);
        assert!(
            plan.suggestions.iter().any(|s| s.contains("--tile")),
            "{plan:?}"
        );
    }

    #[test]
    fn longer_music_needs_more_memory() {
        let short = plan_media(&req(Family::Musicgen, 2 << 30, 5.0, 64 << 30));
        let long = plan_media(&req(Family::Musicgen, 2 << 30, 60.0, 64 << 30));
        assert!(long.steps[1].total_bytes > short.steps[1].total_bytes);
        assert!(long.peak_bytes >= short.peak_bytes);
        assert!(short.fits);
        assert_eq!(short.batch, 1);
    }

    #[test]
    fn a_model_larger_than_the_budget_does_not_fit_and_says_what_helps() {
        let plan = plan_media(&req(Family::ParlerTts, 9 << 30, 30.0, 4 << 30));
        assert!(!plan.fits);
        assert!(plan.suggestions.iter().any(|s| s.contains("--dtype f16")));
        let err = plan.require_fit().unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
