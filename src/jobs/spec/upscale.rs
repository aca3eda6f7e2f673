//! Upscaling jobs (`--kind upscale --image PATH [--scale 2|4]`) and the `--upscale N` step after
//! an image job: the default upscaler of a scale, and the checks of scale, tile and input.

use crate::jobs::run::config::ModelInfo;
use crate::jobs::spec::resolve::{absolute, load_image};
use crate::jobs::spec::{JobOverrides, Params, UpscaleParams, UpscaleStep};
use crate::models::{Defaults, Kind};

/// Registry ids of the upscalers used when none is named.
pub const DEFAULT_X4: &str = "realesrgan-x4plus";
pub const DEFAULT_X2: &str = "realesrgan-x2plus";
/// The smallest tile side `--tile` takes.
pub const MIN_TILE: u32 = 32;
/// The largest output an upscale makes (the whole output is held in memory as it is built).
pub const MAX_OUTPUT_PIXELS: u64 = 128_000_000;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// The upscaler of a scale (4 when none is asked).
pub fn default_upscaler(scale: Option<u32>) -> &'static str {
    match scale {
        Some(2) => DEFAULT_X2,
        _ => DEFAULT_X4,
    }
}

fn check_scale(flag: &str, scale: u32) -> crate::Result<()> {
    if matches!(scale, 2 | 4) {
        Ok(())
    } else {
        Err(bad(format!(
            "{flag} {scale}: must be 2 or 4 (Real-ESRGAN's x2plus and x4plus-class models)"
        )))
    }
}

/// Refuses an output larger than `MAX_OUTPUT_PIXELS`.
fn check_output(what: &str, (w, h): (u32, u32), scale: u32) -> crate::Result<()> {
    let (ow, oh) = (
        u64::from(w) * u64::from(scale),
        u64::from(h) * u64::from(scale),
    );
    if ow * oh > MAX_OUTPUT_PIXELS {
        return Err(bad(format!(
            "{what} {w}x{h} upscaled x{scale} would be {ow}x{oh} ({} megapixels); the most is {} \
             megapixels: use a smaller scale or image",
            ow * oh / 1_000_000,
            MAX_OUTPUT_PIXELS / 1_000_000
        )));
    }
    Ok(())
}

fn check_tile(tile: Option<u32>) -> crate::Result<()> {
    match tile {
        Some(t) if t < MIN_TILE => Err(bad(format!(
            "--tile {t}: must be at least {MIN_TILE} pixels (tiles carry 10 pixels of context \
             on each side)"
        ))),
        _ => Ok(()),
    }
}

/// The scale a job runs at: the one asked, which must be the model's own where the model says.
fn settle_scale(
    flag: &str,
    asked: Option<u32>,
    model: &str,
    defaults: &Defaults,
) -> crate::Result<u32> {
    if let Some(s) = asked {
        check_scale(flag, s)?;
    }
    match (asked, defaults.scale) {
        (Some(a), Some(m)) if a != m => Err(bad(format!(
            "{flag} {a}: model `{model}` upscales by {m}; drop {flag}, or use `{}` for {a}x",
            default_upscaler(Some(a))
        ))),
        (Some(a), _) => Ok(a),
        (None, Some(m)) => {
            check_scale("the model's scale", m)?;
            Ok(m)
        }
        (None, None) => Ok(4),
    }
}

/// Fills and checks an upscale job.
pub fn upscale_params(
    asked: &JobOverrides,
    model: &str,
    defaults: &Defaults,
) -> crate::Result<Params> {
    let Some(image) = asked.image.as_deref() else {
        return Err(bad(
            "an upscale job needs its input: pass --image PATH (PNG, JPEG or WebP)",
        ));
    };
    if asked.init_image.is_some() || asked.mask.is_some() || asked.upscale.is_some() {
        return Err(bad(
            "--init-image, --mask and --upscale do not apply to an upscale job; its input is --image",
        ));
    }
    let scale = settle_scale("--scale", asked.scale, model, defaults)?;
    check_tile(asked.tile)?;
    // Decoded now (its header checked first), as the job will: a bad file is refused before
    // anything is queued or written.
    let decoded = load_image(image, "--image")?;
    check_output(
        &format!("--image {}:", image.display()),
        (decoded.width(), decoded.height()),
        scale,
    )?;
    Ok(Params::Upscale(UpscaleParams {
        image: absolute(image),
        scale,
        tile: asked.tile,
    }))
}

