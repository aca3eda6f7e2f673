//! The flat spec that releases before the family parameters wrote into the queue, PNG chunks and
//! sidecars: every field of every family side by side, optional. Read into today's `JobSpec`
//! (the store's migration rewrites its rows with it; older outputs are read with it for
//! `--from-image` and `info`). A value an old writer left out takes the family's default.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    CaptionParams, EnhanceParams, Enhancement, ImageParams, JobSpec, MusicParams, Params,
    SpeechParams, TranscribeParams,
};
use crate::vocab::{AttentionSlicing, DtypeChoice, JobKind, ResidencyChoice, Scheduler, Toggle};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FlatSpec {
    kind: JobKind,
    model: String,
    prompt: String,
    negative: String,
    steps: Option<u32>,
    guidance: Option<f64>,
    seed: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    batch: Option<u32>,
    scheduler: Option<Scheduler>,
    init_image: Option<PathBuf>,
    strength: Option<f64>,
    mask: Option<PathBuf>,
    init_latents: Option<PathBuf>,
    dtype: Option<DtypeChoice>,
    attention_slicing: Option<String>,
    vae_tiling: Option<Toggle>,
    residency: Option<ResidencyChoice>,
    voice: Option<String>,
    duration: Option<f64>,
    audio: Option<PathBuf>,
    language: Option<String>,
    translate: bool,
    enhance: bool,
    enhancer: Option<String>,
    enhanced_from: Option<String>,
    max_tokens: Option<u32>,
}

/// A flat spec as today's `JobSpec`.
pub(super) fn from_flat(value: serde_json::Value) -> Result<JobSpec, String> {
    let f: FlatSpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let image = ImageParams::default();
    let missing = |what: &str| format!("a stored {} job without its {what}", f.kind.as_str());
    let params = match f.kind {
        JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint => {
            let attention_slicing = f
                .attention_slicing
                .as_deref()
                .map(AttentionSlicing::parse)
                .transpose()?;
            // Fields added after the flat shape (none yet) take their defaults: such rows never
            // asked for them.
            #[allow(clippy::needless_update)]
            Params::Image(ImageParams {
                negative: f.negative,
                steps: f.steps.unwrap_or(image.steps),
                guidance: f.guidance.unwrap_or(image.guidance),
                width: f.width.unwrap_or(image.width),
                height: f.height.unwrap_or(image.height),
                batch: f.batch.unwrap_or(1),
                scheduler: f.scheduler.unwrap_or(image.scheduler),
                strength: f.strength.unwrap_or(1.0),
                init_image: f.init_image,
                mask: f.mask,
                init_latents: f.init_latents,
                attention_slicing,
                vae_tiling: f.vae_tiling,
                residency: f.residency,
                enhance: f.enhance.then(|| Enhancement {
                    enhancer: f
                        .enhancer
                        .unwrap_or_else(|| super::media::DEFAULT_ENHANCER.to_owned()),
                    from: f.enhanced_from,
                    max_tokens: f.max_tokens,
                }),
                ..image
            })
        }
        JobKind::Tts => Params::Speech(SpeechParams {
            voice: f
                .voice
                .unwrap_or_else(|| crate::models::entry::DEFAULT_VOICE.to_owned()),
            duration: f.duration.unwrap_or(30.0),
            batch: f.batch.unwrap_or(1),
        }),
        JobKind::Music => Params::Music(MusicParams {
            duration: f.duration.unwrap_or(8.0),
            guidance: f.guidance.unwrap_or(3.0),
            batch: f.batch.unwrap_or(1),
        }),
        JobKind::Stt => Params::Transcribe(TranscribeParams {
            audio: f.audio.ok_or_else(|| missing("audio"))?,
            language: f.language,
            translate: f.translate,
            max_tokens: f.max_tokens,
        }),
        JobKind::Caption => Params::Caption(CaptionParams {
            image: f.init_image.ok_or_else(|| missing("image"))?,
            max_tokens: f.max_tokens.unwrap_or(40),
        }),
        JobKind::Enhance => Params::Enhance(EnhanceParams {
            max_tokens: f.max_tokens.unwrap_or(200),
        }),
        // Upscaling came after the family parameters: no flat row holds one.
        JobKind::Upscale | JobKind::Txt2vid | JobKind::Img2vid => {
            return Err(missing("parameters (a flat row cannot hold one)"));
        }
    };
    Ok(JobSpec {
        kind: f.kind,
        model: f.model,
        prompt: f.prompt,
        seed: f.seed,
        dtype: f.dtype,
        params,
    })
}
