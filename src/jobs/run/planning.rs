//! The memory plan of a queued job: checked when the job is submitted (a job that cannot fit is
//! refused before anything is queued, exit 2) and again just before its engine loads (memory may
//! have changed meanwhile), where the plan also picks residency, attention slicing, VAE tiling and
//! how many images run at once.

use std::path::Path;
use std::sync::Arc;

use candle_core::DType;

use crate::Result;
use crate::device::SelectedDevice;
use crate::engines::sd::GenerateRequest;
use crate::models::planner::{self, MemoryPlan, Overrides, PlanRequest};
use crate::platform::PlatformInfo;
use crate::vocab::{AttentionSlicing, ResidencyChoice, Toggle};

/// What `loras` add to the plan of a job in `dtype` on a device with `memory`; `gguf`: the
/// transformer is a GGUF, whose LoRA'd layers carry side branches (`flux::transformer::lora_gguf`).
/// The factors stay in host memory (the engine merges them again when a component reloads),
/// which the budget counts on the CPU and unified memory; each merge holds one change and the
/// merged weight in f32.
pub fn lora_bytes(
    loras: &[crate::engines::nn::lora::LoraSpec],
    gguf: bool,
    dtype: DType,
    memory: &crate::device::DeviceMemory,
) -> Result<planner::LoraBytes> {
    if loras.is_empty() {
        return Ok(planner::LoraBytes::default());
    }
    let (factors, largest) = crate::engines::nn::lora::footprint(loras)?;
    let side_branches = if gguf {
        factors / 4 * dtype.size_in_bytes() as u64
    } else {
        0
    };
    let host = match memory {
        crate::device::DeviceMemory::Discrete { .. } => 0,
        _ => factors,
    };
    Ok(planner::LoraBytes {
        resident_bytes: side_branches + host,
        merge_bytes: 2 * largest,
    })
}

/// The LoRA bytes of an image job's params (FLUX: side branches when its transformer is a
/// GGUF, the job's own or the model's quantized variant's).
pub fn image_lora_bytes(
    p: &crate::jobs::spec::ImageParams,
    replaced: &crate::models::quant::ReplacedWeights,
    dtype: DType,
    memory: &crate::device::DeviceMemory,
) -> Result<planner::LoraBytes> {
    let loras: Vec<_> = p.loras.iter().map(|l| l.to_engine()).collect();
    let gguf = flux_job(p, replaced)
        .transformer
        .is_some_and(|t| crate::jobs::spec::lora::is_gguf(&t));
    lora_bytes(&loras, gguf, dtype, memory)
}

/// The values a job pins parts of its plan to (auto: the planner's choice).
pub fn overrides_from_flags(
    attention_slicing: Option<AttentionSlicing>,
    vae_tiling: Option<Toggle>,
    residency: Option<ResidencyChoice>,
) -> Overrides {
    Overrides {
        residency: residency.and_then(ResidencyChoice::forced),
        attention_slice: attention_slicing.and_then(AttentionSlicing::forced),
        vae_tiling: vae_tiling.and_then(Toggle::forced),
    }
}

/// The planner's view of an audio or text job, for the runner and the TUI's live plan alike.
/// Transcription reads its audio in 30 s windows; speech and music grow with their length
/// (`seconds`, 0 for text jobs; `batch` outputs).
pub fn media_request(
    path: &Path,
    family: crate::models::Family,
    (seconds, batch): (f64, u32),
    dtype: DType,
    selected: &SelectedDevice,
    platform: &PlatformInfo,
    budget_cap: Option<u64>,
) -> planner::media::MediaPlanRequest {
    let weights = planner::media::MediaWeights::read(path, dtype);
    planner::media::MediaPlanRequest {
        family,
        weights_bytes: weights.bytes,
        largest_tensor_bytes: weights.largest_tensor_bytes,
        seconds,
        batch,
        dtype,
        device: selected.kind,
        memory: crate::device::memory::query(selected, platform),
        budget_cap,
        tile: None,
    }
}

/// The tile an upscale job or step asks for.
fn asked_tile(spec: &crate::jobs::JobSpec) -> Option<u32> {
    match &spec.params {
        crate::jobs::spec::Params::Upscale(p) => p.tile,
        crate::jobs::spec::Params::Image(p) => p.upscale.as_ref().and_then(|u| u.tile),
        _ => None,
    }
}

/// Plans jobs for one device against its memory right now, capped by `--memory-budget`.
pub struct JobPlanner {
    selected: Arc<SelectedDevice>,
    platform: Arc<PlatformInfo>,
    budget_cap: Option<u64>,
    /// The engine runs candle's stock layers (`Switches::stock_kernels`).
    stock_kernels: bool,
}

impl JobPlanner {
    pub fn new(
        selected: Arc<SelectedDevice>,
        platform: Arc<PlatformInfo>,
        budget_cap: Option<u64>,
        stock_kernels: bool,
    ) -> Self {
        Self {
            selected,
            platform,
            budget_cap,
            stock_kernels,
        }
    }

