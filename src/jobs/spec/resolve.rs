//! An image job as asked + the model's defaults -> a checked, typed `JobSpec` -> a `GenerateRequest`.
//! Everything the user can get wrong is caught here, before anything is queued or written,
//! as `Error::BadInput` saying what was wrong and how to fix it.

use std::path::{Path, PathBuf};

use crate::engines::sd::{GenerateRequest, MemoryModes};
use crate::models::{Defaults, Family};

use crate::jobs::spec::latents_file::read_latents;
use crate::jobs::spec::{Enhancement, ImageParams, JobOverrides, JobSpec, Params};
use crate::vocab::{AttentionSlicing, JobKind, Toggle};

pub const MAX_STEPS: u32 = 1000;
pub const MAX_BATCH: u32 = 64;
pub const MIN_SIDE: u32 = 64;
pub const MAX_SIDE: u32 = 4096;
pub const MAX_GUIDANCE: f64 = 100.0;
/// `--max-sequence-length` bounds: start and end token plus one, and T5's longest and then some.
pub const MIN_SEQUENCE: u32 = 3;
pub const MAX_SEQUENCE: u32 = 4096;
/// Above this many pixels `--vae-tiling auto` tiles the decode.
const AUTO_TILING_PIXELS: u64 = 2048 * 1024;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// An image job as asked, filled from the model's defaults and the init image, checked, and
/// typed: what gets stored and written into outputs (the actual seed, steps, size...). `kind`
/// is the one asked; the inputs settle txt2img, img2img or inpaint; the family says which
/// flow-model flags apply.
pub fn fill_spec(
    asked: &JobOverrides,
    kind: JobKind,
    defaults: &Defaults,
    family: Family,
) -> crate::Result<JobSpec> {
    let model = asked.model.clone().unwrap_or_default();
    if model.trim().is_empty() {
        return Err(bad(
            "no model given: pass --model ID|DIR (see `pallaidium models`)",
        ));
    }
    let kind = match (&asked.init_image, &asked.mask) {
        (None, Some(_)) => {
            return Err(bad(
                "--mask needs --init-image: inpainting repaints the masked part of an image",
            ));
        }
        (Some(_), Some(_)) => JobKind::Inpaint,
        (Some(_), None) => JobKind::Img2img,
        (None, None) if kind != JobKind::Txt2img => {
            return Err(bad(format!(
                "kind {kind:?} needs --init-image (and --mask for inpaint)"
            )));
        }
        (None, None) => JobKind::Txt2img,
    };
    let init_image = asked.init_image.as_deref().map(absolute);
    let mask = asked.mask.as_deref().map(absolute);
    let init_latents = asked.init_latents.as_deref().map(absolute);

    let steps = asked.steps.unwrap_or(defaults.steps);
    check_steps(steps)?;
    let guidance = asked.guidance.unwrap_or(defaults.guidance);
    if !guidance.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&guidance) {
        return Err(bad(format!(
            "--guidance {guidance}: must be a number between 0 and {MAX_GUIDANCE} \
             (7.5 is typical; turbo models use 0)"
        )));
    }
    let flow = super::flow::fill(asked, kind, defaults, family)?;
    let loras = super::lora::fill(asked.lora.as_deref(), family, flow.transformer.as_deref())?;
    let controlnets = super::controlnet::fill(asked, family)?;
    let size = job_size(init_image.as_deref(), asked.width, asked.height, defaults)?;
    for note in &size.notes {
        tracing::warn!("{note}");
    }
    let (width, height) = (size.width, size.height);
    let batch = asked.batch.unwrap_or(1);
    check_batch(batch)?;
    // The registry's default is typed when its file is read (`models::registry`).
    let scheduler = super::flow::scheduler(asked.scheduler, defaults)?;
    let default_strength = match kind {
        JobKind::Img2img => 0.8,
        _ => 1.0,
    };
    let strength = asked.strength.unwrap_or(default_strength);
    if !strength.is_finite() || !(0.0..=1.0).contains(&strength) {
        return Err(bad(format!(
            "--strength {strength}: must be between 0 and 1 (how much of the init image to repaint)"
        )));
    }
    // diffusers runs int(steps * strength) steps of an img2img job; with none the engine would
    // refuse the job only once it has been queued and its model loaded.
    let start = crate::engines::sd::schedulers::img2img_start(steps as usize, strength);
    if kind != JobKind::Txt2img && start >= steps as usize {
        let need = (1.0 / strength.max(1e-6)).ceil().min(f64::from(MAX_STEPS));
        return Err(bad(format!(
            "--strength {strength} with --steps {steps} runs no denoising step \
             (steps x strength < 1); raise --steps to at least {need} or --strength"
        )));
    }
    if let Some(n) = asked.max_sequence_length
        && !(MIN_SEQUENCE..=MAX_SEQUENCE).contains(&n)
    {
        return Err(bad(format!(
            "--max-sequence-length {n}: must be between {MIN_SEQUENCE} and {MAX_SEQUENCE} tokens \
             (the start and end token count; CLIP reads 77)"
        )));
    }
    let enhance = match asked.enhance {
        Some(true) => Some(Enhancement {
            enhancer: asked
                .enhancer
                .clone()
                .unwrap_or_else(|| super::media::DEFAULT_ENHANCER.to_owned()),
            from: asked.enhanced_from.clone(),
            max_tokens: asked.max_tokens,
        }),
        _ => None,
    };
    Ok(JobSpec {
        kind,
        model,
        prompt: asked.prompt.clone().unwrap_or_default(),
        seed: recorded_seed(asked.seed),
        dtype: asked.dtype,
        params: Params::Image(ImageParams {
            negative: asked.negative.clone().unwrap_or_default(),
            steps,
            guidance,
            width,
            height,
            batch,
            scheduler,
            strength,
            init_image,
            mask,
            init_latents,
            max_sequence_length: flow.max_sequence_length,
            true_cfg: flow.true_cfg,
            transformer: flow.transformer,
            text_encoder_2: flow.text_encoder_2,
            no_t5: flow.no_t5,
            loras,
            controlnets,
            attention_slicing: asked.attention_slicing,
            vae_tiling: asked.vae_tiling,
            residency: asked.residency,
            enhance,
            // Set by the runner once the upscaler is resolved (`spec::upscale::upscale_step`).
            upscale: None,
        }),
    })
}

