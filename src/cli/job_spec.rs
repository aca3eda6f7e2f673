//! The job flags as a `JobSpec`: the spec they describe, and laid over a stored or file spec
//! (flags given on the command line win). The domain never sees clap's types.

use crate::jobs::JobSpec;
use crate::vocab::JobKind;

use super::JobArgs;

impl JobArgs {
    /// The spec the flags describe. Without --kind the kind follows the inputs (--audio,
    /// --caption, --mask, --init-image); the runner corrects txt2img to the model's own kind
    /// (a MusicGen model makes music) when the model is resolved.
    pub fn spec(&self) -> JobSpec {
        let kind = if let Some(kind) = self.kind {
            kind
        } else if self.audio.is_some() {
            JobKind::Stt
        } else if self.caption.is_some() {
            JobKind::Caption
        } else if self.mask.is_some() {
            JobKind::Inpaint
        } else if self.init_image.is_some() {
            JobKind::Img2img
        } else {
            JobKind::Txt2img
        };
        let init_image = self.caption.clone().or_else(|| self.init_image.clone());
        JobSpec {
            kind,
            model: self.model.clone().unwrap_or_default(),
            prompt: self.prompt.clone().unwrap_or_default(),
            negative: self.negative.clone().unwrap_or_default(),
            steps: self.steps,
            guidance: self.guidance,
            seed: self.seed,
            width: self.width,
            height: self.height,
            batch: self.batch,
            scheduler: self.scheduler,
            init_image,
            strength: self.strength,
            mask: self.mask.clone(),
            init_latents: self.init_latents.clone(),
            dtype: None,
            attention_slicing: self.attention_slicing.clone(),
            vae_tiling: self.vae_tiling,
            residency: self.residency,
            voice: self.voice.clone(),
            duration: self.duration,
            audio: self.audio.clone(),
            language: self.language.clone(),
            translate: self.translate,
            enhance: self.enhance,
            enhancer: self.enhancer.clone(),
            enhanced_from: None,
            max_tokens: self.max_tokens,
        }
    }

    /// Lays the flags given over `spec` (a stored or file spec): they win.
    pub fn overlay(&self, spec: &mut JobSpec) {
        set(&mut spec.model, self.model.clone());
        set(&mut spec.prompt, self.prompt.clone());
        set(&mut spec.negative, self.negative.clone());
        over(&mut spec.steps, self.steps);
        over(&mut spec.guidance, self.guidance);
        over(&mut spec.seed, self.seed);
        over(&mut spec.width, self.width);
        over(&mut spec.height, self.height);
        over(&mut spec.batch, self.batch);
        over(&mut spec.scheduler, self.scheduler);
        over(&mut spec.init_image, self.init_image.clone());
        over(&mut spec.strength, self.strength);
        over(&mut spec.mask, self.mask.clone());
        over(&mut spec.init_latents, self.init_latents.clone());
        over(&mut spec.attention_slicing, self.attention_slicing.clone());
        over(&mut spec.vae_tiling, self.vae_tiling);
        over(&mut spec.residency, self.residency);
        set(&mut spec.kind, self.kind);
        over(&mut spec.voice, self.voice.clone());
        over(&mut spec.duration, self.duration);
        over(&mut spec.audio, self.audio.clone());
        over(&mut spec.language, self.language.clone());
        spec.translate |= self.translate;
        over(&mut spec.init_image, self.caption.clone());
        spec.enhance |= self.enhance;
        over(&mut spec.enhancer, self.enhancer.clone());
        over(&mut spec.max_tokens, self.max_tokens);
        // A new idea is enhanced again; the stored prompt was the old idea's enhancement.
        if self.prompt.is_some() {
            spec.enhanced_from = None;
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn over<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::output::media_files::Sidecar;
    use crate::jobs::output::png_meta::encode_png;
    use crate::jobs::spec::sources::stored_spec;

    #[test]
    fn kind_follows_the_inputs() {
        let mut args = JobArgs::default();
        assert_eq!(args.spec().kind, JobKind::Txt2img);
        args.init_image = Some("a.png".into());
        assert_eq!(args.spec().kind, JobKind::Img2img);
        args.mask = Some("m.png".into());
        assert_eq!(args.spec().kind, JobKind::Inpaint);
        let mut args = JobArgs {
            audio: Some("talk.wav".into()),
            ..JobArgs::default()
        };
        assert_eq!(args.spec().kind, JobKind::Stt);
        args.audio = None;
        args.caption = Some("photo.png".into());
        let spec = args.spec();
        assert_eq!(spec.kind, JobKind::Caption);
        assert_eq!(spec.init_image, Some("photo.png".into()));
        args.kind = Some(JobKind::Music);
        assert_eq!(args.spec().kind, JobKind::Music);
    }

    fn rerun(path: &std::path::Path, args: &JobArgs) -> crate::Result<JobSpec> {
        let mut spec = stored_spec(path)?;
        args.overlay(&mut spec);
        Ok(spec)
    }

    #[test]
    fn from_image_reads_the_stored_spec_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        let stored = JobSpec {
            model: "m".into(),
            prompt: "stored prompt".into(),
            seed: Some(99),
            steps: Some(30),
            ..JobSpec::default()
        };
        let mut bytes = vec![];
        encode_png(
            &mut bytes,
            &image::RgbImage::new(8, 8),
            &stored,
            &Default::default(),
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let args = JobArgs {
            steps: Some(5),
            ..JobArgs::default()
        };
        let spec = rerun(&path, &args).unwrap();
        assert_eq!(
            (spec.prompt.as_str(), spec.seed, spec.steps),
            ("stored prompt", Some(99), Some(5))
        );
    }

    #[test]
    fn audio_and_text_outputs_rerun_from_their_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("7_lofi.wav");
        std::fs::write(&wav, b"RIFF").unwrap();
        let stored = JobSpec {
            kind: JobKind::Music,
            model: "musicgen-small".into(),
            prompt: "lofi".into(),
            seed: Some(7),
            duration: Some(8.0),
            ..JobSpec::default()
        };
        let car = Sidecar::new(&stored, vec![wav.clone()], &Default::default());
        std::fs::write(dir.path().join("7_lofi.json"), car.to_json()).unwrap();
        let args = JobArgs {
            duration: Some(4.0),
            ..JobArgs::default()
        };
        let spec = rerun(&wav, &args).unwrap();
        assert_eq!(spec.kind, JobKind::Music);
        assert_eq!((spec.seed, spec.duration), (Some(7), Some(4.0)));
        // An enhanced image re-run with a new idea is enhanced again.
        let enhanced = JobSpec {
            prompt: "a detailed fox".into(),
            enhance: true,
            enhanced_from: Some("a fox".into()),
            ..JobSpec::default()
        };
        let json = Sidecar::new(&enhanced, vec![], &Default::default()).to_json();
        let side = dir.path().join("x.json");
        std::fs::write(&side, json).unwrap();
        let same = rerun(&side, &JobArgs::default()).unwrap();
        assert_eq!(same.enhanced_from.as_deref(), Some("a fox"));
        let args = JobArgs {
            prompt: Some("a wolf".into()),
            ..JobArgs::default()
        };
        assert_eq!(rerun(&side, &args).unwrap().enhanced_from, None);
        assert_eq!(
            rerun(&dir.path().join("none.srt"), &args)
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
