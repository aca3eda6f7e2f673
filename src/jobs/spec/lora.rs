//! `--lora PATH|REPO:FILE[@WEIGHT]`: each value parsed, its file found (a path, or a file of a
//! Hugging Face repo in the local cache) and checked before anything is queued. Which layers it
//! matches is the engine's check, at load (`engines::nn::lora`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::resolve::absolute;
use crate::models::Family;

/// One LoRA of a job as stored: its file (absolute) and strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraRef {
    pub path: PathBuf,
    pub weight: f64,
}

impl LoraRef {
    /// The name A1111's `<lora:NAME:WEIGHT>` uses: the file's stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The `--lora` value that asks for it again.
    pub fn flag_value(&self) -> String {
        format!("{}@{}", self.path.display(), self.weight)
    }

    /// What the engine gets.
    pub fn to_engine(&self) -> crate::engines::nn::lora::LoraSpec {
        crate::engines::nn::lora::LoraSpec {
            path: self.path.clone(),
            weight: self.weight,
        }
    }
}

/// Strengths outside this are refused as typos.
const MAX_WEIGHT: f64 = 10.0;

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// `VALUE[@WEIGHT]` split: the weight only when what follows the last `@` is a number.
pub fn split_weight(value: &str) -> crate::Result<(&str, f64)> {
    let Some((file, weight)) = value.rsplit_once('@') else {
        return Ok((value, 1.0));
    };
    let Ok(w) = weight.trim().parse::<f64>() else {
        return Ok((value, 1.0));
    };
    if !w.is_finite() || w.abs() > MAX_WEIGHT {
        return Err(bad(format!(
            "--lora {value}: the weight {weight} must be a number between -{MAX_WEIGHT} and \
             {MAX_WEIGHT} (1 is the LoRA as trained)"
        )));
    }
    Ok((file, w))
}

/// `org/name:file.safetensors`: a repo id and a file in it.
fn repo_file(value: &str) -> Option<(&str, &str)> {
    let (repo, file) = value.split_once(':')?;
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = parts.len() == 2 && parts.iter().all(|p| !p.is_empty()) && !file.is_empty();
    ok.then_some((repo, file))
}

/// The file a `REPO:FILE` names in the Hugging Face cache (its `main` snapshot).
fn cached_file(repo: &str, file: &str) -> crate::Result<PathBuf> {
    let env = crate::platform::paths::PathEnv::from_process(&Default::default());
    let cache = env.hf_cache().ok_or_else(|| {
        bad(format!(
            "--lora {repo}:{file}: cannot find the Hugging Face cache"
        ))
    })?;
    let snapshot = crate::models::hf_cache::cached_snapshot(&cache, repo, "main");
    match snapshot.map(|s| s.join(file)).filter(|p| p.is_file()) {
        Some(p) => Ok(p),
        None => Err(bad(format!(
            "--lora {repo}:{file}: not in the Hugging Face cache {}; download it first \
             (`hf download {repo} {file}`) or pass the file's path",
            cache.display()
        ))),
    }
}

/// The job's LoRAs, checked: each file exists and is safetensors (pickles are refused), and the
/// model's family takes LoRAs (FLUX's only into its dense weights, not a `--transformer` file).
pub fn fill(
    asked: Option<&[String]>,
    family: Family,
    transformer: Option<&Path>,
) -> crate::Result<Vec<LoraRef>> {
    let asked = asked.unwrap_or_default();
    if asked.is_empty() {
        return Ok(vec![]);
    }
    if !matches!(
        family,
        Family::Sd1 | Family::Sd2 | Family::Sdxl | Family::Flux
    ) {
        return Err(bad(format!(
            "--lora: LoRAs apply to Stable Diffusion 1.x/2.x, SDXL and FLUX models; this is a \
             {family:?} model"
        )));
    }
    if let Some(file) = transformer {
        return Err(bad(format!(
            "--lora: LoRAs merge into the dense transformer/ weights of the model folder, not \
             into --transformer {} (a GGUF's quantized layers are not merged); drop one of the two",
            file.display()
        )));
    }
    asked.iter().map(|v| one(v)).collect()
}

fn one(value: &str) -> crate::Result<LoraRef> {
    let (file, weight) = split_weight(value)?;
    let path = Path::new(file);
    let path = if path.exists() {
        absolute(path)
    } else if let Some((repo, name)) = repo_file(file) {
        cached_file(repo, name)?
    } else {
        return Err(bad(format!("--lora {file}: no such file")));
    };
    crate::engines::nn::lora::file::check_path(&path)?;
    Ok(LoraRef { path, weight })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_last_at_sign() {
        assert_eq!(
            split_weight("a.safetensors").unwrap(),
            ("a.safetensors", 1.0)
        );
        assert_eq!(
            split_weight("a.safetensors@0.5").unwrap(),
            ("a.safetensors", 0.5)
        );
        assert_eq!(
            split_weight("me@home/a.safetensors").unwrap().0,
            "me@home/a.safetensors"
        );
        assert_eq!(split_weight("x@-1").unwrap(), ("x", -1.0));
        assert!(split_weight("x@1e9").is_err());
    }

    #[test]
    fn repo_files_are_told_from_paths() {
        assert_eq!(
            repo_file("org/name:f.safetensors"),
            Some(("org/name", "f.safetensors"))
        );
        assert_eq!(repo_file("dir/sub/f.safetensors"), None);
        assert_eq!(repo_file("C:/f.safetensors"), None);
    }

    #[test]
    fn pickles_missing_files_and_other_families_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("l.pth");
        std::fs::write(&pth, b"x").unwrap();
        let st = dir.path().join("style.safetensors");
        std::fs::write(&st, b"x").unwrap();
        let val = |p: &Path| vec![format!("{}@0.7", p.display())];
        let err = fill(Some(&val(&pth)), Family::Sd1, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pickled"), "{err}");
        let err = fill(
            Some(&val(&dir.path().join("none.safetensors"))),
            Family::Sd1,
            None,
        );
        assert!(err.unwrap_err().to_string().contains("no such file"));
        let err = fill(Some(&val(&st)), Family::ZImage, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LoRAs apply to"), "{err}");
        let ok = fill(Some(&val(&st)), Family::Sdxl, None).unwrap();
        assert_eq!(ok[0].weight, 0.7);
        assert_eq!(ok[0].name(), "style");
        let err = fill(Some(&val(&st)), Family::Flux, Some(Path::new("t.gguf")));
        assert!(err.unwrap_err().to_string().contains("t.gguf"));
    }
}
