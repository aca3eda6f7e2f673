//! Speech and music on the worker: one clip per seed (seed, seed+1, ...), each written as a WAV
//! with its JSON sidecar and recorded before the next is made.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::engines::audio::parler::SpeechOptions;
use crate::engines::media::AudioClip;
use crate::engines::{CancelToken, EngineEvent};
use crate::jobs::output::media::{MediaWriter, check_clip};
use crate::jobs::run::engine::Engine;
use crate::jobs::run::events::Timings;
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};
use crate::jobs::spec::{JobSpec, Params};
use crate::jobs::store::JobRecord;

use super::KindJob;
use super::media_engine::{Start, cached_engine, media_start, run_evicting};

/// Text to speech (Parler-TTS) and music (MusicGen).
pub(super) struct AudioJob;

impl KindJob for AudioJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        run_evicting(w, record, |w| clips(w, record, cancel, timings))
    }
}

fn clips(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobOutcome> {
    let (id, spec) = (record.id, &record.spec);
    let start = match media_start(w, record, "wav")? {
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
    let mut total = 0.0;
    for i in start.done..spec.batch().max(1) {
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
    timings.insert("generate".into(), started.elapsed().as_secs_f64());
    Ok(JobOutcome {
        outputs,
        text: None,
        duration_s: Some(total),
    })
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
