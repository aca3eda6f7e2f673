//! Video jobs (`--kind txt2vid|img2vid`, `--frames N`, `--fps N`, `--save-frames`): filled from
//! the model's defaults and checked before anything is queued. A clip's frames and sides follow
//! the model's VAE and patches ([`VideoGeometry`], read from its configs): Wan makes 4n+1 frames
//! at sides in multiples of 16 (8x VAE, 2x2 patches; Wan 2.2 TI2V's 16x VAE: 32), LTX-Video
//! 8n+1 frames in multiples of 32.

use crate::jobs::spec::resolve::{MAX_GUIDANCE, MAX_SEQUENCE, MIN_SEQUENCE, absolute, check_steps};
use crate::jobs::spec::{JobOverrides, JobSpec, Params, VideoParams};
use crate::models::{Defaults, Family, Kind};
use crate::vocab::JobKind;

/// The most frames a clip may have (30 s at Wan's 16 fps, 19 s at LTX-Video's 25).
pub const MAX_FRAMES: u32 = 481;
/// The highest frame rate an MP4 is written at.
pub const MAX_FPS: u32 = 240;

mod geometry;
pub use geometry::VideoGeometry;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// `--fps`: 1 to MAX_FPS.
pub fn check_fps(fps: u32) -> crate::Result<()> {
    if fps == 0 || fps > MAX_FPS {
        return Err(bad(format!("--fps {fps}: must be between 1 and {MAX_FPS}")));
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
        ("--last-image", asked.last_image.is_some()),
        ("--decode-timestep", asked.decode_timestep.is_some()),
        ("--decode-noise-scale", asked.decode_noise_scale.is_some()),
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

/// `--decode-timestep` and `--decode-noise-scale`: LTX-Video's timestep-conditioned VAE only.
fn check_decode_flags(asked: &JobOverrides, geometry: VideoGeometry) -> crate::Result<()> {
    let given = [
        ("--decode-timestep", asked.decode_timestep),
        ("--decode-noise-scale", asked.decode_noise_scale),
    ];
    for (flag, value) in given {
        let Some(v) = value else { continue };
        if geometry.family != Family::Ltx {
            return Err(bad(format!(
                "{flag} is for LTX-Video's timestep-conditioned VAE (0.9.1 and later); {} \
                 decodes without one",
                geometry.name()
            )));
        }
        if !(0.0..=1.0).contains(&v) {
            return Err(bad(format!("{flag} {v}: must be between 0 and 1")));
        }
    }
    Ok(())
}

/// `--last-image` without `--init-image`.
pub fn refuse_last_without_first(asked: &JobOverrides) -> crate::Result<()> {
    if asked.last_image.is_some() && asked.init_image.is_none() {
        return Err(bad(
            "--last-image ends a clip that starts at its first frame: pass --init-image PATH too \
             (img2vid)",
        ));
    }
    Ok(())
}

/// `--last-image` (first-last-frame-to-video): a readable image ending an img2vid clip of two
/// frames or more, for Wan (the folder's transformer is checked when the job is prepared).
fn check_last_image(
    asked: &JobOverrides,
    geometry: VideoGeometry,
    frames: u32,
) -> crate::Result<Option<std::path::PathBuf>> {
    let Some(path) = asked.last_image.as_deref().map(absolute) else {
        return Ok(None);
    };
    if geometry.family == Family::Ltx {
        return Err(bad(
            "--last-image: LTX-Video does not take a last frame (it starts from --init-image \
             only); a first-last-frame clip needs a Wan 2.1 FLF2V model",
        ));
    }
    refuse_last_without_first(asked)?;
    if frames < 2 {
        return Err(bad(format!(
            "--last-image needs a clip of at least 2 frames (a first and a last); --frames is \
             {frames}"
        )));
    }
    crate::jobs::spec::resolve::load_image(&path, "--last-image")?;
    Ok(Some(path))
}

/// Fills and checks a video job (its kind already settled) on a model of `model_kind` shaped
/// as `geometry`.
pub fn fill_video_spec(
    asked: &JobOverrides,
    kind: JobKind,
    (model_kind, geometry): (Kind, VideoGeometry),
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
            "--guidance {guidance}: must be a number between 0 and {MAX_GUIDANCE} (Wan uses 5, \
             LTX-Video 3)"
        )));
    }
    let width = asked.width.unwrap_or(defaults.width);
    let height = asked.height.unwrap_or(defaults.height);
    geometry.check_side("--width", width)?;
    geometry.check_side("--height", height)?;
    let frames = asked.frames.or(defaults.frames).unwrap_or(81);
    geometry.check_frames(frames)?;
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
        let example = match geometry.family {
            Family::Ltx => {
                "LTX-Video takes its T5 encoder as a llama.cpp GGUF file (e.g. \
                            t5-v1_1-xxl-encoder-Q8_0.gguf)"
            }
            _ => {
                "Wan takes a UMT5 encoder as a llama.cpp GGUF file (e.g. \
                  umt5-xxl-encoder-Q8_0.gguf)"
            }
        };
        return Err(bad(format!(
            "--text-encoder-2 {}: {example}",
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
    let last_image = check_last_image(asked, geometry, frames)?;
    check_decode_flags(asked, geometry)?;
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
            last_image,
            decode_timestep: asked.decode_timestep,
            decode_noise_scale: asked.decode_noise_scale,
            init_latents,
            max_sequence_length: asked.max_sequence_length.or(defaults.max_sequence_length),
            vae_tiling: asked.vae_tiling,
            residency: asked.residency,
            text_encoder_2,
        }),
    })
}

#[cfg(test)]
mod tests;
