//! Reading a BLIP captioning folder's config.json and preprocessor_config.json.
//!
//! The real repos' configs were written by different transformers versions and leave keys out;
//! every missing key takes the default of transformers' `BlipTextConfig` / `BlipVisionConfig` /
//! `BlipImageProcessor`, so a folder loads here exactly when it loads there.

use std::path::Path;

use candle_transformers::models::{blip, blip_text};
use serde_json::Value;

use crate::engines::config_check as check;
use crate::error::{Error, Result};

/// The model's sizes (candle's config) plus the generation ids transformers reads from text_config.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub candle: blip::Config,
    /// The decoder's first token ([DEC]).
    pub bos_token_id: u32,
    /// Generation stops on this token ([SEP]); transformers passes it as eos to `generate`.
    pub sep_token_id: u32,
    /// Whether the LM head shares the word embeddings (the saved file may omit the head's weight).
    pub tie_word_embeddings: bool,
}

/// PIL resampling filters the preprocessor may name (`resample`), as PIL numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    Bilinear,
    Bicubic,
}

/// What `BlipImageProcessor` does to an image.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub height: usize,
    pub width: usize,
    pub resample: Resample,
    pub do_resize: bool,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, BlipImageProcessor's defaults.
/// Written as transformers writes them (Python floats); numpy casts them to float32 before use.
const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; a BLIP captioning folder needs it (download the model again)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::bad_input(format!(
            "{} is not valid JSON ({e}); download it again",
            path.display()
        ))
    })
}

/// A key of `obj` that, when present, must have the right type; `None` when absent or null.
fn opt_usize(obj: &Value, key: &str, file: &Path) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad_key(file, key, "a non-negative integer")),
    }
}

fn opt_f64(obj: &Value, key: &str, file: &Path) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad_key(file, key, "a number")),
    }
}

fn opt_bool(obj: &Value, key: &str, file: &Path) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad_key(file, key, "true or false")),
    }
}

fn bad_key(file: &Path, key: &str, what: &str) -> Error {
    Error::bad_input(format!(
        "{}: `{key}` must be {what}; the file is damaged or not a BLIP config",
        file.display()
    ))
}

fn activation(obj: &Value, file: &Path) -> Result<candle_nn::Activation> {
    let name = obj
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    serde_json::from_value(Value::String(name.to_string())).map_err(|_| {
        Error::bad_input(format!(
            "{}: unsupported hidden_act `{name}` (BLIP uses gelu)",
            file.display()
        ))
    })
}

/// `image_size` / `patch_size` may be an int or a [h, w] pair; candle's model only does squares.
fn square(obj: &Value, key: &str, default: usize, file: &Path) -> Result<usize> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Array(items)) => {
            let sides: Vec<u64> = items.iter().filter_map(Value::as_u64).collect();
            match sides.as_slice() {
                [h, w] if h == w && *h > 0 => Ok(*h as usize),
                _ => Err(bad_key(
                    file,
                    key,
                    "a positive integer or a square [h, w] pair",
                )),
            }
        }
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(n as usize),
            _ => Err(bad_key(file, key, "a positive integer")),
        },
    }
}

