//! Speech to text on the worker: Whisper over the whole audio file, written as `.srt` + `.txt`
//! with the detected language recorded in the sidecar.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::engines::audio::decode::read_audio;
use crate::engines::text::whisper::TranscribeOptions;
use crate::engines::{CancelToken, EngineEvent};
use crate::jobs::output::media::MediaWriter;
use crate::jobs::run::engine::Engine;
use crate::jobs::run::events::Timings;
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};
use crate::jobs::spec::Params;
use crate::jobs::store::JobRecord;

use super::KindJob;
use super::media_engine::{Start, cached_engine, media_start, run_evicting, wrong_engine};

pub(super) struct TranscribeJob;

impl KindJob for TranscribeJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        run_evicting(w, record, |w| transcribe(w, record, cancel, timings))
    }
}

fn transcribe(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobOutcome> {
    let (id, spec) = (record.id, &record.spec);
    let Params::Transcribe(p) = &spec.params else {
        return Err(crate::Error::job_failed(
            "internal: a job without transcription parameters reached the transcriber",
        ));
    };
    let start = match media_start(w, record, "srt")? {
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
    let audio = read_audio(&p.audio)?;
    let Engine::Whisper(whisper) = engine else {
        return Err(wrong_engine(&start.model, engine));
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
    timings.insert("generate".into(), started.elapsed().as_secs_f64());
    Ok(JobOutcome {
        outputs,
        text: Some(text),
        duration_s: Some(audio.duration_s()),
    })
}
