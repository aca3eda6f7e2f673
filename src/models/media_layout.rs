//! Audio and text model folders (transformers layout: config.json with a `model_type`), and GGUF
//! language models (one `.gguf` file, alone or in a folder). Reads configs, never the weights.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::entry::Family;
use crate::{Error, Result};

/// An audio or text model on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaLayout {
    /// The folder (or the .gguf file itself) the engine loads.
    pub path: PathBuf,
    pub family: Family,
    /// An upscaler's scale, read from its weights' shapes.
    pub scale: Option<u32>,
}

/// The family a transformers `model_type` names, if it is one we run.
pub fn family_of_model_type(model_type: &str) -> Option<Family> {
    match model_type {
        "parler_tts" => Some(Family::ParlerTts),
        "musicgen" => Some(Family::Musicgen),
        "whisper" => Some(Family::Whisper),
        "blip" => Some(Family::Blip),
        _ => None,
    }
}

/// Whether `path` looks like a model this module understands (a .gguf file, a folder with one,
/// or a folder whose config.json names a known model_type). Errors only for broken configs.
pub fn detect(path: &Path) -> Result<Option<MediaLayout>> {
    if path.is_file() {
        if !is_gguf(path) {
            return super::upscaler_file::detect(path);
        }
        return Ok(Some(MediaLayout {
            path: path.to_path_buf(),
            family: Family::GgufLlm,
            scale: None,
        }));
    }
    if !path.is_dir() {
        return Ok(None);
    }
    let config = path.join("config.json");
    if config.is_file() {
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Error::bad_input(format!(
                "{}: not valid JSON: {e}; download the model again",
                config.display()
            ))
        })?;
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(family) = family_of_model_type(model_type) {
            return Ok(Some(MediaLayout {
                path: path.to_path_buf(),
                family,
                scale: None,
            }));
        }
        if !gguf_files(path).is_empty() {
            return Ok(Some(gguf_layout(path)));
        }
        if !model_type.is_empty() && !path.join("model_index.json").is_file() {
            return Err(Error::bad_input(format!(
                "{}: model_type `{model_type}` is not one pallaidium runs (parler_tts, musicgen, \
                 whisper, blip; Stable Diffusion folders have model_index.json; language models \
                 come as .gguf)",
                config.display()
            )));
        }
        return Ok(None);
    }
    Ok((!gguf_files(path).is_empty()).then(|| gguf_layout(path)))
}

fn gguf_layout(dir: &Path) -> MediaLayout {
    MediaLayout {
        path: dir.to_path_buf(),
        family: Family::GgufLlm,
        scale: None,
    }
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// The .gguf files directly in `dir`, sorted.
pub fn gguf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_gguf(p))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn folder_with_config(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    #[test]
    fn model_types_map_to_families() {
        for (t, f) in [
            ("parler_tts", Family::ParlerTts),
            ("musicgen", Family::Musicgen),
            ("whisper", Family::Whisper),
            ("blip", Family::Blip),
        ] {
            let dir = folder_with_config(&format!(r#"{{"model_type":"{t}"}}"#));
            assert_eq!(detect(dir.path()).unwrap().unwrap().family, f);
        }
    }

    #[test]
    fn gguf_file_or_folder_is_a_language_model() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tiny-q8_0.gguf");
        std::fs::write(&file, b"GGUF").unwrap();
        assert_eq!(detect(&file).unwrap().unwrap().family, Family::GgufLlm);
        assert_eq!(detect(dir.path()).unwrap().unwrap().path, dir.path());
    }

    #[test]
    fn unknown_model_type_is_named() {
        let dir = folder_with_config(r#"{"model_type":"bert"}"#);
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bert"), "{err}");
        let broken = folder_with_config("{nope");
        assert!(
            detect(broken.path())
                .unwrap_err()
                .to_string()
                .contains("JSON")
        );
    }

    #[test]
    fn a_diffusers_folder_is_not_a_media_model() {
        let dir = tempfile::tempdir().unwrap();
        assert!(detect(dir.path()).unwrap().is_none());
    }
}
