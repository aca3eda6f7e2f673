//! A job from what the user asks to what runs: `JobOverrides` (every value optional, from flags,
//! job files, the TUI form or a stored output; laid over each other by `merge`) is checked and
//! filled once its model is known (`resolve` for image jobs, `media` for audio and text) into a
//! `JobSpec`: the common fields and one family's typed `Params`. The `JobSpec` is what the queue
//! stores, the engine gets and every output records.

pub mod controlnet;
pub mod flow;
pub mod latents_file;
mod legacy;
pub mod lora;
pub mod media;
pub mod merge;
pub mod model_check;
pub mod overrides;
pub mod params;
pub mod resolve;
pub mod sources;
pub mod upscale;
pub mod video;

use serde::{Deserialize, Serialize};

use crate::vocab::{DtypeChoice, JobKind};
pub use overrides::JobOverrides;
pub use params::{
    CaptionParams, EnhanceParams, Enhancement, ImageParams, MusicParams, Params, SpeechParams,
    TranscribeParams, UpscaleParams, UpscaleStep, VideoParams,
};

/// A prepared job: checked, every default filled in, a random seed recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    pub kind: JobKind,
    /// Registry id or an absolute model folder.
    pub model: String,
    pub prompt: String,
    /// The seed used (absent where a job draws nothing: transcripts, captions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// This job's own dtype; absent: the run's --dtype.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DtypeChoice>,
    pub params: Params,
}

impl Default for JobSpec {
    /// A txt2img job with the image defaults (tests build on it).
    fn default() -> Self {
        Self {
            kind: JobKind::Txt2img,
            model: String::new(),
            prompt: String::new(),
            seed: None,
            dtype: None,
            params: Params::Image(ImageParams::default()),
        }
    }
}

impl JobSpec {
    /// An image job's parameters.
    pub fn image(&self) -> Option<&ImageParams> {
        match &self.params {
            Params::Image(p) => Some(p),
            _ => None,
        }
    }

    pub fn image_mut(&mut self) -> Option<&mut ImageParams> {
        match &mut self.params {
            Params::Image(p) => Some(p),
            _ => None,
        }
    }

    /// A video job's parameters.
    pub fn video(&self) -> Option<&VideoParams> {
        match &self.params {
            Params::Video(p) => Some(p),
            _ => None,
        }
    }

    /// Outputs the job makes at once.
    pub fn batch(&self) -> u32 {
        match &self.params {
            Params::Image(p) => p.batch,
            Params::Speech(p) => p.batch,
            Params::Music(p) => p.batch,
            _ => 1,
        }
    }

    /// Seconds of audio asked for (speech: the most it may run).
    pub fn duration(&self) -> Option<f64> {
        match &self.params {
            Params::Speech(p) => Some(p.duration),
            Params::Music(p) => Some(p.duration),
            _ => None,
        }
    }

    /// The guidance scale, where the family has one.
    pub fn guidance(&self) -> Option<f64> {
        match &self.params {
            Params::Image(p) => Some(p.guidance),
            Params::Video(p) => Some(p.guidance),
            Params::Music(p) => Some(p.guidance),
            _ => None,
        }
    }