    /// The cheapest plan that fits, or `BadInput` saying needed vs available and what would fit.
    pub fn plan(
        &self,
        model_dir: &Path,
        spec: &crate::jobs::JobSpec,
        request: &GenerateRequest,
        dtype: DType,
        model: (
            crate::models::Family,
            &crate::models::quant::ReplacedWeights,
        ),
    ) -> Result<MemoryPlan> {
        let pinned = spec.image().map_or_else(Overrides::default, |p| {
            overrides_from_flags(p.attention_slicing, p.vae_tiling, p.residency)
        });
        let memory = crate::device::memory::query(&self.selected, &self.platform);
        let lora = match spec.image() {
            Some(p) => image_lora_bytes(p, model.1, dtype, &memory)?,
            None => planner::LoraBytes::default(),
        };
        let plan_request = PlanRequest {
            width: request.width,
            height: request.height,
            batch: request.batch,
            guided: request.guidance > 1.0,
            img2img: request.init_image.is_some(),
            dtype,
            device: self.selected.kind,
            memory,
            budget_cap: self.budget_cap,
            overrides: pinned,
            stock_kernels: self.stock_kernels,
            lora,
        };
        let plan = plan_image_folder(
            model.0,
            model_dir,
            dtype != DType::F32,
            &plan_request,
            spec.image().map(|p| (p, model.1)),
        )?;
        tracing::info!(
            peak = plan.peak_bytes,
            budget = plan.budget_bytes,
            fits = plan.fits,
            residency = ?plan.residency,
            attention_slice = ?plan.attention_slice,
            vae_tiling = plan.vae_tiling,
            batch = plan.batch,
            "memory plan"
        );
        plan.require_fit()?;
        Ok(plan)
    }

    fn upscale_aware_request(
        &self,
        path: &Path,
        family: crate::models::Family,
        spec: &crate::jobs::JobSpec,
        dtype: DType,
    ) -> planner::media::MediaPlanRequest {
        let mut req = media_request(
            path,
            family,
            (spec.duration().unwrap_or(0.0), spec.batch()),
            dtype,
            &self.selected,
            &self.platform,
            self.budget_cap,
        );
        req.tile = asked_tile(spec);
        req
    }

    /// The plan of a video job on the video folder at `dir` of `family`: resident or staged,
    /// the decode tiled or not; `BadInput` when nothing fits.
    pub fn plan_video(
        &self,
        (dir, family): (&Path, crate::models::Family),
        spec: &crate::jobs::JobSpec,
        dtype: DType,
    ) -> Result<MemoryPlan> {
        let Some(p) = spec.video() else {
            return Err(crate::Error::bad_input(
                "a video plan for a job that is not video",
            ));
        };
        let plan = video_plan(
            (dir, family),
            p,
            dtype,
            planner::video::VideoDevice {
                device: self.selected.kind,
                memory: crate::device::memory::query(&self.selected, &self.platform),
                budget_cap: self.budget_cap,
                overrides: overrides_from_flags(None, p.vae_tiling, p.residency),
            },
        )?;
        tracing::info!(
            peak = plan.peak_bytes,
            budget = plan.budget_bytes,
            fits = plan.fits,
            residency = ?plan.residency,
            vae_tiling = plan.vae_tiling,
            "memory plan"
        );
        plan.require_fit()?;
        Ok(plan)
    }

    /// The tile side an upscaler runs `spec` with (the model at `path`): `--tile`, else the
    /// largest the memory allows.
    pub fn upscale_tile(&self, path: &Path, spec: &crate::jobs::JobSpec, dtype: DType) -> u32 {
        let req = self.upscale_aware_request(path, crate::models::Family::Realesrgan, spec, dtype);
        planner::media::upscale_tile(&req)
    }

    /// The plan of an audio or text job on the model at `path` (a folder or a .gguf file).
    pub fn plan_media(
        &self,
        path: &Path,
        family: crate::models::Family,
        spec: &crate::jobs::JobSpec,
        dtype: DType,
    ) -> Result<MemoryPlan> {
        let plan =
            planner::media::plan_media(&self.upscale_aware_request(path, family, spec, dtype));
        tracing::info!(
            peak = plan.peak_bytes,
            budget = plan.budget_bytes,
            fits = plan.fits,
            family = %family,
            "memory plan"
        );
        plan.require_fit()?;
        Ok(plan)
    }
}

/// The plan of a video job with parameters `p` on the video folder at `dir` of `family`.
pub fn video_plan(
    (dir, family): (&Path, crate::models::Family),
    p: &crate::jobs::spec::VideoParams,
    dtype: DType,
    on: planner::video::VideoDevice,
) -> Result<MemoryPlan> {
    let shape = planner::video::VideoJobShape {
        frames: p.frames,
        width: p.width,
        height: p.height,
        guided: p.guidance > 1.0,
        max_sequence_length: p.max_sequence_length,
        image: p.init_image.is_some(),
    };
    let mut req = planner::video::VideoPlanRequest::read((dir, family), dtype, shape, on)?;
    // A GGUF encoder stays quantized: its file's size.
    if let Some(gguf) = &p.text_encoder_2 {
        req.text_encoder_bytes = std::fs::metadata(gguf).map_or(0, |m| m.len());
    }
    Ok(planner::video::plan_video(&req))
}

