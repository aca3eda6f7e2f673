//! `--plan`: the memory plan of the job the flags describe, printed without running it.

use std::io::IsTerminal;

use crate::cli::{GlobalArgs, JobArgs};
use crate::device::memory::{format_bytes, parse_memory_budget};
use crate::device::{DeviceRequest, dtype::resolve_dtype};
use crate::jobs::spec::JobOverrides;
use crate::models::planner::{self, MemoryPlan, ModelFootprint, Overrides, PlanRequest};
use crate::models::{Registry, resolve};
use crate::platform::PlatformInfo;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::{Error, Result};

/// `--residency`, `--attention-slicing` and `--vae-tiling` as planner overrides (auto: planner's choice).
pub fn overrides_from_args(job: &JobOverrides) -> Overrides {
    crate::jobs::run::planning::overrides_from_flags(
        job.attention_slicing,
        job.vae_tiling,
        job.residency,
    )
}

/// The plan for the job the flags describe (model resolved offline-safe: nothing is downloaded).
pub fn plan_for_args(
    global: &GlobalArgs,
    switches: &Switches,
    args: &JobArgs,
) -> Result<MemoryPlan> {
    let job = &args.job;
    let model = job
        .model
        .as_deref()
        .ok_or_else(|| Error::bad_input("--plan needs --model ID|DIR (see `pallaidium models`)"))?;
    let registry = Registry::load(global.models_file.as_deref())?;
    let paths = Paths::resolve(global.out.as_deref(), switches)?;
    let resolved = resolve(&registry, model, &paths.hf_cache)?;
    crate::jobs::spec::model_check::check_model_configs(&resolved.dir, resolved.family)?;
    let platform = PlatformInfo::detect();
    let device = crate::device::select(&DeviceRequest::parse(&global.device)?, switches)?;
    let dtype = resolve_dtype(global.dtype, &device, &platform)?;
    let memory = crate::device::memory::query(&device, &platform);
    if resolved.family.is_video() {
        let kind =
            crate::jobs::spec::media::settle_kind(job.kind_asked(), &resolved.id, resolved.kind)?;
        let geometry =
            crate::jobs::spec::video::VideoGeometry::read(resolved.family, &resolved.dir)?;
        let spec = crate::jobs::spec::video::fill_video_spec(
            job,
            kind,
            (resolved.kind, geometry),
            &resolved.defaults,
        )?;
        let Some(p) = spec.video() else {
            return Err(Error::bad_input("a video plan for a job that is not video"));
        };
        return crate::jobs::run::planning::video_plan(
            (&resolved.dir, resolved.family),
            p,
            dtype,
            planner::video::VideoDevice {
                device: device.kind,
                memory,
                budget_cap: parse_memory_budget(global.memory_budget.as_deref())?,
                overrides: overrides_from_args(job),
            },
        );
    }
    let Some(layout) = &resolved.layout else {
        // Audio and text models: the runner's own media plan for the job the flags describe.
        let kind =
            crate::jobs::spec::media::settle_kind(job.kind_asked(), &resolved.id, resolved.kind)?;
        let seconds = if kind.makes_audio() {
            job.duration.or(resolved.defaults.duration).unwrap_or(10.0)
        } else {
            0.0
        };
        let mut request = crate::jobs::run::planning::media_request(
            &resolved.dir,
            resolved.family,
            (seconds, job.batch.unwrap_or(1)),
            dtype,
            &device,
            &platform,
            parse_memory_budget(global.memory_budget.as_deref())?,
        );
        // An upscaler's working memory is its tile's.
        request.tile = job.tile;
        return Ok(planner::media::plan_media(&request));
    };
    // The size the job will run at: from the init image when no --width/--height is given.
    let size = crate::jobs::spec::resolve::job_size(
        job.init_image.as_deref(),
        job.width,
        job.height,
        &resolved.defaults,
    )?;
    let (width, height) = (size.width, size.height);
    let scale = layout.vae_scale_factor.max(1);
    if !width.is_multiple_of(scale) || !height.is_multiple_of(scale) {
        return Err(Error::bad_input(format!(
            "--width {width} --height {height}: both must be multiples of {scale}"
        )));
    }
    // The LoRAs' memory: their files read as the job would read them.
    let loras: Vec<_> = crate::jobs::spec::lora::fill(
        job.lora.as_deref(),
        resolved.family,
        job.transformer.as_deref(),
    )?
    .iter()
    .map(|l| l.to_engine())
    .collect();
    let gguf = job
        .transformer
        .as_deref()
        .or(resolved.weights.transformer.as_deref())
        .is_some_and(crate::jobs::spec::lora::is_gguf);
    let lora = crate::jobs::run::planning::lora_bytes(&loras, gguf, dtype, &memory)?;
    let req = PlanRequest {
        width,
        height,
        batch: job.batch.unwrap_or(1).max(1),
        guided: job.guidance.unwrap_or(resolved.defaults.guidance) > 1.0,
        img2img: job.init_image.is_some(),
        dtype,
        device: device.kind,
        memory,
        budget_cap: parse_memory_budget(global.memory_budget.as_deref())?,
        overrides: overrides_from_args(job),
        stock_kernels: switches.stock_kernels,
        lora,
    };
    let fp16_variant = matches!(dtype, candle_core::DType::F16 | candle_core::DType::BF16);
    let mut plan = if resolved.family.is_flow() {
        // The flags flow models alone take, checked as a job's are (GGUF headers included).
        let flow = crate::jobs::spec::flow::fill(
            job,
            job.kind_asked(),
            &resolved.defaults,
            resolved.family,
        )?;
        let params = crate::jobs::spec::ImageParams {
            guidance: job.guidance.unwrap_or(resolved.defaults.guidance),
            max_sequence_length: flow.max_sequence_length,
            transformer: flow.transformer,
            text_encoder_2: flow.text_encoder_2,
            no_t5: flow.no_t5,
            ..crate::jobs::spec::ImageParams::default()
        };
        crate::jobs::run::planning::plan_image_folder(
            resolved.family,
            &resolved.dir,
            fp16_variant,
            &req,
            Some((&params, &resolved.weights)),
        )?
    } else {
        let footprint = ModelFootprint::read(&resolved.dir, fp16_variant)?;
        planner::plan(&footprint, &req)
    };
    plan.warnings = size.notes;
    Ok(plan)
}

