//! FLUX's networks and when they are in memory: all at once (resident), or one stage at a time
//! (staged: CLIP and T5, then the transformer, then the VAE), which is how a 16 GB machine runs
//! a model whose parts together do not fit. The transformer and T5 may come from GGUF files.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::transformer::FluxTransformer;
use super::vae_io::{LazyVae, VaeHolder};
use crate::engines::EngineSwitches;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::text::clip::TextEncoder;
use crate::engines::nn::text::t5_text::{T5Source, T5Text};
use crate::error::Result;
use crate::vocab::Residency;

/// How to load a FLUX pipeline.
#[derive(Debug, Clone)]
pub struct FluxLoadOptions {
    /// The diffusers folder (model_index.json, transformer/, vae/, text_encoder(_2)/ ...).
    pub model_dir: PathBuf,
    /// The transformer's weights from this GGUF or safetensors file instead of transformer/.
    pub transformer: Option<PathBuf>,
    /// T5's weights from this GGUF instead of text_encoder_2/.
    pub text_encoder_2: Option<PathBuf>,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    pub switches: EngineSwitches,
    /// LoRAs merged into the transformer and CLIP at load (the dense transformer/ only).
    pub loras: Vec<crate::engines::nn::lora::LoraSpec>,
}

/// Lazily loaded networks of one FLUX folder.
pub struct FluxComponents {
    opts: FluxLoadOptions,
    /// LoRA deltas merged into the networks each time they load.
    patches: Patches,
    clip: Option<TextEncoder>,
    t5: Option<T5Text>,
    transformer: Option<FluxTransformer>,
    vae: LazyVae,
}

use crate::engines::nn::lora::{Patches, Target};
use crate::engines::stage::timed_load as timed;

impl FluxComponents {
    pub fn new(opts: FluxLoadOptions, patches: Patches) -> Self {
        let vae = LazyVae::new(
            opts.model_dir.join("vae"),
            opts.device.clone(),
            opts.dtype,
            opts.switches,
        );
        Self {
            opts,
            patches,
            clip: None,
            t5: None,
            transformer: None,
            vae,
        }
    }

    pub fn residency(&self) -> Residency {
        self.opts.residency
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.opts.model_dir.join(sub)
    }

    fn fp16_variant(&self) -> bool {
        self.opts.dtype != DType::F32
    }

    /// Every network, now (resident runs).
    pub fn load_all(&mut self) -> Result<()> {
        self.text_encoders()?;
        self.transformer(AttentionMode::default())?;
        self.vae.vae()?;
        Ok(())
    }

    /// CLIP-L (pooled output) and T5, loaded when absent.
    pub fn text_encoders(&mut self) -> Result<(&TextEncoder, &T5Text)> {
        if self.clip.is_none() {
            let (dir, device, dtype, fp16, sw) = (
                self.dir("text_encoder"),
                self.opts.device.clone(),
                self.opts.dtype,
                self.fp16_variant(),
                self.opts.switches,
            );
            let patch = self.patches.get(&Target::TextEncoder);
            self.clip = Some(timed("text_encoder", || {
                TextEncoder::load_patched(&dir, &device, dtype, fp16, sw, patch)
            })?);
        }
        if self.t5.is_none() {
            let t5 = timed("text_encoder_2", || self.load_t5())?;
            self.t5 = Some(t5);
        }
        match (&self.clip, &self.t5) {
            (Some(clip), Some(t5)) => Ok((clip, t5)),
            _ => Err(crate::Error::job_failed(
                "internal: text encoders not loaded",
            )),
        }
    }

    fn load_t5(&self) -> Result<T5Text> {
        T5Text::load(T5Source {
            dir: &self.dir("text_encoder_2"),
            gguf: self.opts.text_encoder_2.as_deref(),
            device: &self.opts.device,
            dtype: self.opts.dtype,
            fp16_variant: self.fp16_variant(),
            switches: self.opts.switches,
        })
    }

    /// The transformer, loaded when absent, computing attention as `mode` says.
    pub fn transformer(&mut self, mode: AttentionMode) -> Result<&FluxTransformer> {
        if self.transformer.is_none() {
            let dir = self.dir("transformer");
            let (device, dtype, sw) = (
                self.opts.device.clone(),
                self.opts.dtype,
                self.opts.switches,
            );
            let file = self.opts.transformer.clone();
            let patch = self.patches.get(&Target::Transformer);
            self.transformer = Some(timed("transformer", || {
                FluxTransformer::load(&dir, file.as_deref(), &device, dtype, sw, patch)
            })?);
        }
        let transformer = self
            .transformer
            .as_mut()
            .ok_or_else(|| crate::Error::job_failed("internal: transformer not loaded"))?;
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

    pub fn release_text_encoders(&mut self) {
        if self.staged() {
            self.clip = None;
            self.t5 = None;
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

    pub fn model_dir(&self) -> &Path {
        &self.opts.model_dir
    }
}
