//! Audio and text jobs on the worker: speech, music, transcripts, captions and enhanced prompts.
//! Each clip or text is written (with its JSON sidecar) and recorded before the next starts, so
//! `--resume` never makes one twice; the prompt enhancer also runs here ahead of image jobs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;

use crate::engines::audio::decode::read_audio;
use crate::engines::audio::parler::SpeechOptions;
use crate::engines::media::AudioClip;
use crate::engines::text::blip::CaptionOptions;
use crate::engines::text::enhance::EnhanceOptions;
use crate::engines::text::whisper::TranscribeOptions;
use crate::engines::{CancelToken, EngineEvent};
use crate::vocab::{JobKind, Residency};

use crate::jobs::output::media::{MediaWriter, check_clip};
use crate::jobs::run::cache::{EngineCache, EngineKey};
use crate::jobs::run::config::{ModelInfo, RunnerConfig, WorkerDevice};
use crate::jobs::run::engine::{Engine, EngineLoad};
use crate::jobs::run::events::{JobEvent, JobId, Timings};
use crate::jobs::run::worker::{JobOutcome, Shared, Worker, engine_crash, to_job_event};
use crate::jobs::spec::media::DEFAULT_ENHANCER;
use crate::jobs::spec::{EnhanceParams, JobSpec, Params};
use crate::jobs::store::JobRecord;
use crate::models::planner::media::MediaWeights;

/// Sampling settings of the prompt enhancer (seeded, so a stored job re-runs the same).
const ENHANCE_TEMPERATURE: f64 = 0.7;
const ENHANCE_TOP_P: f64 = 0.9;

/// The extension of a kind's main output (the one counted for --resume).
fn main_ext(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Tts | JobKind::Music => "wav",
        JobKind::Stt => "srt",
        _ => "txt",
    }
}

/// Where a media model's engine lives in the cache.
fn media_key(model: &ModelInfo, device: &WorkerDevice, dtype: DType) -> EngineKey {
    EngineKey {
        model_dir: model.dir.clone(),
        device: device.name.clone(),
        dtype,
        residency: Residency::Resident,
    }
}

/// The engine for `model`, from the cache or loaded now (announced with a `loading` event).
fn cached_engine<'c>(
    cache: &'c mut EngineCache<Engine>,
    shared: &Arc<Shared>,
    config: &RunnerConfig,
    job: JobId,
    model: &ModelInfo,
    dtype: DType,
    timings: &mut Timings,
) -> crate::Result<&'c mut Engine> {
    let device = &config.device;
    let switches = crate::engines::EngineSwitches::from_switches(&config.switches);
    let faults = config.switches.test_fault.as_deref();
    let key = media_key(model, device, dtype);
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
                residency: Residency::Resident,
                switches,
            })
        })?;
    if fresh {
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(model = %model.id, secs, "engine loaded");
        *timings.entry("load".into()).or_insert(0.0) += secs;
    }
    Ok(engine)
}

impl Worker {
    /// Drops a media engine that panicked, so the next job loads it afresh instead of reusing
    /// a half-updated state (image engines are evicted the same way in image_job).
    fn evict_after_crash<T>(
        &mut self,
        result: crate::Result<T>,
        model_id: &str,
        dtype: DType,
    ) -> crate::Result<T> {
        if let Err(crate::Error::EngineCrashed { .. }) = &result
            && let Ok(model) = (self.config.models)(model_id)
        {
            let key = media_key(&model, &self.config.device, dtype);
            tracing::warn!(model = %model.id, "engine evicted after a crash");
            self.cache.evict(&key);
        }
        result
    }

    pub(super) fn run_media(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        let result = self.run_media_inner(record, cancel, timings);
        match (self.config.device.dtype)(record.spec.dtype) {
            Ok(dtype) => self.evict_after_crash(result, &record.spec.model, dtype),
            Err(_) => result,
        }
    }

