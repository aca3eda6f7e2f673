//! Text to music with MusicGen (facebook/musicgen-small / -medium in the transformers layout):
//! T5 text encoder (nn::text::t5), enc_to_dec_proj, our decoder with the codebook delay
//! pattern and classifier-free guidance, then EnCodec decoding to a mono clip. Mirrors
//! transformers' `MusicgenForConditionalGeneration.generate`.

mod codec;
pub mod config;
mod decoder;
pub mod delay;
mod generation;
pub mod sampling;

pub use generation::GeneratedCodes;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::Linear;
use tokenizers::Tokenizer;

use crate::engines::media::AudioClip;
use crate::engines::nn::text::t5::T5Encoder;
use crate::engines::nn::weights::Weights;
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

use codec::CodecDecoder;
use config::{GenerationConfig, MusicgenConfig};
use decoder::Decoder;

/// The longest clip we agree to make; MusicGen was trained on 30 s and degrades well before this.
pub const MAX_DURATION_S: f64 = 300.0;

/// What a run needs beyond the weights: both guidance passes' kv caches, EnCodec's conv stacks at 32 kHz (the memory planner asks).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(192, 24);

/// How to generate. `temperature` 0 = greedy; `top_k` 0 = no top-k filter; `guidance` <= 1
/// turns classifier-free guidance off.
#[derive(Debug, Clone, PartialEq)]
pub struct MusicOptions {
    pub duration_s: f64,
    pub guidance: f64,
    pub seed: u64,
    pub top_k: usize,
    pub temperature: f64,
}

pub struct MusicGen {
    dir: PathBuf,
    config: MusicgenConfig,
    generation: GenerationConfig,
    tokenizer: Tokenizer,
    text_encoder: T5Encoder,
    enc_to_dec_proj: Option<Linear>,
    decoder: Decoder,
    codec: CodecDecoder,
    device: Device,
    /// The pad / decoder-start code (vocab_size in the real models).
    pad: u32,
}

/// Reads and checks a MusicGen folder's config.json and generation_config.json.
pub fn check_config(dir: &Path) -> Result<()> {
    MusicgenConfig::load(&dir.join("config.json"))?;
    GenerationConfig::load(&dir.join("generation_config.json")).map(|_| ())
}

