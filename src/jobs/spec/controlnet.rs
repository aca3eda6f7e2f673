//! `--controlnet ID|DIR --control-image PATH [--control-scale F] [--control-start F]
//! [--control-end F] [--control-preprocess canny|none] [--canny-low N] [--canny-high N]`:
//! repeatable, paired in order. Each ControlNet's folder is found (a path, or a Hugging Face repo
//! in the local cache), its config checked to be a diffusers ControlNetModel of the model's
//! family, its control image's header read and its numbers checked, before anything is queued.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::overrides::JobOverrides;
use super::resolve::{absolute, image_size};
use crate::models::Family;

/// How the control image is turned into the ControlNet's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ControlPreprocess {
    /// Used as given (already an edge map, depth map, pose...).
    #[default]
    None,
    /// Canny edges computed from it (OpenCV's `cv2.Canny(image, low, high)`).
    Canny,
}

impl ControlPreprocess {
    pub fn parse_flag(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "canny" => Ok(Self::Canny),
            _ => Err("must be canny or none".to_owned()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Canny => "canny",
        }
    }
}

/// One ControlNet of a job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlNetRef {
    /// The ControlNet's diffusers folder (config.json + diffusion_pytorch_model.safetensors),
    /// absolute.
    pub model: PathBuf,
    /// The control image, absolute.
    pub image: PathBuf,
    /// `controlnet_conditioning_scale`.
    pub scale: f64,
    /// `control_guidance_start` / `control_guidance_end`: the fraction of the steps it acts in.
    pub start: f64,
    pub end: f64,
    pub preprocess: ControlPreprocess,
    /// Canny's hysteresis thresholds (with `preprocess: canny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canny_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canny_high: Option<f64>,
}