    fn run_media_inner(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        let id = record.id;
        let spec = &record.spec;
        let model = (self.config.models)(&spec.model)?;
        let ext = main_ext(spec.kind);
        let mut outputs: Vec<PathBuf> = record
            .outputs
            .iter()
            .filter(|p| p.is_file())
            .cloned()
            .collect();
        let done = outputs
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .count() as u32;
        let batch = spec.batch().max(1);
        if done >= batch {
            return Ok(JobOutcome {
                outputs,
                ..JobOutcome::default()
            });
        }
        let dtype = (self.config.device.dtype)(spec.dtype)?;
        if let Some(planner) = &self.config.planner {
            planner.plan_media(&model.dir, model.family, spec, dtype)?;
        }
        let engine = cached_engine(
            &mut self.cache,
            &self.shared,
            &self.config,
            id,
            &model,
            dtype,
            timings,
        )?;
        if cancel.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        let shared = Arc::clone(&self.shared);
        let sink = move |event: EngineEvent| shared.emit(to_job_event(id, event));
        let out = MediaWriter {
            writer: &self.writer,
            shared: &self.shared,
            job: id,
        };
        let started = Instant::now();
        let mut outcome = JobOutcome::default();
        match &spec.params {
            Params::Speech(_) | Params::Music(_) => {
                let mut total = 0.0;
                for i in done..batch {
                    let mut clip_spec = spec.clone();
                    clip_spec.seed = Some(spec.seed.unwrap_or(0).wrapping_add(u64::from(i)));
                    match &mut clip_spec.params {
                        Params::Speech(p) => p.batch = 1,
                        Params::Music(p) => p.batch = 1,
                        _ => {}
                    }
                    let clip = run_audio(engine, &clip_spec, &sink, cancel)?;
                    check_clip(&clip)?;
                    total += clip.duration_s();
                    outputs.extend(
                        out.audio(&clip, &clip_spec)
                            .map_err(crate::Error::on_output_write)?,
                    );
                }
                outcome.duration_s = Some(total);
            }
            Params::Transcribe(p) => {
                let audio = read_audio(&p.audio)?;
                let Engine::Whisper(whisper) = engine else {
                    return Err(wrong_engine(&model, engine));
                };
                let opts = TranscribeOptions {
                    language: p.language.clone(),
                    translate: p.translate,
                    max_tokens: p.max_tokens,
                };
                let transcript = catch_unwind(AssertUnwindSafe(|| {
                    whisper.transcribe(&audio, &opts, &sink, cancel)
                }))
                .unwrap_or_else(|panic| Err(engine_crash(panic)))?;
                let text = transcript.text();
                let mut stored = spec.clone();
                if let Params::Transcribe(p) = &mut stored.params
                    && p.language.is_none()
                {
                    p.language.clone_from(&transcript.language);
                }
                outputs.extend(
                    out.transcript(&transcript, &stored, audio.duration_s())
                        .map_err(crate::Error::on_output_write)?,
                );
                outcome.text = Some(text);
                outcome.duration_s = Some(audio.duration_s());
            }
            Params::Caption(_) | Params::Enhance(_) => {
                let text = run_text(engine, spec, &sink, cancel)?;
                outputs.extend(
                    out.text(&text, spec)
                        .map_err(crate::Error::on_output_write)?,
                );
                outcome.text = Some(text);
            }
            Params::Image(_) => {
                return Err(crate::Error::job_failed(
                    "internal: an image job reached run_media",
                ));
            }
        }
        timings.insert("generate".into(), started.elapsed().as_secs_f64());
        outcome.outputs = outputs;
        Ok(outcome)
    }

    /// Rewrites an image job's prompt with the enhancer and records the new spec (so --resume
    /// keeps the same prompt); returns the spec to generate with.
    pub(super) fn enhance_spec(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobSpec> {
        let enhancer = enhancer_of(&record.spec);
        let result = self.enhance_spec_inner(record, cancel, timings);
        self.evict_after_crash(result, &enhancer, DType::F32)
    }

    fn enhance_spec_inner(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobSpec> {
        let id = record.id;
        let mut spec = record.spec.clone();
        let enhancer_id = enhancer_of(&spec);
        let model = (self.config.models)(&enhancer_id)?;
        let engine = cached_engine(
            &mut self.cache,
            &self.shared,
            &self.config,
            id,
            &model,
            DType::F32,
            timings,
        )?;
        self.shared.emit(JobEvent::Loading {
            job: id,
            stage: "enhance".into(),
        });
        let shared = Arc::clone(&self.shared);
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
        self.shared.lock().store_mut().update_spec(id, &spec)?;
        Ok(spec)
    }
}

/// The text model an image job's prompt is enhanced with.
fn enhancer_of(spec: &JobSpec) -> String {
    spec.image()
        .and_then(|p| p.enhance.as_ref())
        .map_or_else(|| DEFAULT_ENHANCER.to_owned(), |e| e.enhancer.clone())
}

fn wrong_engine(model: &ModelInfo, engine: &Engine) -> crate::Error {
    crate::Error::bad_input(format!(
        "model `{}` loaded as a {} model, which cannot do this job",
        model.id,
        engine.family_name()
    ))
}

fn run_audio(
    engine: &mut Engine,
    spec: &JobSpec,
    sink: &(dyn Fn(EngineEvent) + Send + Sync),
    cancel: &CancelToken,
) -> crate::Result<AudioClip> {
    let seed = spec.seed.unwrap_or(0);
    let result = catch_unwind(AssertUnwindSafe(|| match (&spec.params, &*engine) {
        (Params::Speech(p), Engine::Parler(parler)) => {
            let opts = SpeechOptions {
                seed,
                temperature: 1.0,
                max_seconds: p.duration,
            };
            parler.speak(&spec.prompt, &p.voice, &opts, &sink, cancel)
        }
        (Params::Music(p), Engine::MusicGen(musicgen)) => {
            let mut opts = musicgen.generation_defaults();
            opts.duration_s = p.duration;
            opts.seed = seed;
            opts.guidance = p.guidance;
            musicgen.generate(&spec.prompt, &opts, &sink, cancel)
        }
        (_, other) => Err(crate::Error::bad_input(format!(
            "a {} model cannot make {}",
            other.family_name(),
            spec.kind.as_str()
        ))),
    }));
    result.unwrap_or_else(|panic| Err(engine_crash(panic)))
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
