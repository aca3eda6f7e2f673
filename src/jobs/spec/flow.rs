//! What an image job asks of a flow-matching model (FLUX, SD 3.5, Z-Image) and of the others:
//! the flags only one side takes (`--true-cfg`, `--transformer`, `--text-encoder-2`, `--no-t5`,
//! the flow-euler scheduler), sizes in multiples of 16, the text encoder's length, and guidance
//! that schnell ignores. A model is a flow model when its default scheduler is
//! (`models::registry` and `ModelLayout` see to that); the family says which flow flags apply
//! (FLUX embeds guidance or ignores it; SD 3.5 and Z-Image guide classifier-free).

use std::path::{Path, PathBuf};

use crate::engines::nn::weights::gguf::GgufFile;
use crate::models::{Defaults, Family};
use crate::vocab::{JobKind, Scheduler};

use super::JobOverrides;
use super::resolve::{MAX_GUIDANCE, absolute};

/// FLUX's pipelines refuse more T5 tokens than this (diffusers: max_sequence_length <= 512).
pub const FLUX_MAX_SEQUENCE: u32 = 512;

/// The flow-model fields of a filled job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowFill {
    pub max_sequence_length: Option<u32>,
    pub true_cfg: Option<f64>,
    pub transformer: Option<PathBuf>,
    pub text_encoder_2: Option<PathBuf>,
    /// SD 3.5 without T5.
    pub no_t5: bool,
}

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// Pixels a side must be a multiple of: 16 for the flow models (8x VAE, then 2x2 patches), 8 otherwise.
pub fn side_multiple(defaults: &Defaults) -> u32 {
    if defaults.scheduler.is_flow() { 16 } else { 8 }
}

/// The scheduler the job runs: a flow model runs only flow-euler, the others anything else.
pub fn scheduler(asked: Option<Scheduler>, defaults: &Defaults) -> crate::Result<Scheduler> {
    let flow = defaults.scheduler.is_flow();
    match asked {
        Some(s) if s.is_flow() && !flow => Err(bad(format!(
            "--scheduler {s} is for flow-matching models (FLUX, SD 3.5, Z-Image); this model \
             takes {}",
            Scheduler::unet_names()
        ))),
        Some(s) if !s.is_flow() && flow => Err(bad(format!(
            "--scheduler {s}: flow-matching models run the flow-matching Euler scheduler only; \
             drop --scheduler (or pass flow-euler)"
        ))),
        Some(s) => Ok(s),
        None => Ok(defaults.scheduler),
    }
}

/// Checks the flow-only flags against the model and fills the flow fields.
pub fn fill(
    asked: &JobOverrides,
    kind: JobKind,
    defaults: &Defaults,
    family: Family,
) -> crate::Result<FlowFill> {
    let flow = defaults.scheduler.is_flow();
    if flow && family == Family::ZImage {
        return fill_zimage(asked, kind);
    }
    if !flow {
        for (set, flag) in [
            (asked.true_cfg.is_some(), "--true-cfg"),
            (asked.transformer.is_some(), "--transformer"),
            (asked.text_encoder_2.is_some(), "--text-encoder-2"),
            (asked.no_t5 == Some(true), "--no-t5"),
        ] {
            if set {
                return Err(bad(format!(
                    "{flag} is for flow models (FLUX, SD 3.5); this model's guidance is \
                     --guidance and its weights come from --model"
                )));
            }
        }
        return Ok(FlowFill {
            max_sequence_length: asked.max_sequence_length,
            ..FlowFill::default()
        });
    }
    if kind == JobKind::Inpaint {
        return Err(bad(
            "--mask: FLUX and SD 3.5 inpainting are not supported yet; use --init-image with \
             --strength (img2img), or an SD inpainting model",
        ));
    }
    // SD 3.5: classifier-free guidance (--guidance with --negative), T5 optional.
    let cfg_flow = family == Family::Sd3;
    let no_t5 = asked.no_t5 == Some(true);
    for (set, flag, why) in [
        (
            !cfg_flow && no_t5,
            "--no-t5",
            "FLUX reads its prompt through T5 only; it cannot run without it",
        ),
        (
            cfg_flow && asked.true_cfg.is_some(),
            "--true-cfg",
            "SD 3.5 applies --guidance as classifier-free guidance with --negative",
        ),
        (
            no_t5 && asked.text_encoder_2.is_some(),
            "--text-encoder-2",
            "it replaces T5's weights, which --no-t5 leaves out; pass one of the two",
        ),
    ] {
        if set {
            return Err(bad(format!("{flag}: {why}")));
        }
    }
    if defaults.embedded_guidance == Some(false) && asked.guidance.is_some_and(|g| g > 0.0) {
        tracing::warn!(
            "--guidance is ignored by this model (FLUX.1-schnell has no guidance input); \
             --true-cfg with --negative is the guidance it can take"
        );
    }
    let max_sequence_length = asked.max_sequence_length.or(defaults.max_sequence_length);
    if let Some(n) = max_sequence_length
        && n > FLUX_MAX_SEQUENCE
    {
        return Err(bad(format!(
            "--max-sequence-length {n}: FLUX's T5 reads at most {FLUX_MAX_SEQUENCE} tokens"
        )));
    }
    let true_cfg = asked.true_cfg;
    if let Some(t) = true_cfg {
        if !t.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&t) {
            return Err(bad(format!(
                "--true-cfg {t}: must be a number between 0 and {MAX_GUIDANCE} (above 1 it \
                 applies; 4 is typical)"
            )));
        }
        if t > 1.0
            && asked
                .negative
                .as_deref()
                .is_none_or(|n| n.trim().is_empty())
        {
            tracing::warn!(
                "--true-cfg {t} without --negative: true CFG needs a negative prompt and is off"
            );
        }
    }
    let transformer = asked
        .transformer
        .as_deref()
        .map(|p| {
            weights_file(
                p,
                "--transformer",
                if cfg_flow { &["sd3"] } else { &["flux"] },
            )
        })
        .transpose()?;
    let text_encoder_2 = encoder_gguf(
        asked,
        &["t5encoder", "t5"],
        "a T5 encoder GGUF file (e.g. t5-v1_1-xxl-encoder-Q8_0.gguf)",
    )?;
    Ok(FlowFill {
        max_sequence_length,
        true_cfg,
        transformer,
        text_encoder_2,
        no_t5,
    })
}