/// Upscaling flags on a job that is not an upscale job: only an image job's `--upscale N`
/// (with `--upscaler`, `--tile`) applies.
pub fn refuse_stray_flags(asked: &JobOverrides, makes_images: bool) -> crate::Result<()> {
    if asked.scale.is_some() {
        return Err(bad(
            "--scale is for upscale jobs (--kind upscale --image PATH); after an image job use \
             --upscale 2|4",
        ));
    }
    if asked.image.is_some() {
        return Err(bad(
            "--image is the input of an upscale job; drop --kind, or use --init-image for img2img",
        ));
    }
    if !makes_images && (asked.upscale.is_some() || asked.upscaler.is_some()) {
        return Err(bad(
            "--upscale and --upscaler follow image jobs (txt2img, img2img, inpaint) only",
        ));
    }
    if asked.upscale.is_none() && (asked.upscaler.is_some() || asked.tile.is_some()) {
        return Err(bad(
            "--upscaler and --tile need --upscale 2|4 (or --kind upscale)",
        ));
    }
    Ok(())
}

/// The `--upscale N` step of an image job, its upscaler resolved by `lookup` and checked.
pub fn upscale_step(
    asked: &JobOverrides,
    size: (u32, u32),
    lookup: impl Fn(&str) -> crate::Result<ModelInfo>,
) -> crate::Result<Option<UpscaleStep>> {
    let Some(scale) = asked.upscale else {
        return Ok(None);
    };
    check_scale("--upscale", scale)?;
    check_output("the image of", size, scale)?;
    check_tile(asked.tile)?;
    let id = asked
        .upscaler
        .clone()
        .unwrap_or_else(|| default_upscaler(Some(scale)).to_owned());
    let model = lookup(&id)?;
    if model.kind != Kind::Upscale {
        return Err(bad(format!(
            "--upscaler {id}: that model makes {}, not upscaled images; use `{}`",
            model.kind,
            default_upscaler(Some(scale))
        )));
    }
    settle_scale("--upscale", Some(scale), &id, &model.defaults)?;
    // A file is stored absolute, so the job runs from any directory.
    let model_ref = match std::path::absolute(&id) {
        Ok(abs) if abs.is_file() => abs.to_string_lossy().into_owned(),
        _ => id,
    };
    Ok(Some(UpscaleStep {
        scale,
        model: model_ref,
        tile: asked.tile,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scale_follows_the_model_and_must_agree_with_it() {
        let x2 = Defaults {
            scale: Some(2),
            ..Defaults::default()
        };
        assert_eq!(settle_scale("--scale", None, "m", &x2).unwrap(), 2);
        assert_eq!(settle_scale("--scale", Some(2), "m", &x2).unwrap(), 2);
        let err = settle_scale("--scale", Some(4), "m", &x2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("upscales by 2") && err.contains(DEFAULT_X4),
            "{err}"
        );
        let err = settle_scale("--scale", Some(3), "m", &Defaults::default()).unwrap_err();
        assert!(err.to_string().contains("must be 2 or 4"), "{err}");
        assert_eq!(
            settle_scale("--scale", None, "m", &Defaults::default()).unwrap(),
            4
        );
    }

    #[test]
    fn stray_flags_are_refused_and_tiles_have_a_floor() {
        let scale = JobOverrides {
            scale: Some(2),
            ..JobOverrides::default()
        };
        assert!(refuse_stray_flags(&scale, true).is_err());
        let step = JobOverrides {
            upscale: Some(2),
            ..JobOverrides::default()
        };
        assert!(refuse_stray_flags(&step, true).is_ok());
        assert!(refuse_stray_flags(&step, false).is_err());
        assert!(check_tile(Some(16)).is_err());
        assert!(check_tile(Some(64)).is_ok());
        assert!(check_output("x", (2048, 2048), 4).is_ok());
        let err = check_output("x", (4096, 4096), 4).unwrap_err().to_string();
        assert!(err.contains("16384x16384"), "{err}");
    }
}
