//! The one merge of job values: a newer `JobOverrides` laid over an older one (flags over a job
//! file's keys, a job file's keys over the flags they share, flags over a stored output's spec,
//! the TUI form over the command line). Also what the inputs say about the kind, and a job file's
//! relative paths.

use std::path::{Path, PathBuf};

use super::overrides::JobOverrides;
use crate::vocab::JobKind;

fn over<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

impl JobOverrides {
    /// Lays `newer` over `self`: every value it gives wins. An input that implies a kind
    /// (--audio, --caption) without --kind lets the inputs decide it again, and a new prompt
    /// is enhanced again rather than keeping the stored enhancement.
    pub fn merge(&mut self, newer: JobOverrides) {
        let JobOverrides {
            model,
            prompt,
            negative,
            steps,
            guidance,
            seed,
            scheduler,
            kind,
            width,
            height,
            batch,
            init_image,
            strength,
            mask,
            init_latents,
            voice,
            duration,
            audio,
            language,
            translate,
            caption,
            enhance,
            enhancer,
            max_tokens,
            max_sequence_length,
            true_cfg,
            transformer,
            text_encoder_2,
            no_t5,
            lora,
            controlnet,
            control_image,
            control_scale,
            control_start,
            control_end,
            control_preprocess,
            canny_low,
            canny_high,
            attention_slicing,
            vae_tiling,
            residency,
            image,
            scale,
            upscale,
            upscaler,
            tile,
            frames,
            fps,
            save_frames,
            last_image,
            decode_timestep,
            decode_noise_scale,
            dtype,
            enhanced_from,
        } = newer;
        if kind.is_some() {
            self.kind = kind;
        } else if audio.is_some() || caption.is_some() || image.is_some() {
            self.kind = None;
        }
        if prompt.is_some() {
            self.enhanced_from = None;
        }
        over(&mut self.model, model);
        over(&mut self.prompt, prompt);
        over(&mut self.negative, negative);
        over(&mut self.steps, steps);
        over(&mut self.guidance, guidance);
        over(&mut self.seed, seed);
        over(&mut self.scheduler, scheduler);
        over(&mut self.width, width);
        over(&mut self.height, height);
        over(&mut self.batch, batch);
        over(&mut self.init_image, init_image);
        over(&mut self.strength, strength);
        over(&mut self.mask, mask);
        over(&mut self.init_latents, init_latents);
        over(&mut self.voice, voice);
        over(&mut self.duration, duration);
        over(&mut self.audio, audio);
        over(&mut self.language, language);
        over(&mut self.translate, translate);
        over(&mut self.caption, caption);
        over(&mut self.enhance, enhance);
        over(&mut self.enhancer, enhancer);
        over(&mut self.max_tokens, max_tokens);
        over(&mut self.max_sequence_length, max_sequence_length);
        over(&mut self.true_cfg, true_cfg);
        over(&mut self.transformer, transformer);
        over(&mut self.text_encoder_2, text_encoder_2);
        over(&mut self.no_t5, no_t5);
        over(&mut self.lora, lora);
        over(&mut self.controlnet, controlnet);
        over(&mut self.control_image, control_image);
        over(&mut self.control_scale, control_scale);
        over(&mut self.control_start, control_start);
        over(&mut self.control_end, control_end);
        over(&mut self.control_preprocess, control_preprocess);
        over(&mut self.canny_low, canny_low);
        over(&mut self.canny_high, canny_high);
        over(&mut self.attention_slicing, attention_slicing);
        over(&mut self.vae_tiling, vae_tiling);
        over(&mut self.residency, residency);
        over(&mut self.image, image);
        over(&mut self.scale, scale);
        over(&mut self.upscale, upscale);
        over(&mut self.upscaler, upscaler);
        over(&mut self.tile, tile);
        over(&mut self.frames, frames);
        over(&mut self.fps, fps);
        over(&mut self.save_frames, save_frames);
        over(&mut self.last_image, last_image);
        over(&mut self.decode_timestep, decode_timestep);
        over(&mut self.decode_noise_scale, decode_noise_scale);
        over(&mut self.dtype, dtype);
        over(&mut self.enhanced_from, enhanced_from);
    }

    /// `self` with `newer` laid over it (see `merge`).
    pub fn merged(mut self, newer: JobOverrides) -> Self {
        self.merge(newer);
        self
    }

    /// The kind asked for, else the one the inputs imply: --audio transcribes, --caption
    /// captions, --mask inpaints, --init-image is img2img; otherwise txt2img (corrected to the
    /// model's own kind once the model is known: a MusicGen model makes music).
    pub fn kind_asked(&self) -> JobKind {
        if let Some(kind) = self.kind {
            kind
        } else if self.audio.is_some() {
            JobKind::Stt
        } else if self.caption.is_some() {
            JobKind::Caption
        } else if self.image.is_some() {
            JobKind::Upscale
        } else if self.mask.is_some() {
            JobKind::Inpaint
        } else if self.init_image.is_some() {
            JobKind::Img2img
        } else {
            JobKind::Txt2img
        }
    }

