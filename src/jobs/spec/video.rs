//! Video jobs (`--kind txt2vid|img2vid`, `--frames N`, `--fps N`, `--save-frames`): filled from
//! the model's defaults and checked before anything is queued. Wan makes 4n+1 frames (its VAE
//! compresses time by 4, keeping the first frame) at sizes in multiples of 16 (8x VAE, 2x2
//! patches).

use crate::jobs::spec::resolve::{
    MAX_GUIDANCE, MAX_SEQUENCE, MIN_SEQUENCE, absolute, check_side, check_steps,
};
use crate::jobs::spec::{JobOverrides, JobSpec, Params, VideoParams};
use crate::models::{Defaults, Kind};
use crate::vocab::JobKind;

/// The most frames a clip may have (30 s at Wan's 16 fps).
pub const MAX_FRAMES: u32 = 481;
/// The highest frame rate an MP4 is written at.
pub const MAX_FPS: u32 = 240;
/// Frames per latent frame after the first (Wan's temporal compression).
pub const TEMPORAL: u32 = 4;
/// Pixel sides are multiples of this (VAE 8 x patch 2).
pub const SIDE_MULTIPLE: u32 = 16;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// Latent frames of a clip of `frames` frames.
pub fn latent_frames(frames: u32) -> usize {
    ((frames - 1) / TEMPORAL + 1) as usize
}

/// `--frames`: 4n+1 from 1 to MAX_FRAMES.
pub fn check_frames(frames: u32) -> crate::Result<()> {
    if frames == 0 || frames > MAX_FRAMES {
        return Err(bad(format!(
            "--frames {frames}: must be between 1 and {MAX_FRAMES} (4n+1, e.g. 33 or 81)"
        )));
    }
    if !(frames - 1).is_multiple_of(TEMPORAL) {
        let down = (frames - 1) / TEMPORAL * TEMPORAL + 1;
        return Err(bad(format!(
            "--frames {frames}: Wan makes 4n+1 frames (its VAE packs 4 frames a latent after the \
             first); try {down} or {}",
            down + TEMPORAL
        )));
    }
    Ok(())
}

/// `--fps`: 1 to MAX_FPS.
pub fn check_fps(fps: u32) -> crate::Result<()> {
    if fps == 0 || fps > MAX_FPS {
        return Err(bad(format!("--fps {fps}: must be between 1 and {MAX_FPS}")));
    }
    Ok(())
}

fn check_video_side(flag: &str, value: u32) -> crate::Result<()> {
    check_side(flag, value)?;
    if !value.is_multiple_of(SIDE_MULTIPLE) {
        let down = value / SIDE_MULTIPLE * SIDE_MULTIPLE;
        return Err(bad(format!(
            "{flag} {value}: Wan video sides are multiples of {SIDE_MULTIPLE} (8x VAE, 2x2 \
             patches); try {down}"
        )));
    }
    Ok(())
}

/// Flags of image, audio and upscale jobs that a video job does not take.
fn refuse_stray_flags(asked: &JobOverrides) -> crate::Result<()> {
    let stray = [
        ("--mask", asked.mask.is_some()),
        ("--strength", asked.strength.is_some()),
        ("--batch", asked.batch.is_some_and(|b| b != 1)),
        ("--lora", asked.lora.is_some()),
        ("--controlnet", asked.controlnet.is_some()),
        ("--true-cfg", asked.true_cfg.is_some()),
        ("--transformer", asked.transformer.is_some()),
        ("--no-t5", asked.no_t5.is_some()),
        ("--upscale", asked.upscale.is_some()),
        ("--image", asked.image.is_some()),
        ("--scale", asked.scale.is_some()),
        ("--enhance", asked.enhance == Some(true)),
        ("--audio", asked.audio.is_some()),
        ("--caption", asked.caption.is_some()),
        ("--voice", asked.voice.is_some()),
        ("--duration", asked.duration.is_some()),
    ];
    match stray.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(bad(format!(
            "{flag} does not apply to video jobs (txt2vid, img2vid)"
        ))),
        None => Ok(()),
    }
}

/// Video flags on a job that is not a video job.
pub fn refuse_video_flags(asked: &JobOverrides, kind: JobKind) -> crate::Result<()> {
    let given = [
        ("--frames", asked.frames.is_some()),
        ("--fps", asked.fps.is_some()),
        ("--save-frames", asked.save_frames == Some(true)),
    ];
    match given.iter().find(|(_, g)| *g) {
        Some((flag, _)) => Err(bad(format!(
            "{flag} is for video jobs (--kind txt2vid with a video model such as Wan); this is \
             a {} job",
            kind.as_str()
        ))),
        None => Ok(()),
    }
}