impl ControlNetRef {
    /// The name A1111's ControlNet extension shows: the folder's name.
    pub fn name(&self) -> String {
        self.model
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The stored ControlNets as flags again (`--from-image`, editing a queued job): every value once
/// per ControlNet, so they pair in order.
pub fn to_overrides(nets: &[ControlNetRef], o: &mut JobOverrides) {
    if nets.is_empty() {
        return;
    }
    let all = |f: &dyn Fn(&ControlNetRef) -> f64| Some(nets.iter().map(f).collect::<Vec<_>>());
    o.controlnet = Some(
        nets.iter()
            .map(|c| c.model.to_string_lossy().into_owned())
            .collect(),
    );
    o.control_image = Some(nets.iter().map(|c| c.image.clone()).collect());
    o.control_scale = all(&|c| c.scale);
    o.control_start = all(&|c| c.start);
    o.control_end = all(&|c| c.end);
    o.control_preprocess = Some(nets.iter().map(|c| c.preprocess).collect());
    o.canny_low = all(&|c| c.canny_low.unwrap_or(DEFAULT_CANNY_LOW));
    o.canny_high = all(&|c| c.canny_high.unwrap_or(DEFAULT_CANNY_HIGH));
}

/// The A1111 ControlNet extension's `ControlNet N: "..."` fields of the `parameters` text.
pub fn a1111_fields(nets: &[ControlNetRef]) -> Vec<String> {
    nets.iter()
        .enumerate()
        .map(|(i, c)| {
            let mut inner = format!(
                "Module: {}, Model: {}, Weight: {}, Guidance Start: {}, Guidance End: {}",
                c.preprocess.as_str(),
                c.name(),
                c.scale,
                c.start,
                c.end
            );
            if let (Some(low), Some(high)) = (c.canny_low, c.canny_high) {
                inner.push_str(&format!(", Threshold A: {low}, Threshold B: {high}"));
            }
            format!("ControlNet {i}: \"{}\"", inner.replace('"', "'"))
        })
        .collect()
}

/// The engine's inputs: each control image decoded, preprocessed (Canny edges of the image as
/// given, as the diffusers docs compute them) and resized to the job's size (Lanczos, as
/// diffusers' image processor).
pub fn engine_inputs(
    nets: &[ControlNetRef],
    width: u32,
    height: u32,
) -> crate::Result<Vec<crate::engines::sd::controlnet::steer::ControlInput>> {
    use crate::engines::sd::controlnet::{canny, steer::ControlInput};
    nets.iter()
        .map(|c| {
            let image = super::resolve::load_image(&c.image, "--control-image")?.to_rgb8();
            let image = match c.preprocess {
                ControlPreprocess::None => image,
                ControlPreprocess::Canny => canny::canny_rgb(
                    &image,
                    c.canny_low.unwrap_or(DEFAULT_CANNY_LOW),
                    c.canny_high.unwrap_or(DEFAULT_CANNY_HIGH),
                ),
            };
            let image = if image.dimensions() == (width, height) {
                image
            } else {
                image::imageops::resize(
                    &image,
                    width,
                    height,
                    image::imageops::FilterType::Lanczos3,
                )
            };
            Ok(ControlInput {
                dir: c.model.clone(),
                image,
                scale: c.scale,
                start: c.start,
                end: c.end,
            })
        })
        .collect()
}

/// The diffusers docs' Canny thresholds.
pub const DEFAULT_CANNY_LOW: f64 = 100.0;
pub const DEFAULT_CANNY_HIGH: f64 = 200.0;
/// Scales above this are refused as typos.
pub const MAX_SCALE: f64 = 10.0;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// A per-ControlNet flag's values: none (the default for all), one (for all) or one for each
/// `--controlnet`, in order.
fn paired<T: Clone>(
    flag: &str,
    values: Option<&[T]>,
    n: usize,
    default: T,
) -> crate::Result<Vec<T>> {
    match values.unwrap_or_default() {
        [] => Ok(vec![default; n]),
        [one] => Ok(vec![one.clone(); n]),
        many if many.len() == n => Ok(many.to_vec()),
        many => Err(bad(format!(
            "{flag} is given {} times but --controlnet {n} times: give it once (for all \
             ControlNets) or once for each --controlnet, in the same order",
            many.len()
        ))),
    }
}

/// The job's ControlNets, checked (see the module header). Empty without `--controlnet`; the
/// control flags without it are refused.
pub fn fill(asked: &JobOverrides, family: Family) -> crate::Result<Vec<ControlNetRef>> {
    let nets = asked.controlnet.as_deref().unwrap_or_default();
    let images = asked.control_image.as_deref().unwrap_or_default();
    let n = nets.len();
    if n == 0 {
        let stray = [
            ("--control-image", !images.is_empty()),
            ("--control-scale", asked.control_scale.is_some()),
            ("--control-start", asked.control_start.is_some()),
            ("--control-end", asked.control_end.is_some()),
            ("--control-preprocess", asked.control_preprocess.is_some()),
            ("--canny-low", asked.canny_low.is_some()),
            ("--canny-high", asked.canny_high.is_some()),
        ];
        if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
            return Err(bad(format!(
                "{flag} needs --controlnet ID|DIR (the ControlNet it is for)"
            )));
        }
        return Ok(vec![]);
    }
    if !matches!(family, Family::Sd1 | Family::Sd2 | Family::Sdxl) {
        return Err(bad(format!(
            "--controlnet: ControlNets apply to Stable Diffusion 1.x/2.x and SDXL models; this \
             is a {family:?} model"
        )));
    }
    if images.len() != n {
        return Err(bad(format!(
            "--controlnet is given {n} times but --control-image {} times: each ControlNet \
             needs its control image, paired in order",
            images.len()
        )));
    }
    let scales = paired("--control-scale", asked.control_scale.as_deref(), n, 1.0)?;
    let starts = paired("--control-start", asked.control_start.as_deref(), n, 0.0)?;
    let ends = paired("--control-end", asked.control_end.as_deref(), n, 1.0)?;
    let pre = paired(
        "--control-preprocess",
        asked.control_preprocess.as_deref(),
        n,
        ControlPreprocess::None,
    )?;
    let lows = paired(
        "--canny-low",
        asked.canny_low.as_deref(),
        n,
        DEFAULT_CANNY_LOW,
    )?;
    let highs = paired(
        "--canny-high",
        asked.canny_high.as_deref(),
        n,
        DEFAULT_CANNY_HIGH,
    )?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let model = find_dir(&nets[i])?;
        check_config(&model, &nets[i], family)?;
        let image = absolute(&images[i]);
        image_size(&image, "--control-image")?;
        let (scale, start, end) = (scales[i], starts[i], ends[i]);
        check_numbers(scale, start, end)?;
        let canny = pre[i] == ControlPreprocess::Canny;
        if canny {
            check_canny(lows[i], highs[i])?;
        }
        out.push(ControlNetRef {
            model,
            image,
            scale,
            start,
            end,
            preprocess: pre[i],
            canny_low: canny.then_some(lows[i]),
            canny_high: canny.then_some(highs[i]),
        });
    }
    Ok(out)
}

