//! Z-Image's networks and when they are in memory: all at once (resident), or one stage at a time
//! (staged: the Qwen3 text encoder, then the transformer, then the VAE), which is how a 16 GB
//! machine runs a 6B transformer beside a 4B text encoder. The transformer may come from a GGUF
//! file (kept quantized, dequantized per layer), Qwen3 from a llama.cpp GGUF (dequantized once
//! at load into the compute dtype).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::transformer::ZImageTransformer;
use crate::engines::EngineSwitches;
use crate::engines::flux::vae_io::{LazyVae, VaeHolder};
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::text::qwen::QwenEncoder;
use crate::engines::nn::text::qwen_config::QwenConfig;
use crate::engines::stage::timed_load as timed;
use crate::error::{Error, Result};
use crate::vocab::Residency;

/// How to load a Z-Image pipeline.
#[derive(Debug, Clone)]
pub struct ZImageLoadOptions {
    /// The diffusers folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/ ...).
    pub model_dir: PathBuf,
    /// The transformer's weights from this GGUF file instead of transformer/.
    pub transformer: Option<PathBuf>,
    /// Qwen3's weights from this llama.cpp GGUF (`--text-encoder-2`) instead of text_encoder/'s
    /// safetensors; the config stays text_encoder/config.json.
    pub text_encoder: Option<PathBuf>,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    pub switches: EngineSwitches,
}

/// Lazily loaded networks of one Z-Image folder.
pub struct ZImageComponents {
    opts: ZImageLoadOptions,
    text: Option<QwenEncoder>,
    transformer: Option<ZImageTransformer>,
    vae: LazyVae,
}

impl ZImageComponents {
    pub fn new(opts: ZImageLoadOptions) -> Self {
        let vae = LazyVae::new(
            opts.model_dir.join("vae"),
            opts.device.clone(),
            opts.dtype,
            opts.switches,
        );
        Self {
            opts,
            text: None,
            transformer: None,
            vae,
        }
    }

    pub fn residency(&self) -> Residency {
        self.opts.residency
    }

    pub fn model_dir(&self) -> &Path {
        &self.opts.model_dir
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.opts.model_dir.join(sub)
    }

    /// Every network, now (resident runs).
    pub fn load_all(&mut self) -> Result<()> {
        self.text_encoder()?;
        self.transformer(AttentionMode::default())?;
        self.vae.vae()?;
        Ok(())
    }

    /// The Qwen3 text encoder, loaded when absent.
    pub fn text_encoder(&mut self) -> Result<&QwenEncoder> {
        if self.text.is_none() {
            let (dir, device, dtype, sw) = (
                self.dir("text_encoder"),
                self.opts.device.clone(),
                self.opts.dtype,
                self.opts.switches,
            );
            let gguf = self.opts.text_encoder.clone();
            self.text = Some(timed("text_encoder", || match gguf {
                Some(file) => {
                    let config = QwenConfig::load(&dir.join("config.json"))?;
                    QwenEncoder::load_gguf(&file, config, &device, dtype)
                }
                None => QwenEncoder::load_with(&dir, &device, dtype, sw),
            })?);
        }
        self.text
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the text encoder is not loaded"))
    }

    /// The transformer, loaded when absent, computing attention as `mode` says.
    pub fn transformer(&mut self, mode: AttentionMode) -> Result<&ZImageTransformer> {
        if self.transformer.is_none() {
            let dir = self.dir("transformer");
            let (device, dtype, sw) = (
                self.opts.device.clone(),
                self.opts.dtype,
                self.opts.switches,
            );
            let file = self.opts.transformer.clone();
            self.transformer = Some(timed("transformer", || {
                ZImageTransformer::load(&dir, file.as_deref(), &device, dtype, sw)
            })?);
        }
        let transformer = self
            .transformer
            .as_mut()
            .ok_or_else(|| Error::job_failed("internal: the transformer is not loaded"))?;
        transformer.set_attention_mode(mode);
        Ok(transformer)
    }

    /// The VAE, loaded when first used.
    pub fn vae(&mut self) -> &mut LazyVae {
        &mut self.vae
    }

    fn staged(&self) -> bool {
        self.opts.residency == Residency::Staged
    }

    pub fn release_text_encoder(&mut self) {
        if self.staged() {
            self.text = None;
        }
    }

    pub fn release_transformer(&mut self) {
        if self.staged() {
            self.transformer = None;
        }
    }

    pub fn release_vae(&mut self) {
        if self.staged() {
            self.vae.release();
        }
    }
}