/// Fills and checks a video job (its kind already settled) on a model of `model_kind`.
pub fn fill_video_spec(
    asked: &JobOverrides,
    kind: JobKind,
    model_kind: Kind,
    defaults: &Defaults,
) -> crate::Result<JobSpec> {
    let model = asked.model.clone().unwrap_or_default();
    refuse_stray_flags(asked)?;
    if model_kind == Kind::Txt2vid && (kind == JobKind::Img2vid || asked.init_image.is_some()) {
        return Err(bad(format!(
            "model `{model}` is text-to-video only: it takes no --init-image (img2vid needs an \
             image-to-video model such as Wan 2.2 TI2V); drop --init-image for txt2vid"
        )));
    }
    if kind == JobKind::Txt2vid && asked.init_image.is_some() {
        return Err(bad(
            "--init-image makes an img2vid job (its first frame); drop --kind txt2vid or the \
             image",
        ));
    }
    if kind == JobKind::Img2vid && asked.init_image.is_none() {
        return Err(bad(
            "an img2vid job needs its first frame: pass --init-image PATH",
        ));
    }
    let steps = asked.steps.unwrap_or(defaults.steps);
    check_steps(steps)?;
    let guidance = asked.guidance.unwrap_or(defaults.guidance);
    if !guidance.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&guidance) {
        return Err(bad(format!(
            "--guidance {guidance}: must be a number between 0 and {MAX_GUIDANCE} (Wan uses 5)"
        )));
    }
    let width = asked.width.unwrap_or(defaults.width);
    let height = asked.height.unwrap_or(defaults.height);
    check_video_side("--width", width)?;
    check_video_side("--height", height)?;
    let frames = asked.frames.or(defaults.frames).unwrap_or(81);
    check_frames(frames)?;
    let fps = asked.fps.or(defaults.fps).unwrap_or(16);
    check_fps(fps)?;
    if let Some(n) = asked.max_sequence_length
        && !(MIN_SEQUENCE..=MAX_SEQUENCE).contains(&n)
    {
        return Err(bad(format!(
            "--max-sequence-length {n}: must be between {MIN_SEQUENCE} and {MAX_SEQUENCE} tokens"
        )));
    }
    let init_latents = asked.init_latents.as_deref().map(absolute);
    if let Some(path) = &init_latents {
        // Channels come from the transformer's config, read when the job runs; the shape of
        // frames and size is checked there too. A missing file is refused now.
        if !path.is_file() {
            return Err(bad(format!(
                "--init-latents {}: no such file",
                path.display()
            )));
        }
    }
    let text_encoder_2 = asked.text_encoder_2.as_deref().map(absolute);
    if let Some(path) = &text_encoder_2
        && !crate::jobs::spec::lora::is_gguf(path)
    {
        return Err(bad(format!(
            "--text-encoder-2 {}: Wan takes a UMT5 encoder as a llama.cpp GGUF file (e.g. \
             umt5-xxl-encoder-Q8_0.gguf)",
            path.display()
        )));
    }
    if let Some(path) = &text_encoder_2
        && !path.is_file()
    {
        return Err(bad(format!(
            "--text-encoder-2 {}: no such file",
            path.display()
        )));
    }
    let init_image = asked.init_image.as_deref().map(absolute);
    if let Some(path) = &init_image {
        crate::jobs::spec::resolve::load_image(path, "--init-image")?;
    }
    Ok(JobSpec {
        kind,
        model,
        prompt: asked.prompt.clone().unwrap_or_default(),
        seed: crate::jobs::spec::resolve::recorded_seed(asked.seed),
        dtype: asked.dtype,
        params: Params::Video(VideoParams {
            negative: asked.negative.clone().unwrap_or_default(),
            steps,
            guidance,
            width,
            height,
            frames,
            fps,
            save_frames: asked.save_frames.unwrap_or(false),
            init_image,
            init_latents,
            max_sequence_length: asked.max_sequence_length.or(defaults.max_sequence_length),
            vae_tiling: asked.vae_tiling,
            residency: asked.residency,
            text_encoder_2,
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_4n_plus_1_and_bounded() {
        for ok in [1, 5, 33, 81, MAX_FRAMES] {
            check_frames(ok).unwrap();
        }
        for bad in [0, 2, 32, 80, MAX_FRAMES + 4, 1_000_001] {
            assert_eq!(check_frames(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
        assert!(
            check_frames(32)
                .unwrap_err()
                .to_string()
                .contains("try 29 or 33")
        );
        assert_eq!(latent_frames(81), 21);
        assert_eq!(latent_frames(1), 1);
        assert!(check_fps(0).is_err() && check_fps(241).is_err() && check_fps(16).is_ok());
    }

    #[test]
    fn wan_defaults_fill_and_t2v_models_refuse_init_images() {
        let d = crate::models::Family::Wan.default_params();
        let asked = JobOverrides {
            model: Some("wan".into()),
            prompt: Some("a cat".into()),
            ..JobOverrides::default()
        };
        let spec = fill_video_spec(&asked, JobKind::Txt2vid, Kind::Txt2vid, &d).unwrap();
        let p = spec.video().unwrap();
        assert_eq!((p.width, p.height, p.frames, p.fps), (832, 480, 81, 16));
        assert_eq!((p.steps, p.guidance), (50, 5.0));
        let with_image = JobOverrides {
            init_image: Some("x.png".into()),
            ..asked.clone()
        };
        let err = fill_video_spec(&with_image, JobKind::Txt2vid, Kind::Txt2vid, &d).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("text-to-video only"), "{err}");
        let odd = JobOverrides {
            width: Some(840),
            ..asked
        };
        assert!(fill_video_spec(&odd, JobKind::Txt2vid, Kind::Txt2vid, &d).is_err());
    }
}