    /// The image a job reads: the one to caption, else the init image.
    pub fn image_input(&self) -> Option<&Path> {
        self.caption
            .as_deref()
            .or(self.image.as_deref())
            .or(self.init_image.as_deref())
    }

    /// Paths taken from `dir` (a job file's folder) where relative, like a model folder that
    /// exists there; registry ids stay as they are.
    pub fn relative_to(mut self, dir: &Path) -> Self {
        let from = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        for path in [
            &mut self.init_image,
            &mut self.last_image,
            &mut self.mask,
            &mut self.init_latents,
            &mut self.audio,
            &mut self.caption,
            &mut self.image,
        ] {
            *path = path.take().map(from);
        }
        if let Some(images) = self.control_image.take() {
            self.control_image = Some(images.into_iter().map(from).collect());
        }
        let nets = self.controlnet.iter_mut().flatten();
        for model in [&mut self.model, &mut self.upscaler]
            .into_iter()
            .flatten()
            .chain(nets)
        {
            let local = dir.join(&*model);
            // A folder, or an upscaler's weight file.
            if Path::new(model.as_str()).is_relative() && (local.is_dir() || local.is_file()) {
                *model = local.to_string_lossy().into_owned();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_file_control_paths_are_taken_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let o = JobOverrides {
            controlnet: Some(vec!["net".into(), "org/canny".into()]),
            control_image: Some(vec!["edges.png".into()]),
            ..JobOverrides::default()
        }
        .relative_to(dir.path());
        let net = dir.path().join("net").to_string_lossy().into_owned();
        assert_eq!(o.controlnet, Some(vec![net, "org/canny".into()]));
        assert_eq!(o.control_image, Some(vec![dir.path().join("edges.png")]));
    }

    #[test]
    fn newer_values_win_and_absent_ones_keep_the_older() {
        let mut base = JobOverrides {
            model: Some("sd15".into()),
            steps: Some(30),
            seed: Some(1),
            translate: Some(true),
            ..JobOverrides::default()
        };
        base.merge(JobOverrides {
            steps: Some(5),
            translate: Some(false),
            ..JobOverrides::default()
        });
        assert_eq!(base.model.as_deref(), Some("sd15"));
        assert_eq!((base.steps, base.seed), (Some(5), Some(1)));
        assert_eq!(base.translate, Some(false));
    }

    #[test]
    fn inputs_imply_the_kind_unless_one_is_asked() {
        let mut o = JobOverrides::default();
        assert_eq!(o.kind_asked(), JobKind::Txt2img);
        o.init_image = Some("a.png".into());
        assert_eq!(o.kind_asked(), JobKind::Img2img);
        o.mask = Some("m.png".into());
        assert_eq!(o.kind_asked(), JobKind::Inpaint);
        o.caption = Some("c.png".into());
        assert_eq!(o.kind_asked(), JobKind::Caption);
        o.audio = Some("a.wav".into());
        assert_eq!(o.kind_asked(), JobKind::Stt);
        o.kind = Some(JobKind::Music);
        assert_eq!(o.kind_asked(), JobKind::Music);
        // A job file's --audio over flags that asked for music: the input decides again.
        let mut music = JobOverrides {
            kind: Some(JobKind::Music),
            ..JobOverrides::default()
        };
        music.merge(JobOverrides {
            audio: Some("talk.wav".into()),
            ..JobOverrides::default()
        });
        assert_eq!(music.kind_asked(), JobKind::Stt);
    }

    #[test]
    fn a_new_prompt_is_enhanced_again() {
        let stored = JobOverrides {
            prompt: Some("a detailed fox".into()),
            enhance: Some(true),
            enhanced_from: Some("a fox".into()),
            ..JobOverrides::default()
        };
        let same = stored.clone().merged(JobOverrides::default());
        assert_eq!(same.enhanced_from.as_deref(), Some("a fox"));
        let new = stored.merged(JobOverrides {
            prompt: Some("a wolf".into()),
            ..JobOverrides::default()
        });
        assert_eq!(new.enhanced_from, None);
    }

    #[test]
    fn job_file_paths_are_taken_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mymodel")).unwrap();
        let o = JobOverrides {
            model: Some("mymodel".into()),
            init_image: Some("in.png".into()),
            last_image: Some("last.png".into()),
            audio: Some("/abs/a.wav".into()),
            ..JobOverrides::default()
        }
        .relative_to(dir.path());
        assert_eq!(o.init_image, Some(dir.path().join("in.png")));
        assert_eq!(o.last_image, Some(dir.path().join("last.png")));
        assert_eq!(o.audio, Some("/abs/a.wav".into()));
        assert_eq!(
            o.model,
            Some(dir.path().join("mymodel").display().to_string())
        );
        let registry = JobOverrides {
            model: Some("sd15".into()),
            ..JobOverrides::default()
        }
        .relative_to(dir.path());
        assert_eq!(registry.model.as_deref(), Some("sd15"));
    }
}
