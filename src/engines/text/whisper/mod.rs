//! Speech to text with Whisper (openai/whisper-* folders in transformers' layout), greedy decoding
//! as transformers' `WhisperForConditionalGeneration.generate` does it: language detection, the
//! transcribe/translate task, timestamp rules, and consecutive 30 s windows for long audio.

mod config;
mod decoding;
mod languages;
pub mod mel;
mod model;
mod transcribe;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use crate::engines::media::{AudioClip, Transcript};
use crate::engines::nn::weights::Weights;
use crate::engines::{CancelToken, ProgressSink};
use crate::error::{Error, Result};

pub use decoding::RawSegment;

/// What a run needs beyond the weights: one 30 s window, the encoder's 1500 frames and the decoder's cache (the memory planner asks).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(160, 0);

/// What the user asks of a transcription.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscribeOptions {
    /// Spoken language as a code ("de"), a name ("german") or a token ("<|de|>"); `None` detects
    /// it (multilingual models) from the first 30 s.
    pub language: Option<String>,
    /// Translate into English instead of transcribing (multilingual models only).
    pub translate: bool,
    /// At most this many new tokens per 30 s window.
    pub max_tokens: Option<u32>,
}

/// A transcript with what produced it, token by token (for parity checks and debugging).
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub transcript: Transcript,
    /// Every segment as decoded, empty ones included, tokens with their timestamps.
    pub segments: Vec<RawSegment>,
    /// The language token used (detected or given); `None` on English-only models.
    pub language_id: Option<u32>,
    /// The decoder's start tokens of every window.
    pub init_tokens: Vec<u32>,
}

pub struct WhisperEngine {
    model: model::Whisper,
    cfg: config::ModelConfig,
    generation: config::Generation,
    tokenizer: Tokenizer,
    device: Device,
    dtype: DType,
}

/// Reads and checks a Whisper folder's configs and tokenizer as `load` does, without the weights.
pub fn check_config(dir: &Path) -> Result<()> {
    config::load_checked(dir).map(|_| ())
}

impl WhisperEngine {
    /// Loads a Whisper folder: config.json, generation_config.json, tokenizer.json and
    /// model.safetensors. Missing or damaged files are `BadInput` naming the file.
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
        let _span = tracing::info_span!("whisper_load", dir = %dir.display()).entered();
        let started = std::time::Instant::now();
        let (cfg, tokenizer, generation) = config::load_checked(dir)?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let model = weights.build("Whisper model", |vb| model::Whisper::load(&cfg, vb))?;
        tracing::info!(
            elapsed_s = started.elapsed().as_secs_f64(),
            d_model = cfg.d_model,
            multilingual = generation.multilingual,
            "loaded whisper"
        );
        Ok(Self {
            model,
            cfg,
            generation,
            tokenizer,
            device: device.clone(),
            dtype,
        })
    }

    /// Whether the model knows languages other than English (and so can translate).
    pub fn is_multilingual(&self) -> bool {
        self.generation.multilingual
    }

    /// Transcribes (or translates) a clip of any sample rate and length.
    pub fn transcribe(
        &self,
        audio: &AudioClip,
        opts: &TranscribeOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Transcript> {
        Ok(self
            .transcribe_detailed(audio, opts, sink, cancel)?
            .transcript)
    }

    /// The log-mel features of a clip (resampled to 16 kHz first), as the feature extractor
    /// computes them.
    pub fn features(&self, audio: &AudioClip) -> mel::LogMel {
        let clip = crate::engines::audio::decode::resample(audio, mel::SAMPLE_RATE);
        mel::log_mel(&clip.samples, self.cfg.num_mel_bins)
    }

    /// Encoder output `(positions, d_model)` in f32 for one window of features, `n_mels` rows of
    /// `2 * max_source_positions` frames, row-major.
    pub fn encode(&self, window: &[f32]) -> Result<Tensor> {
        let frames = self.cfg.window_frames();
        if window.len() != self.cfg.num_mel_bins * frames {
            return Err(Error::job_failed(format!(
                "a Whisper window holds {} x {frames} features, got {}",
                self.cfg.num_mel_bins,
                window.len()
            )));
        }
        let x = Tensor::from_slice(window, (1, self.cfg.num_mel_bins, frames), &self.device)?
            .to_dtype(self.dtype)?;
        Ok(self.model.encoder.forward(&x)?.squeeze(0)?)
    }

    /// Raw decoder logits `(tokens, vocab)` in f32 for `tokens` given an encoder output from
    /// [`Self::encode`].
    pub fn decoder_logits(&self, encoded: &Tensor, tokens: &[u32]) -> Result<Tensor> {
        let mut state = self.model.decoder.start(&encoded.unsqueeze(0)?)?;
        Ok(self.model.decoder.step(tokens, &mut state)?)
    }

    /// Text of token ids, special tokens and timestamps left out.
    pub fn decode_text(&self, tokens: &[u32]) -> Result<String> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|t| *t < self.generation.eot)
            .collect();
        self.tokenizer
            .decode(&text, true)
            .map_err(|e| Error::job_failed(format!("cannot decode Whisper tokens: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<WhisperEngine>();
    }
}