    /// The job as asked again (`--from-image`, editing a queued job): every stored value as an
    /// override, so flags laid over it win and the rest stays as it ran.
    pub fn to_overrides(&self) -> JobOverrides {
        let mut o = JobOverrides {
            kind: Some(self.kind),
            model: Some(self.model.clone()),
            prompt: Some(self.prompt.clone()),
            seed: self.seed,
            dtype: self.dtype,
            ..JobOverrides::default()
        };
        match &self.params {
            Params::Image(p) => {
                o.negative = Some(p.negative.clone());
                o.steps = Some(p.steps);
                o.guidance = Some(p.guidance);
                o.width = Some(p.width);
                o.height = Some(p.height);
                o.batch = Some(p.batch);
                o.scheduler = Some(p.scheduler);
                o.strength = Some(p.strength);
                o.init_image.clone_from(&p.init_image);
                o.mask.clone_from(&p.mask);
                o.init_latents.clone_from(&p.init_latents);
                o.max_sequence_length = p.max_sequence_length;
                o.true_cfg = p.true_cfg;
                o.transformer.clone_from(&p.transformer);
                o.text_encoder_2.clone_from(&p.text_encoder_2);
                o.no_t5 = p.no_t5.then_some(true);
                o.lora = (!p.loras.is_empty())
                    .then(|| p.loras.iter().map(lora::LoraRef::flag_value).collect());
                controlnet::to_overrides(&p.controlnets, &mut o);
                o.attention_slicing = p.attention_slicing;
                o.vae_tiling = p.vae_tiling;
                o.residency = p.residency;
                if let Some(u) = &p.upscale {
                    o.upscale = Some(u.scale);
                    o.upscaler = Some(u.model.clone());
                    o.tile = u.tile;
                }
                if let Some(e) = &p.enhance {
                    o.enhance = Some(true);
                    o.enhancer = Some(e.enhancer.clone());
                    o.enhanced_from.clone_from(&e.from);
                    o.max_tokens = e.max_tokens;
                }
            }
            Params::Speech(p) => {
                o.voice = Some(p.voice.clone());
                o.duration = Some(p.duration);
                o.batch = Some(p.batch);
            }
            Params::Music(p) => {
                o.duration = Some(p.duration);
                o.guidance = Some(p.guidance);
                o.batch = Some(p.batch);
            }
            Params::Transcribe(p) => {
                o.audio = Some(p.audio.clone());
                o.language.clone_from(&p.language);
                o.translate = Some(p.translate);
                o.max_tokens = p.max_tokens;
            }
            Params::Caption(p) => {
                o.caption = Some(p.image.clone());
                o.max_tokens = Some(p.max_tokens);
            }
            Params::Enhance(p) => o.max_tokens = Some(p.max_tokens),
            Params::Upscale(p) => {
                o.image = Some(p.image.clone());
                o.scale = Some(p.scale);
                o.tile = p.tile;
            }
            Params::Video(p) => {
                o.negative = Some(p.negative.clone());
                o.steps = Some(p.steps);
                o.guidance = Some(p.guidance);
                o.width = Some(p.width);
                o.height = Some(p.height);
                o.frames = Some(p.frames);
                o.fps = Some(p.fps);
                o.save_frames = p.save_frames.then_some(true);
                o.init_image.clone_from(&p.init_image);
                o.last_image.clone_from(&p.last_image);
                o.decode_timestep = p.decode_timestep;
                o.decode_noise_scale = p.decode_noise_scale;
                o.init_latents.clone_from(&p.init_latents);
                o.max_sequence_length = p.max_sequence_length;
                o.vae_tiling = p.vae_tiling;
                o.residency = p.residency;
                o.text_encoder_2.clone_from(&p.text_encoder_2);
            }
        }
        o
    }
}

/// Today's shape, read as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    kind: JobKind,
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    dtype: Option<DtypeChoice>,
    params: Params,
}

impl<'de> Deserialize<'de> for JobSpec {
    /// Today's shape, or the flat one that releases before the family parameters wrote (queue
    /// rows before the migration, PNGs and sidecars of earlier outputs).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        if value.get("params").is_some() {
            let s = Stored::deserialize(value).map_err(D::Error::custom)?;
            let spec = JobSpec {
                kind: s.kind,
                model: s.model,
                prompt: s.prompt,
                seed: s.seed,
                dtype: s.dtype,
                params: s.params,
            };
            spec.check_family().map_err(D::Error::custom)?;
            Ok(spec)
        } else {
            legacy::from_flat(value).map_err(D::Error::custom)
        }
    }
}

impl JobSpec {
    /// The parameters belong to the kind's family.
    fn check_family(&self) -> Result<(), String> {
        let fits = matches!(
            (self.kind, &self.params),
            (
                JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint,
                Params::Image(_)
            ) | (JobKind::Tts, Params::Speech(_))
                | (JobKind::Music, Params::Music(_))
                | (JobKind::Stt, Params::Transcribe(_))
                | (JobKind::Caption, Params::Caption(_))
                | (JobKind::Enhance, Params::Enhance(_))
                | (JobKind::Upscale, Params::Upscale(_))
                | (JobKind::Txt2vid | JobKind::Img2vid, Params::Video(_))
        );
        if fits {
            Ok(())
        } else {
            Err(format!(
                "a {} job stored with another family's parameters",
                self.kind.as_str()
            ))
        }
    }
}

#[cfg(test)]
mod tests;
