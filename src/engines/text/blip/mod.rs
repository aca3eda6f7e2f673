//! Image captioning with BLIP (Salesforce/blip-image-captioning-base / -large in transformers'
//! layout), as `BlipProcessor` + `BlipForConditionalGeneration.generate` do it: PIL-exact
//! preprocessing, candle's BLIP vision encoder and text decoder, greedy decoding from [DEC]
//! (plus an optional prefix for conditional captioning) until [SEP] or the token cap.

mod config;
mod decoder;
mod generate;
pub mod preprocess;
mod vision;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use decoder::TextDecoder;
use vision::VisionEncoder;

use crate::engines::nn::weights::Weights;
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

pub use config::{ModelConfig, PreprocessConfig, Resample};

/// What a run needs beyond the weights: the vision encoder's 577 patches and the decoder's cache (the memory planner asks).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(96, 0);

/// What the user asks of one caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionOptions {
    /// At most this many new tokens (the final [SEP] counts, as in transformers' max_new_tokens).
    pub max_tokens: u32,
    /// Conditional captioning: the caption continues this text ("a picture of") and includes it.
    pub prefix: Option<String>,
}

/// Reads and checks a BLIP folder's config.json and preprocessor_config.json as loading does.
pub fn check_config(dir: &Path) -> Result<()> {
    config::model_config(dir)?;
    config::preprocess_config(dir).map(|_| ())
}

impl Default for CaptionOptions {
    fn default() -> Self {
        Self {
            max_tokens: 30,
            prefix: None,
        }
    }
}

/// A caption with the token ids that produced it (prompt included, as transformers returns them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    pub ids: Vec<u32>,
    pub text: String,
}

pub struct BlipCaptioner {
    vision: VisionEncoder,
    /// Stateless; each caption gets its own `decoder::DecodeState`.
    decoder: TextDecoder,
    cfg: ModelConfig,
    pre: PreprocessConfig,
    tokenizer: Tokenizer,
    device: Device,
    dtype: DType,
}

/// The LM head's weight name, and the tensor transformers ties it to.
const HEAD_WEIGHT: &str = "text_decoder.cls.predictions.decoder.weight";
const WORD_EMBEDDINGS: &str = "text_decoder.bert.embeddings.word_embeddings.weight";