/// A plan for people: one line per stage, then the decision.
pub fn human(plan: &MemoryPlan) -> String {
    let mut out = String::new();
    for s in &plan.steps {
        out.push_str(&format!(
            "  {:<22} weights {:>10}  working {:>10}  total {:>10}\n",
            s.stage,
            format_bytes(s.weights_bytes),
            format_bytes(s.working_bytes),
            format_bytes(s.total_bytes)
        ));
    }
    out.push_str(&format!(
        "peak {} ({}) of {} budget: {}; {:?}, attention slice {}, VAE tiling {}, {} of {} images per pass, {}\n",
        format_bytes(plan.peak_bytes),
        plan.breakdown.peak_stage,
        format_bytes(plan.budget_bytes),
        if plan.fits { "fits" } else { "does not fit" },
        plan.residency,
        plan.attention_slice.map_or_else(|| "auto".to_owned(), |n| n.to_string()),
        if plan.vae_tiling { "on" } else { "off" },
        plan.batch,
        plan.requested_batch,
        plan.dtype
    ));
    let lora = &plan.breakdown.lora;
    if !lora.is_empty() {
        out.push_str(&format!(
            "LoRAs: {} held in every stage (their factors; side branches on a GGUF), {} more \
             while a weight is merged at load\n",
            format_bytes(lora.resident_bytes),
            format_bytes(lora.merge_bytes)
        ));
    }
    out
}

/// Entry point for `--plan`: prints the plan; exit 0 when it fits, 2 (with the reason) when not.
pub fn run(global: &GlobalArgs, switches: &Switches, job: &JobArgs) -> anyhow::Result<i32> {
    let plan = plan_for_args(global, switches, job)?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    if job.json || !std::io::stdout().is_terminal() {
        println!("{}", serde_json::to_string(&plan)?);
    } else {
        print!("{}", human(&plan));
    }
    match plan.require_fit() {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(e.exit_code())
        }
    }
}
