//! What every audio and text job shares on the worker: its engine from the cache (loaded and
//! announced when missing), evicted when it panicked, and where the job starts (the outputs an
//! earlier attempt wrote, the memory plan checked again).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;

use crate::jobs::run::cache::{EngineCache, EngineKey};
use crate::jobs::run::config::{ModelInfo, RunnerConfig, WorkerDevice};
use crate::jobs::run::engine::{Engine, EngineLoad};
use crate::jobs::run::events::{JobEvent, JobId, Timings};
use crate::jobs::run::worker::{JobOutcome, Shared, Worker};
use crate::jobs::store::JobRecord;
use crate::models::planner::media::MediaWeights;
use crate::vocab::Residency;

/// Where a media model's engine lives in the cache.
pub(super) fn media_key(model: &ModelInfo, device: &WorkerDevice, dtype: DType) -> EngineKey {
    keyed(model, device, dtype, Residency::Resident)
}

fn keyed(
    model: &ModelInfo,
    device: &WorkerDevice,
    dtype: DType,
    residency: Residency,
) -> EngineKey {
    EngineKey {
        weights: vec![],
        no_t5: false,
        loras: vec![],
        model_dir: model.dir.clone(),
        device: device.name.clone(),
        dtype,
        residency,
    }
}

/// The engine for `model`, from the cache or loaded now (announced with a `loading` event).
pub(super) fn cached_engine<'c>(
    cache: &'c mut EngineCache<Engine>,
    shared: &Arc<Shared>,
    config: &RunnerConfig,
    job: JobId,
    model: &ModelInfo,
    dtype: DType,
    timings: &mut Timings,
) -> crate::Result<&'c mut Engine> {
    let at = (dtype, Residency::Resident, None);
    cached_engine_as(cache, shared, config, job, model, at, timings)
}

/// `cached_engine` with the residency the job's plan chose (video: staged when the components
/// do not fit together).
pub(super) fn cached_engine_as<'c>(
    cache: &'c mut EngineCache<Engine>,
    shared: &Arc<Shared>,
    config: &RunnerConfig,
    job: JobId,
    model: &ModelInfo,
    (dtype, residency, text_encoder_2): (DType, Residency, Option<&std::path::Path>),
    timings: &mut Timings,
) -> crate::Result<&'c mut Engine> {
    let device = &config.device;
    let switches = crate::engines::EngineSwitches::from_switches(&config.switches);
    let faults = config.switches.test_fault.as_deref();
    let mut key = keyed(model, device, dtype, residency);
    key.weights
        .extend(text_encoder_2.map(std::path::Path::to_path_buf));
    let started = Instant::now();
    let (engine, fresh) =
        cache.get_or_load(&key, MediaWeights::read(&model.dir, dtype).bytes, || {
            shared.emit(JobEvent::Loading {
                job,
                stage: model.family.to_string(),
            });
            crate::jobs::run::fault::point(faults, "load", job);
            Engine::load(&EngineLoad {
                family: model.family,
                path: &model.dir,
                device: &device.device,
                dtype,
                residency,
                switches,
                transformer: None,
                text_encoder_2,
                no_t5: false,
                loras: &[],
            })
        })?;
    if fresh {
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(model = %model.id, secs, "engine loaded");
        *timings.entry("load".into()).or_insert(0.0) += secs;
    }
    Ok(engine)
}

/// Drops a media engine that panicked, so the next job loads it afresh instead of reusing a
/// half-updated state (image engines are evicted the same way in `image`).
pub(super) fn evict_after_crash<T>(
    w: &mut Worker,
    result: crate::Result<T>,
    model_id: &str,
    dtype: DType,
) -> crate::Result<T> {
    if let Err(crate::Error::EngineCrashed { .. }) = &result
        && let Ok(model) = (w.config.models)(model_id)
    {
        let key = media_key(&model, &w.config.device, dtype);
        tracing::warn!(model = %model.id, "engine evicted after a crash");
        w.cache.evict(&key);
    }
    result
}

/// An audio or text job, run by `inner` with an engine that is evicted if it panics.
pub(super) fn run_evicting(
    w: &mut Worker,
    record: &JobRecord,
    inner: impl FnOnce(&mut Worker) -> crate::Result<JobOutcome>,
) -> crate::Result<JobOutcome> {
    let result = inner(w);
    match (w.config.device.dtype)(record.spec.dtype) {
        Ok(dtype) => evict_after_crash(w, result, &record.spec.model, dtype),
        Err(_) => result,
    }
}

/// Where a media job starts.
pub(super) enum Start {
    /// An earlier attempt wrote every output.
    Finished(JobOutcome),
    Run(MediaStart),
}

pub(super) struct MediaStart {
    pub model: ModelInfo,
    pub dtype: DType,
    /// Outputs an earlier attempt wrote (kept, never made twice).
    pub outputs: Vec<PathBuf>,
    /// How many of them are main outputs (`ext`).
    pub done: u32,
}

/// The job's model, its outputs so far (counting those ending in `ext`, its main output) and its
/// memory plan, checked again now that it runs.
pub(super) fn media_start(w: &Worker, record: &JobRecord, ext: &str) -> crate::Result<Start> {
    let spec = &record.spec;
    let model = (w.config.models)(&spec.model)?;
    let outputs: Vec<PathBuf> = record
        .outputs
        .iter()
        .filter(|p| p.is_file())
        .cloned()
        .collect();
    let done = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .count() as u32;
    if done >= spec.batch().max(1) {
        return Ok(Start::Finished(JobOutcome {
            outputs,
            ..JobOutcome::default()
        }));
    }
    let dtype = (w.config.device.dtype)(spec.dtype)?;
    // Video jobs plan their own stages (`planner.plan_video`, in the video job).
    if let Some(planner) = w
        .config
        .planner
        .as_ref()
        .filter(|_| !spec.kind.makes_video())
    {
        planner.plan_media(&model.dir, model.family, spec, dtype)?;
    }
    Ok(Start::Run(MediaStart {
        model,
        dtype,
        outputs,
        done,
    }))
}

pub(super) fn wrong_engine(model: &ModelInfo, engine: &Engine) -> crate::Error {
    crate::Error::bad_input(format!(
        "model `{}` loaded as a {} model, which cannot do this job",
        model.id,
        engine.family_name()
    ))
}