/// Z-Image: text-to-image with CFG through --guidance and --negative; the transformer's weights
/// may be replaced (a GGUF of the original checkpoint's names, architecture lumina2 as
/// ComfyUI-GGUF writes it), and Qwen3's (`--text-encoder-2`, a llama.cpp qwen3 GGUF).
fn fill_zimage(asked: &JobOverrides, kind: JobKind) -> crate::Result<FlowFill> {
    for (set, flag, why) in [
        (
            asked.true_cfg.is_some(),
            "--true-cfg",
            "its guidance is --guidance (classifier-free above 0) with --negative",
        ),
        (
            asked.no_t5 == Some(true),
            "--no-t5",
            "it has no T5 (its one text encoder is Qwen3)",
        ),
    ] {
        if set {
            return Err(bad(format!("{flag}: Z-Image takes no such flag; {why}")));
        }
    }
    if kind != JobKind::Txt2img {
        return Err(bad(
            "--init-image: Z-Image runs text-to-image only; drop --init-image and --mask",
        ));
    }
    let transformer = asked
        .transformer
        .as_deref()
        .map(|p| weights_file(p, "--transformer", &["lumina2", "zimage", "z_image"]))
        .transpose()?;
    let text_encoder_2 = encoder_gguf(
        asked,
        &[crate::engines::nn::text::qwen_gguf::ARCHITECTURE],
        "a Qwen3 GGUF file (e.g. Qwen3-4B-Q8_0.gguf; Z-Image-Turbo reads Qwen3-4B)",
    )?;
    Ok(FlowFill {
        max_sequence_length: asked.max_sequence_length,
        true_cfg: None,
        transformer,
        text_encoder_2,
        no_t5: false,
    })
}

/// `--text-encoder-2`: a llama.cpp GGUF of the model's big text encoder (`what` says which),
/// checked now.
fn encoder_gguf(
    asked: &JobOverrides,
    architectures: &[&str],
    what: &str,
) -> crate::Result<Option<PathBuf>> {
    let Some(path) = asked.text_encoder_2.as_deref() else {
        return Ok(None);
    };
    if path.extension().is_none_or(|e| e != "gguf") {
        return Err(bad(format!(
            "--text-encoder-2 {}: takes {what}",
            path.display()
        )));
    }
    weights_file(path, "--text-encoder-2", architectures).map(Some)
}

/// A replacement weights file: it exists, and a GGUF's header is sound, of the architecture
/// expected and of types pallaidium reads (checked now, before anything is queued).
fn weights_file(path: &Path, flag: &str, architectures: &[&str]) -> crate::Result<PathBuf> {
    let path = absolute(path);
    if !path.is_file() {
        return Err(bad(format!("{flag} {}: no such file", path.display())));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("gguf") => {
            let file = GgufFile::open(&path).map_err(|e| bad(format!("{flag} {e}")))?;
            let arch = file.architecture().unwrap_or_default();
            if !architectures.contains(&arch) {
                return Err(bad(format!(
                    "{flag} {}: a GGUF of architecture `{arch}`, not {}; pass the matching file",
                    path.display(),
                    architectures.join(" or ")
                )));
            }
            file.check_supported()
                .map_err(|e| bad(format!("{flag} {e}")))?;
        }
        Some("safetensors") => {}
        _ => {
            return Err(bad(format!(
                "{flag} {}: use a .gguf or .safetensors file",
                path.display()
            )));
        }
    }
    Ok(path)
}
