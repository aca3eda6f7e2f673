//! The transcription loop: features, language, then window after window of greedy decoding,
//! each window starting where the previous one's last complete segment ended.

use std::time::Instant;

use candle_core::{IndexOp, Tensor};

use super::decoding;
use super::{TranscribeOptions, Transcription, WhisperEngine, mel};
use crate::engines::media::{AudioClip, Segment, Transcript};
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

/// Progress over the whole run: one step a generated token.
struct Progress<'a> {
    sink: &'a dyn ProgressSink,
    started: Instant,
    step: u32,
    steps: u32,
}

impl Progress<'_> {
    fn token(&mut self) {
        self.step += 1;
        // Seeking may need more windows than planned: the plan grows rather than overflowing.
        self.steps = self.steps.max(self.step);
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let eta_s = elapsed_s / f64::from(self.step) * f64::from(self.steps - self.step);
        self.sink.emit(EngineEvent::Progress {
            step: self.step,
            steps: self.steps,
            elapsed_s,
            eta_s,
        });
    }
}

impl WhisperEngine {
    /// [`WhisperEngine::transcribe`] with the tokens and segments as decoded.
    pub fn transcribe_detailed(
        &self,
        audio: &AudioClip,
        opts: &TranscribeOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Transcription> {
        if audio.samples.is_empty() {
            return Err(Error::bad_input(
                "the audio clip is empty; nothing to transcribe",
            ));
        }
        let timestamps = true;
        self.run(audio, opts, timestamps, sink, cancel)
    }

    /// The same decoding with `<|notimestamps|>`: one segment a window, no timestamp rules.
    pub fn transcribe_without_timestamps(
        &self,
        audio: &AudioClip,
        opts: &TranscribeOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Transcription> {
        if audio.samples.is_empty() {
            return Err(Error::bad_input(
                "the audio clip is empty; nothing to transcribe",
            ));
        }
        self.run(audio, opts, false, sink, cancel)
    }

    fn task_and_language(&self, opts: &TranscribeOptions) -> Result<(Option<u32>, Option<u32>)> {
        if opts.max_tokens == Some(0) {
            return Err(Error::bad_input(
                "max_tokens must be at least 1 (it caps the tokens of each 30 s window)",
            ));
        }
        if !self.generation.multilingual {
            let english = opts.language.as_deref().is_none_or(|l| {
                matches!(
                    l.trim().to_lowercase().as_str(),
                    "en" | "english" | "<|en|>"
                )
            });
            if opts.translate || !english {
                return Err(Error::bad_input(
                    "this Whisper model is English-only: it cannot take another language or \
                     translate; use a multilingual model (e.g. openai/whisper-small)",
                ));
            }
            return Ok((None, None));
        }
        if opts.language.is_none() && !opts.translate {
            // Nothing asked: the model's forced_decoder_ids decide (a fine-tune may pin its
            // language there), else detect and transcribe.
            let task = self.generation.forced_task.or(self.generation.transcribe);
            return Ok((task, self.generation.forced_language));
        }
        let task = if opts.translate {
            self.generation.translate
        } else {
            self.generation.transcribe
        };
        let language = opts
            .language
            .as_deref()
            .map(|l| self.generation.language_id(l))
            .transpose()?;
        Ok((task, language))
    }

    fn run(
        &self,
        audio: &AudioClip,
        opts: &TranscribeOptions,
        timestamps: bool,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Transcription> {
        let (task, language) = self.task_and_language(opts)?;
        sink.emit(EngineEvent::Loading {
            stage: "features".into(),
        });
        let (features, samples) = {
            let _span = tracing::info_span!("whisper_features").entered();
            let started = Instant::now();
            let clip = crate::engines::audio::decode::resample(audio, mel::SAMPLE_RATE);
            let f = mel::log_mel(&clip.samples, self.cfg.num_mel_bins);
            tracing::info!(
                frames = f.frames,
                elapsed_s = started.elapsed().as_secs_f64(),
                "features"
            );
            (f, clip.samples.len())
        };
        let window = self.cfg.window_frames();
        // Short clips are padded to one full window; long ones end at their last real frame
        // (transformers counts the frames of the attention mask: ceil(samples / hop)).
        let max_frames = if features.frames <= window {
            features.frames
        } else {
            samples.div_ceil(mel::HOP)
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let language = match (language, self.generation.multilingual) {
            (Some(id), _) => Some(id),
            (None, true) => {
                sink.emit(EngineEvent::Loading {
                    stage: "language".into(),
                });
                Some(self.detect_language(&features.window(0, window, window))?)
            }
            (None, false) => None,
        };
        let init = decoding::init_tokens(&self.generation, language, task, timestamps);
        let max_total = decoding::max_total_len(
            &self.generation,
            self.cfg.max_target_positions,
            init.len(),
            opts.max_tokens,
        );
        let per_window = max_total.saturating_sub(init.len()) as u32;
        let mut progress = Progress {
            sink,
            started: Instant::now(),
            step: 0,
            steps: per_window * max_frames.div_ceil(window).max(1) as u32,
        };
        sink.emit(EngineEvent::Loading {
            stage: "decoder".into(),
        });
        let _span = tracing::info_span!("whisper_decode", frames = max_frames).entered();
        let mut segments = Vec::new();
        let mut seek = 0;
        while seek < max_frames {
            let frames = (max_frames - seek).min(window);
            let encoded = {
                let _span = tracing::info_span!("whisper_encode", seek).entered();
                let started = Instant::now();
                let encoded = self.encode(&features.window(seek, frames, window))?;
                tracing::info!(elapsed_s = started.elapsed().as_secs_f64(), "encoded");
                encoded
            };
            let started = Instant::now();
            let mut tokens = self.greedy(
                &encoded,
                &init,
                max_total,
                timestamps,
                &mut progress,
                cancel,
            )?;
            tracing::info!(
                seek,
                tokens = tokens.len(),
                elapsed_s = started.elapsed().as_secs_f64(),
                "window decoded"
            );
            if tokens.last() == Some(&self.generation.eot) {
                tokens.pop();
            }
            let (window_segments, advance) =
                decoding::split_segments(&tokens, &self.generation, seek, frames);
            for segment in &window_segments {
                let text = self.decode_text(&segment.tokens)?;
                if !text.trim().is_empty() {
                    sink.emit(EngineEvent::Text { delta: text });
                }
            }
            segments.extend(window_segments);
            // A window that does not move on (a degenerate <|0.00|><|0.00|> ending) would repeat
            // forever: then the whole window counts as done.
            seek += if advance == 0 { frames } else { advance };
        }
        tracing::info!(
            segments = segments.len(),
            tokens = progress.step,
            elapsed_s = progress.started.elapsed().as_secs_f64(),
            "decoded"
        );
        let mut timed = Vec::with_capacity(segments.len());
        for s in &segments {
            let text = self.decode_text(&s.tokens)?;
            // Segments without text (a timestamp pair alone) are not worth a subtitle.
            if !text.trim().is_empty() {
                timed.push(Segment {
                    start_s: s.start_s,
                    end_s: s.end_s,
                    text,
                });
            }
        }
        let mut transcript = Transcript {
            language: match language {
                Some(id) => self.generation.language_code(id),
                None => Some("en".into()),
            },
            segments: timed,
        };
        transcript.clamp_to(audio.duration_s());
        Ok(Transcription {
            transcript,
            segments,
            language_id: language,
            init_tokens: init,
        })
    }

    /// The likeliest language token after `<|startoftranscript|>`, from the raw logits.
    fn detect_language(&self, first_window: &[f32]) -> Result<u32> {
        let _span = tracing::info_span!("whisper_detect_language").entered();
        let encoded = self.encode(first_window)?;
        let logits = self.decoder_logits(&encoded, &[self.generation.sot])?;
        let logits: Vec<f32> = logits.i(0)?.to_vec1()?;
        let mut ids: Vec<u32> = self.generation.lang_to_id.values().copied().collect();
        ids.sort_unstable();
        // torch.argmax over the language logits: the lowest id wins a tie.
        let mut best: Option<u32> = None;
        for id in ids.into_iter().filter(|id| (*id as usize) < logits.len()) {
            if best.is_none_or(|b| logits[id as usize] > logits[b as usize]) {
                best = Some(id);
            }
        }
        best.ok_or_else(|| Error::job_failed("the model lists no languages to detect"))
    }

    /// Greedy decoding of one window: the generated tokens, end-of-text included if reached.
    fn greedy(
        &self,
        encoded: &Tensor,
        init: &[u32],
        max_total: usize,
        timestamps: bool,
        progress: &mut Progress,
        cancel: &CancelToken,
    ) -> Result<Vec<u32>> {
        let decoder = &self.model.decoder;
        let mut state = decoder.start(&encoded.unsqueeze(0)?)?;
        let logits = decoder.step(init, &mut state)?;
        let mut last: Vec<f32> = logits.i(init.len() - 1)?.to_vec1()?;
        let mut generated = Vec::new();
        while init.len() + generated.len() < max_total {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            decoding::process_logits(&mut last, &self.generation, timestamps, &generated);
            let next = super::model::argmax(&last) as u32;
            generated.push(next);
            progress.token();
            if next == self.generation.eot || init.len() + generated.len() >= max_total {
                break;
            }
            last = decoder.step(&[next], &mut state)?.i(0)?.to_vec1()?;
        }
        Ok(generated)
    }
}
