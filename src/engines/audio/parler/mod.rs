//! Text to speech with Parler-TTS (parler-tts/parler-tts-mini-v1, -large-v1): the text to speak
//! is embedded and prepended to the decoder's inputs, a free-text description of the voice goes
//! through a T5 encoder that the decoder cross-attends to, the decoder predicts DAC codec tokens
//! in a delayed multi-codebook pattern, and the DAC decodes them to a mono waveform — as
//! parler_tts's `ParlerTTSForConditionalGeneration.generate` does for one sequence.

mod codec;
mod config;
mod decoder;
mod generate;
mod model;

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use crate::engines::media::AudioClip;
use crate::engines::nn::weights::Weights;
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

/// What a run needs beyond the weights: the decoder's kv cache, the DAC's conv stacks at 44.1 kHz (the memory planner asks).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(192, 16);

/// Used when the voice description is empty: the description of parler-tts's own examples.
pub const DEFAULT_DESCRIPTION: &str = "A female speaker delivers a slightly expressive and \
    animated speech with a moderate speed and pitch. The recording is of very high quality, with \
    the speaker's voice sounding clear and very close up.";

/// How to speak.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechOptions {
    pub seed: u64,
    /// 0 = greedy; above 0, sampling at this temperature with the checkpoint's top-k (50).
    pub temperature: f64,
    /// At most this much audio (the model usually stops earlier on its own).
    pub max_seconds: f64,
}

/// Codes as generated, for parity checks and diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechCodes {
    /// The decoder's raw grid, one row per codebook, BOS column included (delay not undone).
    pub raw: Vec<Vec<u32>>,
    /// The codec frames decoded to audio: codebooks x frames.
    pub frames: Vec<Vec<u32>>,
}

pub struct ParlerTts {
    nets: model::Networks,
    cfg: config::ParlerConfig,
    tokenizer: Tokenizer,
}

/// Reads and checks a Parler-TTS folder's config.json (and generation_config.json).
pub fn check_config(dir: &Path) -> Result<()> {
    config::ParlerConfig::load(dir).map(|_| ())
}

