//! SD 3.5's networks and when they are in memory: all at once (resident), or one stage at a time
//! (staged: the three text encoders, then the transformer, then the VAE). The transformer may come
//! from a GGUF file and T5 from a GGUF or not at all (`--no-t5`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::transformer::Sd3Transformer;
use crate::engines::EngineSwitches;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::text::clip::TextEncoder;
use crate::engines::nn::text::t5_text::{T5Source, T5Text};
use crate::engines::sd::vae::Vae;
use crate::engines::stage::timed_load as timed;
use crate::error::{Error, Result};
use crate::vocab::Residency;

/// How to load an SD 3.5 pipeline.
#[derive(Debug, Clone)]
pub struct Sd3LoadOptions {
    /// The diffusers folder (model_index.json, transformer/, vae/, text_encoder(_2,_3)/ ...).
    pub model_dir: PathBuf,
    /// The transformer's weights from this GGUF instead of transformer/.
    pub transformer: Option<PathBuf>,
    /// T5's weights from this GGUF instead of text_encoder_3/.
    pub text_encoder_3: Option<PathBuf>,
    /// Leave T5 out (zeros in its place, as diffusers with text_encoder_3=None).
    pub no_t5: bool,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    pub switches: EngineSwitches,
}

/// The text encoders, borrowed together.
pub struct TextEncoders<'a> {
    pub clip_l: &'a TextEncoder,
    pub clip_g: &'a TextEncoder,
    pub t5: Option<&'a T5Text>,
}

/// Lazily loaded networks of one SD 3.5 folder.
pub struct Sd3Components {
    opts: Sd3LoadOptions,
    clip_l: Option<TextEncoder>,
    clip_g: Option<TextEncoder>,
    t5: Option<T5Text>,
    transformer: Option<Sd3Transformer>,
    vae: Option<Vae>,
    vae_dtype: DType,
}

fn internal(what: &str) -> Error {
    Error::job_failed(format!("internal: {what} not loaded"))
}

impl Sd3Components {
    pub fn new(opts: Sd3LoadOptions) -> Self {
        let vae_dtype = opts.dtype;
        Self {
            opts,
            clip_l: None,
            clip_g: None,
            t5: None,
            transformer: None,
            vae: None,
            vae_dtype,
        }
    }

    pub fn residency(&self) -> Residency {
        self.opts.residency
    }

    pub fn model_dir(&self) -> &Path {
        &self.opts.model_dir
    }

    pub fn uses_t5(&self) -> bool {
        !self.opts.no_t5
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.opts.model_dir.join(sub)
    }

    /// Every network, now (resident runs).
    pub fn load_all(&mut self) -> Result<()> {
        self.text_encoders()?;
        self.transformer(AttentionMode::default())?;
        self.vae()?;
        Ok(())
    }

    fn load_clip(&self, sub: &'static str) -> Result<TextEncoder> {
        let dir = self.dir(sub);
        let (device, dtype, sw) = (&self.opts.device, self.opts.dtype, self.opts.switches);
        timed(sub, || {
            TextEncoder::load_with(&dir, device, dtype, dtype != DType::F32, sw)
        })
    }

    /// CLIP-L, CLIP-G and (unless `--no-t5`) T5, loaded when absent.
    pub fn text_encoders(&mut self) -> Result<TextEncoders<'_>> {
        if self.clip_l.is_none() {
            self.clip_l = Some(self.load_clip("text_encoder")?);
        }
        if self.clip_g.is_none() {
            self.clip_g = Some(self.load_clip("text_encoder_2")?);
        }
        if self.t5.is_none() && !self.opts.no_t5 {
            let t5 = timed("text_encoder_3", || self.load_t5())?;
            self.t5 = Some(t5);
        }
        Ok(TextEncoders {
            clip_l: self.clip_l.as_ref().ok_or_else(|| internal("CLIP-L"))?,
            clip_g: self.clip_g.as_ref().ok_or_else(|| internal("CLIP-G"))?,
            t5: self.t5.as_ref(),
        })
    }

    fn load_t5(&self) -> Result<T5Text> {
        T5Text::load(T5Source {
            dir: &self.dir("text_encoder_3"),
            gguf: self.opts.text_encoder_3.as_deref(),
            device: &self.opts.device,
            dtype: self.opts.dtype,
            fp16_variant: self.opts.dtype != DType::F32,
            switches: self.opts.switches,
        })
    }

    /// The transformer, loaded when absent, computing attention as `mode` says.
    pub fn transformer(&mut self, mode: AttentionMode) -> Result<&Sd3Transformer> {
        if self.transformer.is_none() {
            let dir = self.dir("transformer");
            let o = &self.opts;
            let file = o.transformer.as_deref();
            let t = timed("transformer", || {
                Sd3Transformer::load(&dir, file, &o.device, o.dtype, o.switches)
            })?;
            self.transformer = Some(t);
        }
        let transformer = self
            .transformer
            .as_mut()
            .ok_or_else(|| internal("transformer"))?;
        transformer.set_attention_mode(mode);
        Ok(transformer)
    }

    pub fn vae(&mut self) -> Result<&Vae> {
        if self.vae.is_none() {
            let dir = self.dir("vae");
            let (device, dtype, sw) = (&self.opts.device, self.vae_dtype, self.opts.switches);
            let vae = timed("vae", || {
                Vae::load_with(&dir, device, dtype, dtype != DType::F32, sw)
            })?;
            self.vae = Some(vae);
        }
        self.vae.as_ref().ok_or_else(|| internal("VAE"))
    }

    pub fn vae_dtype(&self) -> DType {
        self.vae_dtype
    }

    /// Decodes in f32 from now on (a half-precision decode overflowed).
    pub fn upcast_vae(&mut self) {
        if self.vae_dtype != DType::F32 {
            self.vae_dtype = DType::F32;
            self.vae = None;
        }
    }

    fn staged(&self) -> bool {
        self.opts.residency == Residency::Staged
    }

    pub fn release_text_encoders(&mut self) {
        if self.staged() {
            self.clip_l = None;
            self.clip_g = None;
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
            self.vae = None;
        }
    }
}
