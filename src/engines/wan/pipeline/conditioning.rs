//! The init image of an img2vid job, made into what the transformer is conditioned on, as
//! diffusers' `WanImageToVideoPipeline` does before its loop: Wan 2.2 TI2V's normalised first
//! latent frame (`image_cond::first_frame_condition`); Wan 2.1 I2V's CLIP features
//! (`hidden_states[-2]` of the image as CLIPImageProcessor prepares it) and its extra input
//! channels (`image_cond::channel_condition`); Wan 2.1 FLF2V's (first-last-frame, its image
//! embedder's `pos_embed_seq_len`) the same with the last image too: both images' CLIP
//! features, the last frame in the video encoded and the mask. Staged residency loads the image encoder and the
//! VAE (with its encoder) for their stage and drops them after.

use std::path::Path;

use candle_core::Tensor;

use super::{ImageInput, VideoRequest, WanPipeline, folder};
use crate::engines::nn::text::clip_image::ClipImageProcessor;
use crate::engines::nn::text::clip_vision::{VisionConfig, VisionTower};
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::stage::{check_cancel, stage, timed_load};
use crate::engines::wan::image_cond::{channel_condition, first_frame_condition};
use crate::engines::wan::transformer::WanTransformerConfig;
use crate::error::{Error, Result};

/// Where a Wan 2.1 I2V folder keeps its CLIP preprocessing settings.
pub(super) const PROCESSOR_CONFIG: &str = "image_processor/preprocessor_config.json";

/// What the denoising loop is conditioned on besides the prompt.
pub(super) enum Condition {
    None,
    /// TI2V: the image's normalised latent frame (1, C, 1, h, w).
    FirstFrame(Tensor),
    /// Wan 2.1 I2V: mask and image latents (1, ft + C, F, h, w) and the CLIP features.
    Channels {
        latents: Tensor,
        clip: Option<Tensor>,
    },
}

/// A Wan 2.1 I2V folder's image encoder config (its width the transformer's `image_dim`) and
/// processor config.
pub(super) fn check_image_configs(dir: &Path, t: &WanTransformerConfig) -> Result<()> {
    let Some(width) = t.image_dim else {
        return Ok(());
    };
    let path = dir.join("image_encoder/config.json");
    let vision = VisionConfig::load(&path)?;
    if vision.hidden_size != width {
        return Err(Error::bad_input(format!(
            "{}: the image encoder is {} wide but the transformer's image_dim is {width}; the \
             folder mixes models",
            path.display(),
            vision.hidden_size
        )));
    }
    ClipImageProcessor::load(&dir.join(PROCESSOR_CONFIG))?;
    Ok(())
}

impl WanPipeline {
    /// A last frame for a first-last-frame model (its image embedder's `pos_embed_seq_len`
    /// takes two images), none for the others.
    fn check_last_image(&self, req: &VideoRequest, mode: ImageInput) -> Result<()> {
        let pairs = mode == ImageInput::Channels && self.config.pos_embed_seq_len.is_some();
        if req.last_image.is_some() && req.init_image.is_none() {
            return Err(Error::bad_input(
                "a last frame (--last-image) ends a clip that starts at --init-image: pass both",
            ));
        }
        match (req.last_image.is_some(), pairs) {
            (true, false) => Err(Error::bad_input(format!(
                "{}: {}",
                self.opts.model_dir.display(),
                folder::NO_LAST_FRAME
            ))),
            (false, true) => Err(Error::bad_input(format!(
                "{}: {}",
                self.opts.model_dir.display(),
                folder::NEEDS_LAST_FRAME
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn load_image_encoder(&mut self) -> Result<()> {
        let o = &self.opts;
        if self.image_processor.is_some() && self.image_encoder.is_none() {
            let dir = o.model_dir.join("image_encoder");
            let e = timed_load("image_encoder", || {
                VisionTower::load(&dir, &o.device, o.dtype, o.switches)
            })?;
            self.image_encoder = Some(e);
        }
        Ok(())
    }

    /// The job's init image made into the model's conditioning (none without an image).
    pub(super) fn image_condition(
        &mut self,
        req: &VideoRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Condition> {
        let mode = self.image_input;
        self.check_last_image(req, mode)?;
        let image = match (&req.init_image, mode) {
            (None, ImageInput::Channels) => {
                return Err(Error::bad_input(format!(
                    "{}: this Wan 2.1 image-to-video model makes video from an image: pass \
                     --init-image PATH (img2vid)",
                    self.opts.model_dir.display()
                )));
            }
            (None, _) => return Ok(Condition::None),
            (Some(_), ImageInput::None) => {
                return Err(Error::bad_input(format!(
                    "{}: this Wan model makes text-to-video only; an init image needs an \
                     image-to-video model (Wan 2.2 TI2V, Wan 2.1 I2V)",
                    self.opts.model_dir.display()
                )));
            }
            (Some(image), _) => image,
        };
        // diffusers' video processor: the images resized to the clip (PIL's Lanczos).
        let resized = crate::engines::video::fit_to_clip(image, req.width, req.height);
        let last = req
            .last_image
            .as_ref()
            .map(|last| crate::engines::video::fit_to_clip(last, req.width, req.height));
        let clip = match (&self.image_processor, mode) {
            (Some(_), ImageInput::Channels) => {
                sink.emit(EngineEvent::Loading {
                    stage: "image_encoder".into(),
                });
                self.load_image_encoder()?;
                let features = stage("image_encode", || {
                    let (Some(processor), Some(encoder)) =
                        (&self.image_processor, &self.image_encoder)
                    else {
                        return Err(Error::job_failed(
                            "internal: the image encoder did not load",
                        ));
                    };
                    // FLF2V: both images' features, first then last (`encode_image([image,
                    // last_image])`).
                    let features = [Some(image), req.last_image.as_ref()]
                        .into_iter()
                        .flatten()
                        .map(|img| {
                            encoder.penultimate(&processor.preprocess(img, &self.opts.device)?)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Tensor::cat(&features, 0)?)
                })?;
                if self.staged() {
                    self.image_encoder = None;
                }
                check_cancel(cancel)?;
                Some(features)
            }
            _ => None,
        };
        sink.emit(EngineEvent::Loading {
            stage: "vae".into(),
        });
        let frames = req.frames as usize;
        let latents = stage("vae_encode", || {
            let vae = self.load_vae(true)?;
            match mode {
                ImageInput::FirstFrame => first_frame_condition(vae, &resized),
                _ => channel_condition(vae, (&resized, last.as_ref()), frames),
            }
        })?;
        if self.staged() {
            self.vae = None;
        }
        let latents = latents.to_device(&self.opts.device)?;
        Ok(match mode {
            ImageInput::FirstFrame => Condition::FirstFrame(latents),
            _ => Condition::Channels { latents, clip },
        })
    }
}