impl ParlerTts {
    /// Loads a Parler-TTS folder: config.json, generation_config.json (optional),
    /// tokenizer.json and model.safetensors. Missing or damaged files are `BadInput` naming the file.
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(dir, device, dtype, Default::default())
    }

    /// `load` with the run's PALLAIDIUM_* switches (how the weights are read).
    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("parler_load", dir = %dir.display()).entered();
        let started = Instant::now();
        let cfg = config::ParlerConfig::load(dir)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            Error::bad_input(format!(
                "cannot load the tokenizer {}: {e}; download the model again",
                tokenizer_path.display()
            ))
        })?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let nets = model::Networks::load(&cfg, &weights, device, dtype)?;
        tracing::info!(
            elapsed_s = started.elapsed().as_secs_f64(),
            "loaded Parler-TTS"
        );
        Ok(Self {
            nets,
            cfg,
            tokenizer,
        })
    }

    /// The codec's output rate (44.1 kHz for the real checkpoints).
    pub fn sample_rate(&self) -> u32 {
        self.cfg.codec.sampling_rate
    }

    /// Speaks `text` in the voice `voice` describes (empty: [`DEFAULT_DESCRIPTION`]).
    pub fn speak(
        &self,
        text: &str,
        voice: &str,
        opts: &SpeechOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<AudioClip> {
        let codes = self.generate_codes(text, voice, opts, sink, cancel)?;
        if codes.frames.first().is_none_or(Vec::is_empty) {
            return Err(Error::job_failed(
                "the model ended the speech before producing any audio; try another seed or \
                 voice description",
            ));
        }
        sink.emit(EngineEvent::Loading {
            stage: "codec".into(),
        });
        let _span = tracing::info_span!("parler_codec").entered();
        let started = Instant::now();
        let samples = self.decode_frames(&codes.frames)?;
        if samples.iter().any(|s| !s.is_finite()) {
            return Err(Error::job_failed("the codec produced non-finite samples"));
        }
        tracing::info!(
            elapsed_s = started.elapsed().as_secs_f64(),
            samples = samples.len(),
            "decoded speech"
        );
        Ok(AudioClip {
            samples,
            sample_rate: self.cfg.codec.sampling_rate,
        })
    }

    /// Token ids as the T5 tokenizer gives them (`</s>` appended).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::job_failed(format!("tokenizing failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The T5 encoder's output for `description`: (1, len, d_model).
    pub fn encode_description(&self, description: &str) -> Result<Tensor> {
        let ids = self.tokenize(description)?;
        self.nets.encode_description(&ids)
    }

    /// Logits of the decoder fed `columns` (codebooks x steps, delay-masked, BOS column first) in
    /// one pass after the prompt: (steps, codebooks, vocab), f32.
    pub fn teacher_forced_logits(
        &self,
        text: &str,
        description: &str,
        columns: &[Vec<u32>],
    ) -> Result<Tensor> {
        let prompt = self.nets.embed_prompt(&self.tokenize(text)?)?;
        let encoded = self.encode_description(description)?;
        let cross = self.nets.cross_states(&encoded)?;
        let mut state = self.nets.start(&cross)?;
        let logits = self.nets.forward(&mut state, &prompt, 0, columns)?;
        let stacked = Tensor::cat(&logits, 0)?; // (codebooks, steps, vocab)
        Ok(stacked.transpose(0, 1)?.to_dtype(DType::F32)?)
    }

    /// The decoding loop alone: text and description in, codec frames out.
    pub fn generate_codes(
        &self,
        text: &str,
        voice: &str,
        opts: &SpeechOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<SpeechCodes> {
        if text.trim().is_empty() {
            return Err(Error::bad_input(
                "nothing to speak: the prompt (the text to speak) is empty",
            ));
        }
        let description = if voice.trim().is_empty() {
            DEFAULT_DESCRIPTION
        } else {
            voice
        };
        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let (prompt, cross, prompt_len) = {
            let _span = tracing::info_span!("parler_encode").entered();
            let started = Instant::now();
            let prompt_ids = self.tokenize(text)?;
            let encoded = self.encode_description(description)?;
            let cross = self.nets.cross_states(&encoded)?;
            let prompt = self.nets.embed_prompt(&prompt_ids)?;
            tracing::info!(
                elapsed_s = started.elapsed().as_secs_f64(),
                prompt_tokens = prompt_ids.len(),
                "encoded text and description"
            );
            (prompt, cross, prompt_ids.len())
        };
        let plan = self.plan(opts.max_seconds, prompt_len)?;
        let mut sampler =
            generate::Sampler::new(opts.seed, opts.temperature, self.cfg.generation.top_k);
        sink.emit(EngineEvent::Loading {
            stage: "decoder".into(),
        });
        let _span = tracing::info_span!("parler_decode_loop", max_steps = plan.steps()).entered();
        let started = Instant::now();
        let mut state = self.nets.start(&cross)?;
        let steps = plan.steps() as u32;
        let raw = generate::run(
            &plan,
            &mut sampler,
            |pos, column| {
                let columns: Vec<Vec<u32>> = column.iter().map(|&t| vec![t]).collect();
                self.nets.step(&mut state, &prompt, pos, &columns)
            },
            |step| {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                if step > 0 {
                    let elapsed_s = started.elapsed().as_secs_f64();
                    let step = step as u32;
                    sink.emit(EngineEvent::Progress {
                        step,
                        steps,
                        elapsed_s,
                        eta_s: elapsed_s / f64::from(step) * f64::from(steps.saturating_sub(step)),
                    });
                }
                Ok(())
            },
        )?;
        let done = raw.first().map_or(0, |r| r.len().saturating_sub(1)) as u32;
        let elapsed_s = started.elapsed().as_secs_f64();
        sink.emit(EngineEvent::Progress {
            step: done,
            steps,
            elapsed_s,
            eta_s: 0.0,
        });
        let frames = generate::frames(&raw, self.cfg.codec.codebook_size);
        tracing::info!(
            elapsed_s,
            steps = done,
            frames = frames.first().map_or(0, Vec::len),
            "generated codes"
        );
        Ok(SpeechCodes { raw, frames })
    }

    /// Decodes codec frames (codebooks x frames) to samples.
    pub fn decode_frames(&self, frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        let len = frames.first().map_or(0, Vec::len);
        if len == 0 || frames.iter().any(|r| r.len() != len) {
            return Err(Error::job_failed("no codec frames to decode"));
        }
        if let Some(bad) = frames
            .iter()
            .flatten()
            .find(|&&t| t as usize >= self.cfg.codec.codebook_size)
        {
            return Err(Error::job_failed(format!(
                "codec token {bad} is out of range"
            )));
        }
        let flat: Vec<u32> = frames.iter().flatten().copied().collect();
        let codes = Tensor::from_vec(flat, (1, frames.len(), len), &self.nets.device)?;
        let audio = self.nets.codec.decode(&codes)?;
        Ok(audio
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }

    /// Steps for `max_seconds`: one codec frame a step, plus the delay pattern's `codebooks`
    /// extra columns, within the decoder's position table (which also holds the prompt).
    fn plan(&self, max_seconds: f64, prompt_len: usize) -> Result<generate::Plan> {
        let n = self.nets.num_codebooks;
        // The small slack keeps 0.12 s at 200 frames/s from becoming 25 frames (float error).
        let wanted = (max_seconds.max(0.0) * self.cfg.codec.frame_rate - 1e-6)
            .ceil()
            .max(0.0);
        let frames = if wanted.is_finite() {
            wanted as usize
        } else {
            usize::MAX / 2
        };
        // At least `n` frames, so the delay pattern applies (parler_tts skips it below 2n - 1).
        let mut max_length = frames.max(n).saturating_add(n);
        let room = self
            .cfg
            .decoder
            .max_position_embeddings
            .saturating_sub(prompt_len);
        if room < 2 * n {
            return Err(Error::bad_input(format!(
                "the text is too long for this model: {prompt_len} tokens leave no room in its \
                 {} positions; split it into shorter pieces",
                self.cfg.decoder.max_position_embeddings
            )));
        }
        if max_length > room {
            tracing::warn!(
                max_length,
                room,
                "max_seconds cut to fit the decoder's positions"
            );
            max_length = room;
        }
        let g = &self.cfg.generation;
        Ok(generate::Plan {
            num_codebooks: n,
            max_length,
            bos: g.bos,
            eos: g.eos,
            pad: g.pad,
            start: self.cfg.decoder_start,
            min_new_tokens: g.min_new_tokens,
            min_length: g.min_length,
        })
    }
}