/// The seed a job records: the one asked, else a fresh random one, so the output says how to
/// make it again.
pub(crate) fn recorded_seed(asked: Option<u64>) -> Option<u64> {
    Some(asked.unwrap_or_else(|| u64::from(rand::random::<u32>())))
}

/// `--steps`: 1 to MAX_STEPS (jobs and `bench` alike).
pub fn check_steps(steps: u32) -> crate::Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(bad(format!(
            "--steps {steps}: must be between 1 and {MAX_STEPS}"
        )));
    }
    Ok(())
}

/// `--batch`: 1 to MAX_BATCH (jobs and `bench` alike).
pub fn check_batch(batch: u32) -> crate::Result<()> {
    if batch == 0 || batch > MAX_BATCH {
        return Err(bad(format!(
            "--batch {batch}: must be between 1 and {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// `--width` / `--height`: a multiple of 8 from MIN_SIDE to MAX_SIDE (jobs and `bench` alike).
pub fn check_side(flag: &str, value: u32) -> crate::Result<()> {
    check_side_of(flag, value, 8, "")
}

/// A side that must be a multiple of `multiple` (16 for FLUX: `why` says so).
fn check_side_of(flag: &str, value: u32, multiple: u32, why: &str) -> crate::Result<()> {
    if !value.is_multiple_of(multiple) || !(MIN_SIDE..=MAX_SIDE).contains(&value) {
        let down = (value / multiple * multiple).clamp(MIN_SIDE, MAX_SIDE);
        return Err(bad(format!(
            "{flag} {value}: must be a multiple of {multiple}{why} between {MIN_SIDE} and \
             {MAX_SIDE} (try {down})"
        )));
    }
    Ok(())
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The size an image job runs at, with a note for each way it differs from what was asked
/// (taken from the init image, scaled down to the limit, rounded to a multiple of 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSize {
    pub width: u32,
    pub height: u32,
    pub notes: Vec<String>,
}

/// Without --width/--height an img2img job keeps its source's size, scaled down (aspect kept) to
/// at most MAX_SIDE and rounded down to a multiple of 8; otherwise the flags or model defaults.
pub fn job_size(
    init_image: Option<&Path>,
    width: Option<u32>,
    height: Option<u32>,
    defaults: &Defaults,
) -> crate::Result<JobSize> {
    let mut notes = vec![];
    let m = super::flow::side_multiple(defaults);
    let (w, h) = match (init_image, width, height) {
        (Some(path), None, None) => {
            let (iw, ih) = image_size(path, "--init-image")?;
            let scale = (f64::from(MAX_SIDE) / f64::from(iw.max(ih))).min(1.0);
            let fit = |side: u32| (((f64::from(side) * scale) as u32) / m * m).max(MIN_SIDE);
            let (w, h) = (fit(iw).min(MAX_SIDE), fit(ih).min(MAX_SIDE));
            let how = if scale < 1.0 {
                format!(
                    "scaled down to at most {MAX_SIDE} a side (aspect kept) and rounded to a \
                     multiple of {m}"
                )
            } else if (w, h) != (iw, ih) {
                format!("rounded to a multiple of {m}")
            } else {
                "its own size".to_string()
            };
            notes.push(format!(
                "the size {w}x{h} is taken from --init-image {} ({iw}x{ih}, {how}); pass --width \
                 and --height to choose another",
                path.display()
            ));
            (w, h)
        }
        _ => (
            width.unwrap_or(defaults.width),
            height.unwrap_or(defaults.height),
        ),
    };
    let why = if m == 16 {
        " (flow models: 8x VAE, then 2x2 patches)"
    } else {
        ""
    };
    check_side_of("--width", w, m, why)?;
    check_side_of("--height", h, m, why)?;
    Ok(JobSize {
        width: w,
        height: h,
        notes,
    })
}

/// Most pixels an input image may have: its header is checked before it is decoded, so a file
/// claiming 100000x100000 is refused instead of allocated.
pub const MAX_INPUT_PIXELS: u64 = 100_000_000;

fn too_big(flag: &str, path: &Path, w: u32, h: u32) -> crate::Error {
    bad(format!(
        "{flag} {}: {w}x{h} is more than the {} megapixel limit on input images; scale it down \
         first",
        path.display(),
        MAX_INPUT_PIXELS / 1_000_000
    ))
}

/// An image's size from its header alone, refused above MAX_INPUT_PIXELS or when empty.
pub(crate) fn image_size(path: &Path, flag: &str) -> crate::Result<(u32, u32)> {
    let (w, h) = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad(format!("{flag} {}: cannot read it ({e})", path.display())))?
        .into_dimensions()
        .map_err(|e| {
            bad(format!(
                "{flag} {}: not a decodable image ({e}); use a PNG, JPEG or WebP",
                path.display()
            ))
        })?;
    if u64::from(w) * u64::from(h) > MAX_INPUT_PIXELS {
        return Err(too_big(flag, path, w, h));
    }
    if w == 0 || h == 0 {
        return Err(bad(format!(
            "{flag} {}: the image is empty",
            path.display()
        )));
    }
    Ok((w, h))
}

/// Decodes an image whose header was checked first (see `image_size`); the decoder's own
/// allocation limit backs that up.
pub(crate) fn load_image(path: &Path, flag: &str) -> crate::Result<image::DynamicImage> {
    let (w, h) = image_size(path, flag)?;
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad(format!("{flag} {}: cannot read it ({e})", path.display())))?;
    let mut limits = image::Limits::default();
    // 16-bit RGBA at the pixel limit, the largest buffer a decode may need.
    limits.max_alloc = Some(MAX_INPUT_PIXELS * 8);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_big(flag, path, w, h),
        e => bad(format!(
            "{flag} {}: not a decodable image ({e}); use a PNG, JPEG or WebP",
            path.display()
        )),
    })
}

/// Builds the engine request from an image job (see `fill_spec`), loading the init image, mask
/// and latents. Called at submit time (to refuse bad files early) and again when the job runs.
pub fn build_request(spec: &JobSpec, preview_every: u32) -> crate::Result<GenerateRequest> {
    let p = spec.image().ok_or_else(|| {
        bad(format!(
            "internal: a {} job reached the image engine",
            spec.kind.as_str()
        ))
    })?;
    let (width, height) = (p.width, p.height);
    let filter = image::imageops::FilterType::Lanczos3;
    let init_image = match &p.init_image {
        Some(path) => Some(
            load_image(path, "--init-image")?
                .resize_exact(width, height, filter)
                .to_rgb8(),
        ),
        None => None,
    };
    let mask = match &p.mask {
        Some(path) => Some(
            load_image(path, "--mask")?
                .resize_exact(width, height, filter)
                .to_luma8(),
        ),
        None => None,
    };
    let init_latents = match &p.init_latents {
        // FLUX (the flow scheduler) takes its 16 channels unpacked, as diffusers draws them.
        Some(path) => {
            let channels = if p.scheduler.is_flow() { 16 } else { 4 };
            Some(read_latents(path, p.batch, channels, width, height)?)
        }
        None => None,
    };
    // The plan may still choose a slice size for auto; off and auto run unsliced until it does.
    let attention_slice = match p.attention_slicing {
        Some(AttentionSlicing::Tokens(n)) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => None,
    };
    let vae_tiling = p
        .vae_tiling
        .and_then(Toggle::forced)
        .unwrap_or_else(|| u64::from(width) * u64::from(height) > AUTO_TILING_PIXELS);
    Ok(GenerateRequest {
        prompt: spec.prompt.clone(),
        negative: p.negative.clone(),
        steps: p.steps,
        guidance: p.guidance,
        seed: spec.seed.unwrap_or(0),
        width,
        height,
        batch: p.batch,
        scheduler: p.scheduler,
        init_image,
        strength: p.strength,
        mask,
        init_latents,
        memory: MemoryModes {
            attention_slice,
            vae_tiling,
        },
        preview_every,
        max_sequence_length: p.max_sequence_length.map(|n| n as usize),
        true_cfg: p.true_cfg,
        controlnets: super::controlnet::engine_inputs(&p.controlnets, width, height)?,
    })
}

#[cfg(test)]
mod tests;
