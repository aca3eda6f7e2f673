//! The pipeline's components and when they are in memory: all at once (resident) or one stage at a
//! time (staged: text encoders, then the UNet, then the VAE), so a 16 GB machine holds only one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

use super::controlnet::ControlNet;
use super::controlnet::loaded::LoadedNets;
use super::request::LoadOptions;
use super::unet::UNet;
use super::vae::Vae;
use crate::engines::EngineSwitches;
use crate::engines::nn::lora::{Patches, Target};
use crate::engines::nn::text::clip::TextEncoder;
use crate::error::Result;
use crate::vocab::Residency;

/// Lazily loaded networks of one diffusers folder.
pub struct Components {
    dir: PathBuf,
    device: Device,
    dtype: DType,
    vae_dtype: DType,
    fp16_variant: bool,
    residency: Residency,
    sdxl: bool,
    switches: EngineSwitches,
    /// LoRA deltas merged into the networks each time they load.
    patches: Patches,
    text_encoder: Option<TextEncoder>,
    text_encoder_2: Option<TextEncoder>,
    unet: Option<UNet>,
    vae: Option<Vae>,
    /// The last job's ControlNets (in staged mode freed with the UNet).
    controlnets: LoadedNets<ControlNet>,
}

use crate::engines::stage::timed_load as timed;

impl Components {
    pub fn new(opts: &LoadOptions, vae_dtype: DType, sdxl: bool, patches: Patches) -> Self {
        Self {
            dir: opts.model_dir.clone(),
            device: opts.device.clone(),
            dtype: opts.dtype,
            vae_dtype,
            fp16_variant: opts.prefer_fp16_variant,
            residency: opts.residency,
            sdxl,
            switches: opts.switches,
            patches,
            text_encoder: None,
            text_encoder_2: None,
            unet: None,
            vae: None,
            controlnets: LoadedNets::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn residency(&self) -> Residency {
        self.residency
    }

    /// Load everything now (resident mode does this once, at pipeline load).
    pub fn load_all(&mut self) -> Result<()> {
        self.text_encoders()?;
        self.unet()?;
        self.vae()?;
        Ok(())
    }

    /// The text encoder(s): one for SD, two for SDXL.
    pub fn text_encoders(&mut self) -> Result<(&TextEncoder, Option<&TextEncoder>)> {
        if self.text_encoder.is_none() {
            let p = self.path("text_encoder");
            let (device, dtype, v, sw) = (
                self.device.clone(),
                self.dtype,
                self.fp16_variant,
                self.switches,
            );
            let patch = self.patches.get(&Target::TextEncoder);
            self.text_encoder = Some(timed("text_encoder", || {
                TextEncoder::load_patched(&p, &device, dtype, v, sw, patch)
            })?);
        }
        if self.sdxl && self.text_encoder_2.is_none() {
            let p = self.path("text_encoder_2");
            let (device, dtype, v, sw) = (
                self.device.clone(),
                self.dtype,
                self.fp16_variant,
                self.switches,
            );
            let patch = self.patches.get(&Target::TextEncoder2);
            self.text_encoder_2 = Some(timed("text_encoder_2", || {
                TextEncoder::load_patched(&p, &device, dtype, v, sw, patch)
            })?);
        }
        match &self.text_encoder {
            Some(te) => Ok((te, self.text_encoder_2.as_ref())),
            None => Err(crate::Error::job_failed("text encoder failed to load")),
        }
    }

    pub fn unet(&mut self) -> Result<&UNet> {
        if self.unet.is_none() {
            let p = self.path("unet");
            let (device, dtype, v, sw) = (
                self.device.clone(),
                self.dtype,
                self.fp16_variant,
                self.switches,
            );
            let patch = self.patches.get(&Target::Unet);
            self.unet = Some(timed("unet", || {
                UNet::load_patched(&p, &device, dtype, v, sw, patch)
            })?);
        }
        self.unet
            .as_ref()
            .ok_or_else(|| crate::Error::job_failed("UNet failed to load"))
    }

    pub fn vae(&mut self) -> Result<&Vae> {
        if self.vae.is_none() {
            let p = self.path("vae");
            let (device, dtype, v, sw) = (
                self.device.clone(),
                self.vae_dtype,
                self.fp16_variant,
                self.switches,
            );
            self.vae = Some(timed("vae", || Vae::load_with(&p, &device, dtype, v, sw))?);
        }
        self.vae
            .as_ref()
            .ok_or_else(|| crate::Error::job_failed("VAE failed to load"))
    }

    /// Staged mode: free the text encoders once the prompts are encoded.
    pub fn release_text_encoders(&mut self) {
        if self.residency == Residency::Staged {
            self.text_encoder = None;
            self.text_encoder_2 = None;
            crate::logging::log_memory("text encoders released");
        }
    }

    /// The ControlNets in `dirs` (kept from the last job where they are the same; others freed).
    pub fn controlnets(&mut self, dirs: &[&Path], dtype: DType) -> Result<Vec<Arc<ControlNet>>> {
        let (device, switches) = (self.device.clone(), self.switches);
        self.controlnets.get(dirs, dtype, |dir| {
            timed("controlnet", || {
                ControlNet::load(dir, &device, dtype, switches)
            })
        })
    }

    pub fn release_unet(&mut self) {
        if self.residency == Residency::Staged {
            self.unet = None;
            self.controlnets.clear();
            crate::logging::log_memory("unet released");
        }
    }

    pub fn release_vae(&mut self) {
        if self.residency == Residency::Staged {
            self.vae = None;
            crate::logging::log_memory("vae released");
        }
    }

    pub fn vae_dtype(&self) -> DType {
        self.vae_dtype
    }

    /// From now on the VAE runs in f32 (reloaded on next use): the fallback when a half-precision
    /// decode overflows.
    pub fn upcast_vae(&mut self) {
        if self.vae_dtype != DType::F32 {
            self.vae_dtype = DType::F32;
            self.vae = None;
        }
    }
}
