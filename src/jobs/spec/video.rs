//! Video jobs (`--kind txt2vid|img2vid`, `--frames N`, `--fps N`, `--save-frames`): filled from
//! the model's defaults and checked before anything is queued. A clip's frames and sides follow
//! the model's VAE and patches ([`VideoGeometry`], read from its configs): Wan makes 4n+1 frames
//! at sides in multiples of 16 (8x VAE, 2x2 patches; Wan 2.2 TI2V's 16x VAE: 32), LTX-Video
//! 8n+1 frames in multiples of 32.

use std::path::Path;

use crate::jobs::spec::resolve::{
    MAX_GUIDANCE, MAX_SEQUENCE, MIN_SEQUENCE, absolute, check_side, check_steps,
};
use crate::jobs::spec::{JobOverrides, JobSpec, Params, VideoParams};
use crate::models::{Defaults, Family, Kind};
use crate::vocab::JobKind;

/// The most frames a clip may have (30 s at Wan's 16 fps, 19 s at LTX-Video's 25).
pub const MAX_FRAMES: u32 = 481;
/// The highest frame rate an MP4 is written at.
pub const MAX_FPS: u32 = 240;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// How a video model shapes its clips: `temporal` n + 1 frames (its VAE keeps the first frame
/// and packs `temporal` frames a latent after it), sides in multiples of `side` (the VAE's
/// spatial ratio times the transformer's patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoGeometry {
    pub family: Family,
    pub temporal: u32,
    pub side: u32,
}

impl VideoGeometry {
    /// The family's released models' shape (Wan's when `family` makes no video).
    pub fn of_family(family: Family) -> Self {
        let (temporal, side) = family.video_steps().unwrap_or((4, 16));
        Self {
            family,
            temporal,
            side,
        }
    }

