//! Text on the worker: image captions (BLIP) and enhanced prompts (a GGUF instruct model), as a
//! job of their own or, for an image job that asks, ahead of its images.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;

use crate::engines::text::blip::CaptionOptions;
use crate::engines::text::enhance::EnhanceOptions;
use crate::engines::{CancelToken, EngineEvent};
use crate::jobs::output::media::MediaWriter;
use crate::jobs::run::engine::Engine;
use crate::jobs::run::events::{JobEvent, Timings};
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};
use crate::jobs::spec::media::DEFAULT_ENHANCER;
use crate::jobs::spec::{EnhanceParams, JobSpec, Params};
use crate::jobs::store::JobRecord;
use crate::vocab::JobKind;

use super::KindJob;
use super::media_engine::{Start, cached_engine, evict_after_crash, media_start, run_evicting};

/// Sampling settings of the prompt enhancer (seeded, so a stored job re-runs the same).
const ENHANCE_TEMPERATURE: f64 = 0.7;
const ENHANCE_TOP_P: f64 = 0.9;

/// A caption or an enhanced prompt, written as `.txt`.
pub(super) struct TextJob;

impl KindJob for TextJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        run_evicting(w, record, |w| write_text(w, record, cancel, timings))
    }
}

fn write_text(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobOutcome> {
    let (id, spec) = (record.id, &record.spec);
    let start = match media_start(w, record, "txt")? {
        Start::Finished(outcome) => return Ok(outcome),
        Start::Run(start) => start,
    };
    let mut outputs = start.outputs;
    let engine = cached_engine(
        &mut w.cache,
        &w.shared,
        &w.config,
        id,
        &start.model,
        start.dtype,
        timings,
    )?;
    if cancel.is_cancelled() {
        return Err(crate::Error::Cancelled);
    }
    let shared = Arc::clone(&w.shared);
    let sink = move |event: EngineEvent| shared.emit(to_job_event(id, event));
    let out = MediaWriter {
        writer: &w.writer,
        shared: &w.shared,
        job: id,
    };
    let started = Instant::now();
    let text = run_text(engine, spec, &sink, cancel)?;
    outputs.extend(
        out.text(&text, spec)
            .map_err(crate::Error::on_output_write)?,
    );
    timings.insert("generate".into(), started.elapsed().as_secs_f64());
    Ok(JobOutcome {
        outputs,
        text: Some(text),
        duration_s: None,
    })
}

/// The text model an image job's prompt is enhanced with.
fn enhancer_of(spec: &JobSpec) -> String {
    spec.image()
        .and_then(|p| p.enhance.as_ref())
        .map_or_else(|| DEFAULT_ENHANCER.to_owned(), |e| e.enhancer.clone())
}

/// Rewrites an image job's prompt with the enhancer and records the new spec (so --resume keeps
/// the same prompt); returns the spec to generate with.
pub(super) fn enhance_spec(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobSpec> {
    let enhancer = enhancer_of(&record.spec);
    let result = enhance_spec_inner(w, record, cancel, timings);
    evict_after_crash(w, result, &enhancer, DType::F32)
}

fn enhance_spec_inner(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobSpec> {
    let id = record.id;
    let mut spec = record.spec.clone();
    let model = (w.config.models)(&enhancer_of(&spec))?;
    let engine = cached_engine(
        &mut w.cache,
        &w.shared,
        &w.config,
        id,
        &model,
        DType::F32,
        timings,
    )?;
    w.shared.emit(JobEvent::Loading {
        job: id,
        stage: "enhance".into(),
    });
    let shared = Arc::clone(&w.shared);
    let sink = move |event: EngineEvent| shared.emit(to_job_event(id, event));
    let started = Instant::now();
    let max_tokens = spec
        .image()
        .and_then(|p| p.enhance.as_ref())
        .and_then(|e| e.max_tokens)
        .unwrap_or(200);
    let ask = JobSpec {
        kind: JobKind::Enhance,
        params: Params::Enhance(EnhanceParams { max_tokens }),
        ..spec.clone()
    };
    let enhanced = run_text(engine, &ask, &sink, cancel)?;
    timings.insert("enhance".into(), started.elapsed().as_secs_f64());
    tracing::info!(idea = %spec.prompt, prompt = %enhanced, "prompt enhanced");
    let idea = std::mem::replace(&mut spec.prompt, enhanced);
    if let Some(e) = spec.image_mut().and_then(|p| p.enhance.as_mut()) {
        e.from = Some(idea);
    }
    w.shared.lock().store_mut().update_spec(id, &spec)?;
    Ok(spec)
}

fn run_text(
    engine: &mut Engine,
    spec: &JobSpec,
    sink: &(dyn Fn(EngineEvent) + Send + Sync),
    cancel: &CancelToken,
) -> crate::Result<String> {
    let result = catch_unwind(AssertUnwindSafe(|| match (&spec.params, &*engine) {
        (Params::Caption(p), Engine::Blip(blip)) => {
            let image = crate::jobs::spec::resolve::load_image(&p.image, "--caption")?;
            let prefix = Some(spec.prompt.trim().to_owned()).filter(|p| !p.is_empty());
            let max_tokens = p.max_tokens;
            blip.caption(
                &image,
                &CaptionOptions { max_tokens, prefix },
                &sink,
                cancel,
            )
        }
        (Params::Enhance(p), Engine::Enhancer(enhancer)) => {
            let opts = EnhanceOptions {
                max_tokens: p.max_tokens,
                seed: spec.seed.unwrap_or(0),
                temperature: ENHANCE_TEMPERATURE,
                top_p: ENHANCE_TOP_P,
            };
            enhancer.enhance(&spec.prompt, &opts, &sink, cancel)
        }
        (_, other) => Err(crate::Error::bad_input(format!(
            "a {} model cannot do {} jobs",
            other.family_name(),
            spec.kind.as_str()
        ))),
    }));
    let text = result.unwrap_or_else(|panic| Err(engine_crash(panic)))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(crate::Error::job_failed(
            "the model produced no text (it stopped at once); try another seed or model",
        ));
    }
    Ok(text)
}