pub fn model_config(dir: &Path) -> Result<ModelConfig> {
    let file = dir.join("config.json");
    let root = read_json(&file)?;
    let empty = Value::Object(Default::default());
    let text = root.get("text_config").unwrap_or(&empty);
    let vision = root.get("vision_config").unwrap_or(&empty);
    if let Some(kind) = root.get("model_type").and_then(Value::as_str)
        && kind != "blip"
    {
        return Err(Error::bad_input(format!(
            "{}: model_type is `{kind}`, not `blip`; pick a BLIP captioning model \
             (Salesforce/blip-image-captioning-base or -large)",
            file.display()
        )));
    }

    let v_hidden = opt_usize(vision, "hidden_size", &file)?.unwrap_or(768);
    let vision_config = blip::VisionConfig {
        hidden_size: v_hidden,
        intermediate_size: opt_usize(vision, "intermediate_size", &file)?.unwrap_or(3072),
        projection_dim: opt_usize(vision, "projection_dim", &file)?.unwrap_or(512),
        num_hidden_layers: opt_usize(vision, "num_hidden_layers", &file)?.unwrap_or(12),
        num_attention_heads: opt_usize(vision, "num_attention_heads", &file)?.unwrap_or(12),
        image_size: square(vision, "image_size", 384, &file)?,
        patch_size: square(vision, "patch_size", 16, &file)?,
        hidden_act: activation(vision, &file)?,
        layer_norm_eps: opt_f64(vision, "layer_norm_eps", &file)?.unwrap_or(1e-5),
    };
    let t_hidden = opt_usize(text, "hidden_size", &file)?.unwrap_or(768);
    let t_heads = opt_usize(text, "num_attention_heads", &file)?.unwrap_or(8);
    let vocab_size = opt_usize(text, "vocab_size", &file)?.unwrap_or(30524);
    let text_config = blip_text::Config {
        vocab_size,
        hidden_size: t_hidden,
        // BlipConfig.__post_init__ overwrites this with the vision width, whatever the file says.
        encoder_hidden_size: v_hidden,
        intermediate_size: opt_usize(text, "intermediate_size", &file)?.unwrap_or(3072),
        projection_dim: opt_usize(text, "projection_dim", &file)?.unwrap_or(768),
        num_hidden_layers: opt_usize(text, "num_hidden_layers", &file)?.unwrap_or(12),
        num_attention_heads: t_heads,
        max_position_embeddings: opt_usize(text, "max_position_embeddings", &file)?.unwrap_or(512),
        hidden_act: activation(text, &file)?,
        layer_norm_eps: opt_f64(text, "layer_norm_eps", &file)?.unwrap_or(1e-12),
        // Captioning always runs the decoder with cross-attention.
        is_decoder: true,
    };
    check::positive(&[
        ("vision_config.hidden_size", v_hidden),
        (
            "vision_config.intermediate_size",
            vision_config.intermediate_size,
        ),
        (
            "vision_config.num_hidden_layers",
            vision_config.num_hidden_layers,
        ),
        ("text_config.vocab_size", vocab_size),
        ("text_config.hidden_size", t_hidden),
        (
            "text_config.intermediate_size",
            text_config.intermediate_size,
        ),
        (
            "text_config.num_hidden_layers",
            text_config.num_hidden_layers,
        ),
        (
            "text_config.max_position_embeddings",
            text_config.max_position_embeddings,
        ),
    ])
    .and_then(|()| {
        check::positive_float("vision_config.layer_norm_eps", vision_config.layer_norm_eps)
    })
    .and_then(|()| check::positive_float("text_config.layer_norm_eps", text_config.layer_norm_eps))
    .map_err(|why| Error::bad_input(format!("{}: {why}", file.display())))?;
    for (what, hidden, heads) in [
        ("vision_config", v_hidden, vision_config.num_attention_heads),
        ("text_config", t_hidden, t_heads),
    ] {
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(Error::bad_input(format!(
                "{}: {what}.hidden_size {hidden} is not a multiple of num_attention_heads {heads}",
                file.display()
            )));
        }
    }
    if !vision_config
        .image_size
        .is_multiple_of(vision_config.patch_size)
    {
        return Err(Error::bad_input(format!(
            "{}: vision_config.image_size {} is not a multiple of patch_size {}",
            file.display(),
            vision_config.image_size,
            vision_config.patch_size
        )));
    }
    let id = |key: &str, default: usize| -> Result<u32> {
        let v = opt_usize(text, key, &file)?.unwrap_or(default);
        if v >= vocab_size {
            return Err(Error::bad_input(format!(
                "{}: text_config.{key} {v} is outside the vocabulary ({vocab_size} tokens)",
                file.display()
            )));
        }
        Ok(v as u32)
    };
    let bos_token_id = id("bos_token_id", 30522)?;
    let sep_token_id = id("sep_token_id", 102)?;
    // transformers ties when either the top level or text_config asks (both default to true).
    let tie_word_embeddings = opt_bool(&root, "tie_word_embeddings", &file)?.unwrap_or(true)
        && opt_bool(text, "tie_word_embeddings", &file)?.unwrap_or(true);
    Ok(ModelConfig {
        candle: blip::Config {
            text_config,
            vision_config,
            projection_dim: opt_usize(&root, "projection_dim", &file)?.unwrap_or(512),
            image_text_hidden_size: opt_usize(&root, "image_text_hidden_size", &file)?
                .unwrap_or(256),
        },
        bos_token_id,
        sep_token_id,
        tie_word_embeddings,
    })
}