impl MusicGen {
    /// Loads a MusicGen folder. The T5 encoder and the codec run in f32 whatever `dtype` is
    /// (T5 overflows in f16; both are small); the decoder uses `dtype`.
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
        let started = Instant::now();
        let _span = tracing::info_span!("musicgen_load", dir = %dir.display()).entered();
        let config = MusicgenConfig::load(&dir.join("config.json"))?;
        let generation = GenerationConfig::load(&dir.join("generation_config.json"))?;
        let tokenizer = load_tokenizer(dir)?;
        let full = Weights::open(dir, device, DType::F32, false, switches)?;
        let half = if dtype == DType::F32 {
            None
        } else {
            Some(Weights::open(dir, device, dtype, false, switches)?)
        };
        let main = half.as_ref().unwrap_or(&full);
        // `full` is f32: MusicGen keeps T5 in f32 even in bf16 runs.
        let text_encoder = full.build("T5 text encoder", |vb| {
            T5Encoder::new(vb.pp("text_encoder"), &config.text_encoder)
        })?;
        let enc_to_dec_proj = if config.has_enc_to_dec_proj() {
            let (i, o) = (config.text_encoder.d_model, config.decoder.hidden_size);
            Some(main.build("enc_to_dec_proj", |vb| {
                candle_nn::linear(i, o, vb.pp("enc_to_dec_proj"))
            })?)
        } else {
            None
        };
        let decoder = main.build("MusicGen decoder", |vb| {
            Decoder::load(&config.decoder, vb.pp("decoder"))
        })?;
        let codec = full.build("EnCodec decoder", |vb| {
            CodecDecoder::load(
                &config.audio_encoder,
                config.decoder.num_codebooks,
                vb.pp("audio_encoder"),
            )
        })?;
        let pad = generation
            .decoder_start_token_id
            .or(generation.pad_token_id)
            .unwrap_or(config.decoder.pad_token_id);
        if pad as usize > config.decoder.vocab_size {
            return Err(Error::bad_input(format!(
                "{}: the pad / decoder start code {pad} is outside the decoder's {} + 1 \
                 embeddings",
                dir.join("generation_config.json").display(),
                config.decoder.vocab_size
            )));
        }
        tracing::info!(
            elapsed_s = started.elapsed().as_secs_f64(),
            codebooks = config.decoder.num_codebooks,
            "musicgen loaded"
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            generation,
            tokenizer,
            text_encoder,
            enc_to_dec_proj,
            decoder,
            codec,
            device: device.clone(),
            pad,
        })
    }

    /// The folder's generation_config.json as options (guidance 3, top-k 250, temperature 1,
    /// 8 s where it says nothing; `do_sample: false` means greedy).
    pub fn generation_defaults(&self) -> MusicOptions {
        let g = &self.generation;
        let temperature = if g.do_sample == Some(false) {
            0.0
        } else {
            g.temperature.unwrap_or(1.0)
        };
        let duration_s = g
            .max_new_tokens
            .map(|n| {
                let frames = (n + 1).saturating_sub(self.num_codebooks());
                frames as f64 / self.frame_rate() as f64
            })
            .filter(|d| *d > 0.0 && *d <= MAX_DURATION_S)
            .unwrap_or(8.0);
        MusicOptions {
            duration_s,
            guidance: g.guidance_scale.unwrap_or(3.0),
            seed: 0,
            top_k: g.top_k.unwrap_or(250),
            temperature,
        }
    }

    /// Generates `opts.duration_s` seconds of mono audio for `prompt`.
    pub fn generate(
        &self,
        prompt: &str,
        opts: &MusicOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<AudioClip> {
        let d = opts.duration_s;
        if !d.is_finite() || d <= 0.0 || d > MAX_DURATION_S {
            return Err(Error::bad_input(format!(
                "music duration {d} s is out of range; ask for more than 0 and at most \
                 {MAX_DURATION_S} s"
            )));
        }
        // The tolerance keeps 0.18 s * 50 = 9.000000000000002 at 9 frames.
        let frames = ((d * self.frame_rate() as f64) - 1e-6).ceil().max(1.0) as usize;
        let max_new_tokens = frames + self.num_codebooks() - 1;
        let generated = self.generate_codes(prompt, max_new_tokens, opts, sink, cancel)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        sink.emit(EngineEvent::Loading {
            stage: "codec".into(),
        });
        let mut samples = self.decode_codes(&generated.codes)?;
        let rate = self.sample_rate();
        let wanted = (d * f64::from(rate)).round() as usize;
        samples.truncate(wanted);
        Ok(AudioClip {
            samples,
            sample_rate: rate,
        })
    }

    /// The codec's sampling rate (32 kHz for the real models).
    pub fn sample_rate(&self) -> u32 {
        u32::try_from(self.config.audio_encoder.sampling_rate).unwrap_or(u32::MAX)
    }

    /// Codes a second per codebook (50 for the real models).
    pub fn frame_rate(&self) -> usize {
        self.config.audio_encoder.frame_rate()
    }

    pub fn num_codebooks(&self) -> usize {
        self.config.decoder.num_codebooks
    }

    /// The prompt's T5 token ids, ending in `</s>` as the T5 tokenizer makes them.
    pub fn tokenize(&self, prompt: &str) -> Result<Vec<u32>> {
        if prompt.trim().is_empty() {
            return Err(Error::bad_input(
                "the music prompt is empty; describe the music to make",
            ));
        }
        let enc = self.tokenizer.encode(prompt, true).map_err(|e| {
            Error::bad_input(format!(
                "cannot tokenize the prompt with {}: {e}",
                self.tokenizer_path().display()
            ))
        })?;
        let ids = enc.get_ids().to_vec();
        let vocab = self.config.text_encoder.vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::bad_input(format!(
                "{} gives token id {bad}, outside the text encoder's {vocab} embeddings: the \
                 tokenizer does not belong to this model",
                self.tokenizer_path().display()
            )));
        }
        Ok(ids)
    }

    /// The T5 encoder's last hidden state for `ids`: (1, len, d_model), f32, before
    /// enc_to_dec_proj.
    pub fn encode_text(&self, ids: &[u32]) -> Result<Tensor> {
        self.text_encoder.encode(ids)
    }

    /// EnCodec-decodes codes (num_codebooks rows of frames) to mono samples.
    pub fn decode_codes(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        let started = Instant::now();
        let _span = tracing::info_span!("musicgen_codec").entered();
        let frames = codes.first().map_or(0, Vec::len);
        if frames == 0 || codes.iter().any(|r| r.len() != frames) {
            return Err(Error::job_failed("no audio codes to decode"));
        }
        let limit = self.config.audio_encoder.codebook_size as u32;
        if codes.iter().flatten().any(|&c| c >= limit) {
            return Err(Error::job_failed(
                "an audio code is outside the codec's codebook",
            ));
        }
        let flat: Vec<u32> = codes.iter().flatten().copied().collect();
        let codes = Tensor::from_vec(flat, (codes.len(), frames), &self.device)?;
        let wave = self.codec.decode(&codes)?; // (channels, samples)
        let samples = wave.get(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        tracing::info!(
            samples = samples.len(),
            elapsed_s = started.elapsed().as_secs_f64(),
            "audio decoded"
        );
        Ok(samples)
    }

    fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(Error::bad_input(format!(
            "{} is missing; MusicGen needs the repo's T5 tokenizer.json (download it with the \
             model)",
            path.display()
        )));
    }
    Tokenizer::from_file(&path).map_err(|e| {
        Error::bad_input(format!(
            "{} is not a valid tokenizer file: {e}; download it again",
            path.display()
        ))
    })
}