fn check_numbers(scale: f64, start: f64, end: f64) -> crate::Result<()> {
    if !scale.is_finite() || !(0.0..=MAX_SCALE).contains(&scale) {
        return Err(bad(format!(
            "--control-scale {scale}: must be between 0 and {MAX_SCALE} (1 is the ControlNet as \
             trained)"
        )));
    }
    for (flag, v) in [("--control-start", start), ("--control-end", end)] {
        if !v.is_finite() || !(0.0..=1.0).contains(&v) {
            return Err(bad(format!(
                "{flag} {v}: must be between 0 and 1 (the fraction of the steps)"
            )));
        }
    }
    if start >= end {
        return Err(bad(format!(
            "--control-start {start} must be less than --control-end {end}"
        )));
    }
    Ok(())
}

fn check_canny(low: f64, high: f64) -> crate::Result<()> {
    for (flag, v) in [("--canny-low", low), ("--canny-high", high)] {
        if !v.is_finite() || !(0.0..=10_000.0).contains(&v) {
            return Err(bad(format!(
                "{flag} {v}: must be a gradient threshold between 0 and 10000 (100 and 200 are \
                 typical)"
            )));
        }
    }
    if low > high {
        return Err(bad(format!(
            "--canny-low {low} must not be more than --canny-high {high}"
        )));
    }
    Ok(())
}

/// A folder, or `org/name` in the Hugging Face cache.
fn find_dir(value: &str) -> crate::Result<PathBuf> {
    let path = Path::new(value);
    if path.is_dir() {
        return Ok(absolute(path));
    }
    let parts: Vec<&str> = value.split('/').collect();
    if !path.exists() && parts.len() == 2 && parts.iter().all(|p| !p.is_empty()) {
        let env = crate::platform::paths::PathEnv::from_process(&Default::default());
        if let Some(snapshot) = env
            .hf_cache()
            .and_then(|cache| crate::models::hf_cache::cached_snapshot(&cache, value, "main"))
        {
            return Ok(snapshot);
        }
        return Err(bad(format!(
            "--controlnet {value}: no such folder, and not in the Hugging Face cache; download \
             it first (`hf download {value}`) or pass its folder"
        )));
    }
    Err(bad(format!(
        "--controlnet {value}: no such folder (a diffusers ControlNet folder holds config.json \
         and diffusion_pytorch_model.safetensors)"
    )))
}

/// What the config says about a ControlNet: which family's UNet it steers (as the model's own
/// family is detected: SDXL's text_time conditioning, SD2's 1024-wide text states, else SD1;
/// that the widths match the model's UNet exactly is checked when it loads).
pub fn config_family(config: &serde_json::Value) -> Family {
    if config.get("addition_embed_type").and_then(|v| v.as_str()) == Some("text_time") {
        return Family::Sdxl;
    }
    match config.get("cross_attention_dim").and_then(|v| v.as_u64()) {
        Some(2048) => Family::Sdxl,
        Some(1024) => Family::Sd2,
        _ => Family::Sd1,
    }
}

fn check_config(dir: &Path, asked: &str, family: Family) -> crate::Result<()> {
    let file = dir.join("config.json");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        bad(format!(
            "--controlnet {asked}: cannot read {} ({e}); a diffusers ControlNet folder holds \
             config.json and diffusion_pytorch_model.safetensors",
            file.display()
        ))
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "--controlnet {asked}: {} does not parse ({e})",
            file.display()
        ))
    })?;
    let class = config.get("_class_name").and_then(|v| v.as_str());
    if class != Some("ControlNetModel") {
        return Err(bad(format!(
            "--controlnet {asked}: {} is not a ControlNet's config (its _class_name is {}, not \
             ControlNetModel)",
            file.display(),
            class.unwrap_or("missing")
        )));
    }
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    if !weights.is_file() {
        return Err(bad(format!(
            "--controlnet {asked}: {} is missing (.bin pickles are not read; convert them to \
             safetensors)",
            weights.display()
        )));
    }
    let theirs = config_family(&config);
    if theirs != family {
        return Err(bad(format!(
            "--controlnet {asked}: a ControlNet for {theirs:?} cannot steer this {family:?} \
             model; use one trained for {family:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