pub fn preprocess_config(dir: &Path) -> Result<PreprocessConfig> {
    let file = dir.join("preprocessor_config.json");
    let root = read_json(&file)?;
    // `size` is an int (old files), {"height", "width"}, or {"shortest_edge"} (square here).
    let (height, width) = match root.get("size") {
        None | Some(Value::Null) => (384, 384),
        Some(Value::Object(map)) => {
            let get = |k: &str| map.get(k).and_then(Value::as_u64).map(|n| n as usize);
            match (get("height"), get("width"), get("shortest_edge")) {
                (Some(h), Some(w), _) => (h, w),
                (_, _, Some(s)) => (s, s),
                _ => return Err(bad_key(&file, "size", "{\"height\": h, \"width\": w}")),
            }
        }
        Some(v) => match v.as_u64() {
            Some(n) => (n as usize, n as usize),
            None => return Err(bad_key(&file, "size", "an integer or {height, width}")),
        },
    };
    if height == 0 || width == 0 {
        return Err(bad_key(&file, "size", "positive"));
    }
    let resample = match opt_usize(&root, "resample", &file)?.unwrap_or(3) {
        2 => Resample::Bilinear,
        3 => Resample::Bicubic,
        other => {
            return Err(Error::bad_input(format!(
                "{}: resample {other} is not supported (BLIP uses 3, bicubic; 2, bilinear, \
                 also works)",
                file.display()
            )));
        }
    };
    let triple = |key: &str, default: [f64; 3]| -> Result<[f32; 3]> {
        match root.get(key) {
            None | Some(Value::Null) => Ok(default.map(|x| x as f32)),
            Some(Value::Array(items)) if items.len() == 3 => {
                let mut out = [0f32; 3];
                for (slot, item) in out.iter_mut().zip(items) {
                    *slot = item
                        .as_f64()
                        .ok_or_else(|| bad_key(&file, key, "three numbers"))?
                        as f32;
                }
                Ok(out)
            }
            Some(v) => match v.as_f64() {
                Some(x) => Ok([x as f32; 3]),
                None => Err(bad_key(&file, key, "three numbers")),
            },
        }
    };
    let std = triple("image_std", CLIP_STD)?;
    if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(bad_key(&file, "image_std", "non-zero"));
    }
    let rescale_factor = opt_f64(&root, "rescale_factor", &file)?.unwrap_or(1.0 / 255.0);
    if !rescale_factor.is_finite() {
        return Err(bad_key(&file, "rescale_factor", "a finite number"));
    }
    Ok(PreprocessConfig {
        height,
        width,
        resample,
        do_resize: opt_bool(&root, "do_resize", &file)?.unwrap_or(true),
        do_rescale: opt_bool(&root, "do_rescale", &file)?.unwrap_or(true),
        rescale_factor,
        do_normalize: opt_bool(&root, "do_normalize", &file)?.unwrap_or(true),
        mean: triple("image_mean", CLIP_MEAN)?,
        std,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
