//! Upscaling on the worker: a job of its own (`--kind upscale`), and the step that upscales each
//! image of an image job before it is written (`--upscale N`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;

use crate::engines::upscale::Upscaler;
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::jobs::run::engine::Engine;
use crate::jobs::run::events::Timings;
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};
use crate::jobs::spec::{JobSpec, Params};
use crate::jobs::store::JobRecord;

use super::KindJob;
use super::media_engine::{Start, cached_engine, media_start, run_evicting};

/// An image upscaled, written as PNG.
pub(super) struct UpscaleJob;

impl KindJob for UpscaleJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        run_evicting(w, record, |w| upscale_job(w, record, cancel, timings))
    }
}

/// The tile side for `spec` on the upscaler at `model`: the plan's, else the job's own.
fn tile_for(
    w: &Worker,
    model: &Path,
    spec: &JobSpec,
    dtype: DType,
    asked: Option<u32>,
) -> Option<u32> {
    match &w.config.planner {
        Some(planner) => Some(planner.upscale_tile(model, spec, dtype)),
        None => asked,
    }
}

/// The network must make the scale the job records.
fn check_scale(up: &Upscaler, scale: u32, model: &str) -> crate::Result<()> {
    if up.scale() == scale {
        return Ok(());
    }
    Err(crate::Error::bad_input(format!(
        "model `{model}` is a {}, not a x{scale} upscaler; use a x{scale} model or --scale {}",
        up.arch().describe(),
        up.scale()
    )))
}

/// Runs `up` on `image`, a panic inside turned into a failed job.
pub(super) fn run_upscaler(
    up: &Upscaler,
    image: &image::DynamicImage,
    tile: Option<u32>,
    sink: &dyn ProgressSink,
    cancel: &CancelToken,
) -> crate::Result<image::DynamicImage> {
    catch_unwind(AssertUnwindSafe(|| up.upscale(image, tile, sink, cancel)))
        .unwrap_or_else(|panic| Err(engine_crash(panic)))
}

fn upscale_job(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobOutcome> {
    let (id, spec) = (record.id, &record.spec);
    let Params::Upscale(p) = &spec.params else {
        return Err(crate::Error::bad_input(
            "an upscale job without its parameters",
        ));
    };
    let start = match media_start(w, record, "png")? {
        Start::Finished(outcome) => return Ok(outcome),
        Start::Run(start) => start,
    };
    let mut outputs = start.outputs;
    let tile = tile_for(w, &start.model.dir, spec, start.dtype, p.tile);
    let image = crate::jobs::spec::resolve::load_image(&p.image, "--image")?;
    let engine = cached_engine(
        &mut w.cache,
        &w.shared,
        &w.config,
        id,
        &start.model,
        start.dtype,
        timings,
    )?;
    let family = engine.family_name();
    let Engine::Upscaler(up) = engine else {
        return Err(crate::Error::bad_input(format!(
            "model `{}` is a {family} model, not an upscaler",
            start.model.id
        )));
    };
    check_scale(up, p.scale, &start.model.id)?;
    if cancel.is_cancelled() {
        return Err(crate::Error::Cancelled);
    }
    let shared = Arc::clone(&w.shared);
    let sink = move |event: EngineEvent| shared.emit(to_job_event(id, event));
    let started = Instant::now();
    let out = run_upscaler(up, &image, tile, &sink, cancel)?;
    timings.insert("upscale".into(), started.elapsed().as_secs_f64());
    let write_started = Instant::now();
    let path = w
        .writer
        .write_image_png(&out, spec, |target| {
            Ok(w.shared.lock().store_mut().set_pending_output(id, target)?)
        })
        .map_err(crate::Error::on_output_write)?;
    w.shared.lock().store_mut().record_output(id, &path)?;
    tracing::info!(path = %path.display(), "output written");
    timings.insert("write".into(), write_started.elapsed().as_secs_f64());
    outputs.push(path);
    Ok(JobOutcome {
        outputs,
        ..JobOutcome::default()
    })
}

/// The upscaler of an image job's `--upscale N` step (loaded beside the image engine, outside
/// the cache, for this job), with its tile side.
pub(super) struct UpscaleStepEngine {
    pub upscaler: Upscaler,
    pub tile: Option<u32>,
}

pub(super) fn load_step(
    w: &Worker,
    spec: &JobSpec,
    dtype: DType,
    timings: &mut Timings,
) -> crate::Result<Option<UpscaleStepEngine>> {
    let Some(step) = spec.image().and_then(|p| p.upscale.as_ref()) else {
        return Ok(None);
    };
    let model = (w.config.models)(&step.model)?;
    let started = Instant::now();
    let switches = crate::engines::EngineSwitches::from_switches(&w.config.switches);
    let upscaler = Upscaler::load(&model.dir, &w.config.device.device, dtype, switches)?;
    check_scale(&upscaler, step.scale, &model.id)?;
    *timings.entry("load".into()).or_insert(0.0) += started.elapsed().as_secs_f64();
    Ok(Some(UpscaleStepEngine {
        tile: tile_for(w, &model.dir, spec, dtype, step.tile),
        upscaler,
    }))
}