impl BlipCaptioner {
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
        let span = tracing::info_span!("blip_load", dir = %dir.display());
        let _enter = span.enter();
        let started = std::time::Instant::now();
        if !dir.is_dir() {
            return Err(Error::bad_input(format!(
                "{} is not a folder; expected a BLIP captioning model folder (config.json, \
                 model.safetensors, preprocessor_config.json, tokenizer.json)",
                dir.display()
            )));
        }
        let cfg = config::model_config(dir)?;
        let pre = config::preprocess_config(dir)?;
        let side = cfg.candle.vision_config.image_size;
        if pre.do_resize && (pre.height != side || pre.width != side) {
            return Err(Error::bad_input(format!(
                "{}: size {}x{} does not match config.json's vision_config.image_size {side}",
                dir.join("preprocessor_config.json").display(),
                pre.width,
                pre.height
            )));
        }
        let tokenizer = load_tokenizer(dir, cfg.candle.text_config.vocab_size)?;

        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let tie = cfg.tie_word_embeddings;
        let vision = weights.build("BLIP vision encoder", |vb| {
            VisionEncoder::new(&cfg.candle.vision_config, vb.pp("vision_model"))
        })?;
        // The decoder runs in f32 whatever the dtype: its per-token matmuls are small and CPU f16
        // matmuls are slow (the vision encoder, most of the compute, runs in the requested dtype).
        let f32_weights;
        let decoder_weights = if dtype == DType::F32 {
            &weights
        } else {
            f32_weights = Weights::open(dir, device, DType::F32, false, switches)?;
            &f32_weights
        };
        let decoder = decoder_weights.build("BLIP text decoder", |vb| {
            let vb = vb.rename_f(move |name: &str| head_alias(name, tie));
            TextDecoder::new(&cfg.candle.text_config, vb.pp("text_decoder"))
        })?;
        tracing::info!(elapsed_s = started.elapsed().as_secs_f64(), "BLIP loaded");
        Ok(Self {
            vision,
            decoder,
            cfg,
            pre,
            tokenizer,
            device: device.clone(),
            dtype,
        })
    }

    pub fn caption(
        &self,
        image: &image::DynamicImage,
        opts: &CaptionOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<String> {
        Ok(self.caption_with_ids(image, opts, sink, cancel)?.text)
    }

    /// `caption`, also returning the token ids (for parity checks).
    pub fn caption_with_ids(
        &self,
        image: &image::DynamicImage,
        opts: &CaptionOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Caption> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let prompt = self.prompt_ids(opts.prefix.as_deref())?;
        let pixels = self.pixel_values(image)?;
        sink.emit(EngineEvent::Loading {
            stage: "vision_encoder".into(),
        });
        let embeds = self.encode_image(&pixels)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        sink.emit(EngineEvent::Loading {
            stage: "text_decoder".into(),
        });
        generate::greedy(self, &embeds, prompt, opts.max_tokens, sink, cancel)
    }

    /// The processor's pixel_values for `image`: (1, 3, H, W) f32 on the model's device.
    pub fn pixel_values(&self, image: &image::DynamicImage) -> Result<Tensor> {
        preprocess::pixel_values(image, &self.pre, &self.device)
    }

    /// The vision encoder's last hidden state (post layer norm), as f32: (1, patches + 1, width).
    pub fn encode_image(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let span = tracing::info_span!("blip_encode");
        let _enter = span.enter();
        let started = std::time::Instant::now();
        let side = self.cfg.candle.vision_config.image_size;
        let dims = pixel_values.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != side || dims[3] != side {
            return Err(Error::bad_input(format!(
                "pixel_values must be (batch, 3, {side}, {side}), got {dims:?}"
            )));
        }
        let xs = pixel_values.to_device(&self.device)?.to_dtype(self.dtype)?;
        let out = self.vision.forward(&xs)?.to_dtype(DType::F32)?;
        tracing::info!(elapsed_s = started.elapsed().as_secs_f64(), "image encoded");
        Ok(out)
    }

    /// Decoder logits for `ids` in one uncached forward pass over the whole sequence:
    /// (1, ids.len(), vocab) f32. `image_embeds` is `encode_image`'s output.
    pub fn decoder_logits(&self, image_embeds: &Tensor, ids: &[u32]) -> Result<Tensor> {
        let mut state = self.decoder.start(image_embeds)?;
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self
            .decoder
            .forward(&mut state, &input, true)?
            .to_dtype(DType::F32)?)
    }

    /// The decoder's prompt: [DEC] then the prefix's tokens (transformers tokenizes
    /// "[CLS] prefix [SEP]", swaps [CLS] for [DEC] and drops the [SEP]).
    pub fn prompt_ids(&self, prefix: Option<&str>) -> Result<Vec<u32>> {
        let mut ids = vec![self.cfg.bos_token_id];
        if let Some(text) = prefix.filter(|t| !t.trim().is_empty()) {
            let enc = self
                .tokenizer
                .encode(text, false)
                .map_err(|e| Error::bad_input(format!("cannot tokenize the prefix: {e}")))?;
            ids.extend_from_slice(enc.get_ids());
        }
        let max = self.cfg.candle.text_config.max_position_embeddings;
        if ids.len() >= max {
            return Err(Error::bad_input(format!(
                "the caption prefix is {} tokens long; this model reads at most {} in all, \
                 shorten it",
                ids.len() - 1,
                max - 1
            )));
        }
        Ok(ids)
    }

    /// Text for `ids` as transformers' `decode(ids, skip_special_tokens=True)` gives it.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::job_failed(format!("cannot decode caption tokens: {e}")))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.pre
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// Tied LM head: read the word embeddings where transformers would (older files also hold the
/// head's copy, newer ones omit it).
fn head_alias(name: &str, tied: bool) -> String {
    if tied && name == HEAD_WEIGHT {
        WORD_EMBEDDINGS.to_string()
    } else {
        name.to_string()
    }
}

fn load_tokenizer(dir: &Path, vocab_size: usize) -> Result<Tokenizer> {
    let file = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&file).map_err(|e| {
        Error::bad_input(format!(
            "cannot load {}: {e}; a BLIP folder needs the BERT tokenizer.json (download it again)",
            file.display()
        ))
    })?;
    // Prefixes are never truncated by the processor; the length check is ours.
    tokenizer
        .with_truncation(None)
        .map_err(|e| Error::bad_input(format!("{}: {e}", file.display())))?;
    tokenizer.with_padding(None);
    let size = tokenizer.get_vocab_size(true);
    if size > vocab_size {
        return Err(Error::bad_input(format!(
            "{} has {size} tokens but config.json's text_config.vocab_size is {vocab_size}; \
             the tokenizer belongs to another model",
            file.display()
        )));
    }
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captioner_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<BlipCaptioner>();
    }

    #[test]
    fn only_a_tied_head_reads_the_word_embeddings() {
        assert_eq!(head_alias(HEAD_WEIGHT, true), WORD_EMBEDDINGS);
        assert_eq!(head_alias(HEAD_WEIGHT, false), HEAD_WEIGHT);
        let other = "text_decoder.cls.predictions.bias";
        assert_eq!(head_alias(other, true), other);
    }
}