/// The plan of an image job on a diffusers folder: the family's planner (FLUX and Z-Image with
/// the job's replacement weights, `params` with the model's quantized variant; the UNet
/// families' otherwise).
pub fn plan_image_folder(
    family: crate::models::Family,
    dir: &Path,
    fp16_variant: bool,
    request: &PlanRequest,
    params: Option<(
        &crate::jobs::spec::ImageParams,
        &crate::models::quant::ReplacedWeights,
    )>,
) -> Result<MemoryPlan> {
    use crate::models::Family;
    match (family, params) {
        (Family::Flux | Family::Sd3, Some((p, replaced))) => {
            planner::plan_flux_folder(dir, fp16_variant, request, &flux_job(p, replaced))
        }
        // Z-Image guides (two items a pass) for any scale above 0.
        (Family::ZImage, Some((p, replaced))) => planner::plan_zimage_folder(
            dir,
            fp16_variant,
            &PlanRequest {
                guided: p.guidance > 0.0,
                ..request.clone()
            },
            &planner::zimage::ZImageJob {
                max_sequence_length: p.max_sequence_length.unwrap_or(512),
                transformer: p
                    .transformer
                    .clone()
                    .or_else(|| replaced.transformer.clone()),
                text_encoder: p
                    .text_encoder_2
                    .clone()
                    .or_else(|| replaced.text_encoder_2.clone()),
            },
        ),
        _ => {
            let controlnets: Vec<_> = params
                .map(|(p, _)| p.controlnets.iter().map(|c| c.model.clone()).collect())
                .unwrap_or_default();
            planner::plan_folder_with(dir, fp16_variant, request, &controlnets)
        }
    }
}

/// A FLUX job's plan inputs: its T5 length and the weights files it loads (the job's own, else
/// the model's quantized variant).
pub fn flux_job(
    p: &crate::jobs::spec::ImageParams,
    replaced: &crate::models::quant::ReplacedWeights,
) -> planner::flux::FluxJob {
    planner::flux::FluxJob {
        max_sequence_length: p.max_sequence_length.unwrap_or(512),
        transformer: p
            .transformer
            .clone()
            .or_else(|| replaced.transformer.clone()),
        text_encoder_2: p
            .text_encoder_2
            .clone()
            .or_else(|| replaced.text_encoder_2.clone()),
        no_t5: p.no_t5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Residency;

    #[test]
    fn flags_pin_the_plan() {
        let o = overrides_from_flags(
            Some(AttentionSlicing::Tokens(256)),
            Some(Toggle::On),
            Some(ResidencyChoice::Staged),
        );
        assert_eq!(o.attention_slice, Some(Some(256)));
        assert_eq!(o.vae_tiling, Some(true));
        assert_eq!(o.residency, Some(Residency::Staged));
        let auto = overrides_from_flags(Some(AttentionSlicing::Auto), Some(Toggle::Auto), None);
        assert_eq!(auto, Overrides::default());
        let off = overrides_from_flags(Some(AttentionSlicing::Off), None, None);
        assert_eq!(off.attention_slice, Some(None));
    }

    #[test]
    fn loras_count_their_factors_merges_and_side_branches() {
        use crate::device::DeviceMemory;
        use crate::engines::nn::lora::LoraSpec;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/loras/sd1-kohya.safetensors");
        let size = std::fs::metadata(&path).unwrap().len();
        let loras = [LoraSpec { path, weight: 1.0 }];
        let (factors, largest) = crate::engines::nn::lora::footprint(&loras).unwrap();
        // The fixture is f32: its factors are its size less the header and the alphas.
        assert!(factors <= size && factors > size / 2, "{factors} of {size}");
        let cpu = DeviceMemory::System {
            total: 1 << 34,
            available: 1 << 33,
        };
        let gpu = DeviceMemory::Discrete {
            total: 1 << 34,
            free: 1 << 33,
        };
        let merged = lora_bytes(&loras, false, DType::F16, &cpu).unwrap();
        assert_eq!(merged.resident_bytes, factors);
        assert_eq!(merged.merge_bytes, 2 * largest);
        assert!(largest > 0);
        assert_eq!(
            lora_bytes(&loras, false, DType::F16, &gpu)
                .unwrap()
                .resident_bytes,
            0
        );
        let branches = lora_bytes(&loras, true, DType::F16, &gpu).unwrap();
        assert_eq!(
            branches.resident_bytes,
            factors / 2,
            "f16 side branches on the GPU"
        );
        assert!(lora_bytes(&[], true, DType::F16, &cpu).unwrap().is_empty());
    }
}