    /// From the model folder's VAE and transformer configs.
    pub fn read(family: Family, dir: &Path) -> crate::Result<Self> {
        let (temporal, side) = match family {
            Family::Ltx => {
                let (t, vae) = crate::engines::ltx::pipeline::check_configs(dir)?;
                (vae.temporal_ratio(), vae.spatial_ratio() * t.patch_size)
            }
            Family::Wan => {
                let vae = crate::engines::wan::vae::WanVaeConfig::read(&dir.join("vae"))?;
                let t = crate::engines::wan::transformer::WanTransformerConfig::load(
                    &dir.join("transformer/config.json"),
                )?;
                (vae.temporal_ratio(), vae.spatial_ratio() * t.patch_size[1])
            }
            other => {
                return Err(bad(format!(
                    "a {other} model makes no video; video jobs need a Wan or LTX-Video model"
                )));
            }
        };
        let (temporal, side) = (u32::try_from(temporal), u32::try_from(side));
        match (temporal, side) {
            (Ok(temporal), Ok(side)) if temporal > 0 && side > 0 => Ok(Self {
                family,
                temporal,
                side,
            }),
            _ => Err(bad(format!(
                "{}: the VAE or transformer config gives no usable frame or side ratio; fetch \
                 the model again",
                dir.display()
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self.family {
            Family::Ltx => "LTX-Video",
            _ => "Wan",
        }
    }

    /// Latent frames of a clip of `frames` frames.
    pub fn latent_frames(self, frames: u32) -> usize {
        (frames.saturating_sub(1) / self.temporal + 1) as usize
    }

    /// `--frames`: `temporal` n + 1, from 1 to MAX_FRAMES.
    pub fn check_frames(self, frames: u32) -> crate::Result<()> {
        let t = self.temporal;
        if frames == 0 || frames > MAX_FRAMES {
            return Err(bad(format!(
                "--frames {frames}: must be between 1 and {MAX_FRAMES} ({t}n+1, e.g. {} or {})",
                4 * t + 1,
                8 * t + 1
            )));
        }
        if !(frames - 1).is_multiple_of(t) {
            let down = (frames - 1) / t * t + 1;
            return Err(bad(format!(
                "--frames {frames}: {} makes {t}n+1 frames (its VAE packs {t} frames a latent \
                 after the first); try {down} or {}",
                self.name(),
                down + t
            )));
        }
        Ok(())
    }

    fn check_side(self, flag: &str, value: u32) -> crate::Result<()> {
        check_side(flag, value)?;
        let m = self.side;
        if !value.is_multiple_of(m) {
            let down = (value / m * m).max(m);
            return Err(bad(format!(
                "{flag} {value}: {} video sides are multiples of {m} (the VAE's compression \
                 times the transformer's patch); try {down}",
                self.name()
            )));
        }
        Ok(())
    }
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WAN: Kind = Kind::Txt2vid;

    fn wan() -> VideoGeometry {
        VideoGeometry::of_family(Family::Wan)
    }

    #[test]
    fn frames_are_4n_plus_1_and_bounded() {
        let g = wan();
        for ok in [1, 5, 33, 81, MAX_FRAMES] {
            g.check_frames(ok).unwrap();
        }
        for bad in [0, 2, 32, 80, MAX_FRAMES + 4, 1_000_001] {
            assert_eq!(g.check_frames(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
        assert!(
            g.check_frames(32)
                .unwrap_err()
                .to_string()
                .contains("try 29 or 33")
        );
        assert_eq!(g.latent_frames(81), 21);
        assert_eq!(g.latent_frames(1), 1);
        assert!(check_fps(0).is_err() && check_fps(241).is_err() && check_fps(16).is_ok());
    }

    #[test]
    fn ltx_makes_8n_plus_1_frames_at_multiples_of_32() {
        let g = VideoGeometry::of_family(Family::Ltx);
        for ok in [1, 9, 161, MAX_FRAMES] {
            g.check_frames(ok).unwrap();
        }
        let err = g.check_frames(32).unwrap_err().to_string();
        assert!(
            err.contains("LTX-Video makes 8n+1") && err.contains("try 25 or 33"),
            "{err}"
        );
        let err = g.check_frames(35).unwrap_err().to_string();
        assert!(err.contains("try 33 or 41"), "{err}");
        assert_eq!(g.latent_frames(161), 21);
        let d = Family::Ltx.default_params();
        let asked = JobOverrides {
            model: Some("ltx".into()),
            ..JobOverrides::default()
        };
        let spec = fill_video_spec(&asked, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap();
        let p = spec.video().unwrap();
        assert_eq!((p.width, p.height, p.frames, p.fps), (704, 512, 161, 25));
        assert_eq!(
            (p.steps, p.guidance, p.max_sequence_length),
            (50, 3.0, Some(128))
        );
        // 848 is a multiple of 16 (fine for Wan) but not of 32.
        let odd = JobOverrides {
            width: Some(848),
            ..asked.clone()
        };
        let err = fill_video_spec(&odd, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap_err();
        assert!(
            err.to_string().contains("multiples of 32") && err.to_string().contains("try 832"),
            "{err}"
        );
        fill_video_spec(&odd, JobKind::Txt2vid, (WAN, wan()), &d).unwrap();
        let dense = JobOverrides {
            text_encoder_2: Some("t5.safetensors".into()),
            ..asked
        };
        let err = fill_video_spec(&dense, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap_err();
        assert!(err.to_string().contains("LTX-Video takes its T5"), "{err}");
    }

    #[test]
    fn the_geometry_comes_from_the_folder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        // The tiny fixtures' VAEs: LTX 8x spatial / 4x temporal; Wan 2.2's 16x spatial.
        let ltx = VideoGeometry::read(Family::Ltx, &root.join("ltx-tiny")).unwrap();
        assert_eq!((ltx.temporal, ltx.side), (4, 8));
        let ti2v = VideoGeometry::read(Family::Wan, &root.join("wan-ti2v-tiny")).unwrap();
        assert_eq!((ti2v.temporal, ti2v.side), (4, 32));
        let t2v = VideoGeometry::read(Family::Wan, &root.join("wan-t2v-tiny")).unwrap();
        assert_eq!((t2v.temporal, t2v.side), (4, 16));
        assert!(VideoGeometry::read(Family::Sd1, &root.join("sd1-tiny")).is_err());
    }

    #[test]
    fn wan_defaults_fill_and_t2v_models_refuse_init_images() {
        let d = crate::models::Family::Wan.default_params();
        let asked = JobOverrides {
            model: Some("wan".into()),
            prompt: Some("a cat".into()),
            ..JobOverrides::default()
        };
        let spec = fill_video_spec(&asked, JobKind::Txt2vid, (WAN, wan()), &d).unwrap();
        let p = spec.video().unwrap();
        assert_eq!((p.width, p.height, p.frames, p.fps), (832, 480, 81, 16));
        assert_eq!((p.steps, p.guidance), (50, 5.0));
        let with_image = JobOverrides {
            init_image: Some("x.png".into()),
            ..asked.clone()
        };
        let err = fill_video_spec(&with_image, JobKind::Txt2vid, (WAN, wan()), &d).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("text-to-video only"), "{err}");
        let odd = JobOverrides {
            width: Some(840),
            ..asked
        };
        assert!(fill_video_spec(&odd, JobKind::Txt2vid, (WAN, wan()), &d).is_err());
    }

    #[test]
    fn a_last_image_ends_a_wan_img2vid_clip_and_is_recorded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
        let d = crate::models::Family::Wan.default_params();
        let asked = JobOverrides {
            model: Some("wan".into()),
            frames: Some(5),
            init_image: Some(root.join("init_80x64.png")),
            last_image: Some(root.join("init_wide.png")),
            ..JobOverrides::default()
        };
        let img2vid = (Kind::Img2vid, wan());
        let spec = fill_video_spec(&asked, JobKind::Img2vid, img2vid, &d).unwrap();
        assert_eq!(spec.video().unwrap().last_image, asked.last_image);
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"last_image\""), "{text}");
        let back: JobSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
        // Stored before --last-image: no key, no last image.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        let video = old["params"]["video"].as_object_mut().unwrap();
        assert!(video.remove("last_image").is_some());
        let old: JobSpec = serde_json::from_value(old).unwrap();
        assert_eq!(old.video().unwrap().last_image, None);
        let refused = |o: JobOverrides, geometry: VideoGeometry, needle: &str| {
            let err =
                fill_video_spec(&o, JobKind::Img2vid, (Kind::Img2vid, geometry), &d).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        };
        let ltx = VideoGeometry::of_family(Family::Ltx);
        let ltx_frames = JobOverrides {
            frames: Some(9),
            ..asked.clone()
        };
        refused(ltx_frames, ltx, "LTX-Video does not take a last frame");
        let one = JobOverrides {
            frames: Some(1),
            ..asked.clone()
        };
        refused(one, wan(), "at least 2 frames");
        let missing = JobOverrides {
            last_image: Some(root.join("missing.png")),
            ..asked.clone()
        };
        refused(missing, wan(), "--last-image");
        let txt2vid = JobOverrides {
            init_image: None,
            ..asked
        };
        let err = fill_video_spec(&txt2vid, JobKind::Txt2vid, img2vid, &d).unwrap_err();
        assert!(err.to_string().contains("--init-image"), "{err}");
    }
}
