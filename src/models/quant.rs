//! Quantized variants of a registry model (`[[models.quants]]`): GGUF files, usually from another
//! repo (city96's FLUX and T5 GGUFs), that replace some components' weights. A variant is
//! fetched as the model's repo without those weights plus each GGUF file, and a job uses it when
//! the full weights are not in the cache.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::{Component, ModelEntry};
use super::hf_cache;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantFile {
    /// The variant's name, lowercase (`q4_k_s`): what `--quant` takes.
    pub name: String,
    /// The component whose weights the file replaces (`transformer`, `text_encoder_2`).
    pub component: String,
    /// The Hugging Face repo holding the file.
    pub repo: String,
    #[serde(default = "super::entry::default_revision")]
    pub revision: String,
    /// The file's path inside that repo.
    pub file: String,
}

/// The weights files that replace parts of a model folder (FLUX's transformer and T5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplacedWeights {
    pub transformer: Option<PathBuf>,
    pub text_encoder_2: Option<PathBuf>,
}

impl ReplacedWeights {
    pub fn is_empty(&self) -> bool {
        self.transformer.is_none() && self.text_encoder_2.is_none()
    }

    fn set(&mut self, component: &str, path: PathBuf) {
        match component {
            "transformer" => self.transformer = Some(path),
            "text_encoder_2" => self.text_encoder_2 = Some(path),
            _ => {}
        }
    }
}

/// The components a quant file may replace (what the engines read from a file).
pub const REPLACEABLE: [&str; 2] = ["transformer", "text_encoder_2"];

/// The entry's variant names, in registry order, each once.
pub fn names(entry: &ModelEntry) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for q in &entry.quants {
        if !out.contains(&q.name.as_str()) {
            out.push(&q.name);
        }
    }
    out
}

/// The files of variant `name` (case-insensitive); unknown names list the known ones.
pub fn variant<'e>(entry: &'e ModelEntry, name: &str) -> Result<Vec<&'e QuantFile>> {
    let wanted = name.trim().to_ascii_lowercase();
    let files: Vec<&QuantFile> = entry.quants.iter().filter(|q| q.name == wanted).collect();
    if files.is_empty() {
        let known = names(entry);
        return Err(Error::bad_input(if known.is_empty() {
            format!(
                "--quant {name}: model `{}` has no quantized variants",
                entry.id
            )
        } else {
            format!(
                "--quant {name}: model `{}` has the variants {}",
                entry.id,
                known.join(", ")
            )
        }));
    }
    Ok(files)
}

/// The entry without the weights `files` replace (their configs stay).
pub fn base_without(entry: &ModelEntry, files: &[&QuantFile]) -> ModelEntry {
    let mut base = entry.clone();
    for c in &mut base.components {
        if files.iter().any(|q| q.component == c.name) {
            c.weights = None;
            c.weights_fp16 = None;
        }
    }
    base.components
        .retain(|c| !c.files.is_empty() || c.weights.is_some());
    base
}

/// A one-file entry that fetches `q` from its own repo.
pub fn file_entry(entry: &ModelEntry, q: &QuantFile) -> ModelEntry {
    let mut one = entry.clone();
    one.id = format!("{}:{}", entry.id, q.name);
    one.repo.clone_from(&q.repo);
    one.revision.clone_from(&q.revision);
    one.gated = false;
    one.quants.clear();
    one.components = vec![Component {
        name: q.component.clone(),
        files: vec![],
        weights: Some(q.file.clone()),
        weights_fp16: None,
    }];
    one
}

/// The variant's files in the cache with the rest of the model, when all are there: the
/// replaced weights by component.
pub fn cached(cache: &Path, entry: &ModelEntry, name: &str) -> Option<ReplacedWeights> {
    let files = variant(entry, name).ok()?;
    let base = base_without(entry, &files);
    if !hf_cache::is_cached(cache, &base, false) && !hf_cache::is_cached(cache, &base, true) {
        return None;
    }
    let mut replaced = ReplacedWeights::default();
    for q in files {
        let snapshot = hf_cache::cached_snapshot(cache, &q.repo, &q.revision)?;
        let path = snapshot.join(&q.file);
        if !path.is_file() {
            return None;
        }
        replaced.set(&q.component, path);
    }
    Some(replaced)
}

/// The first variant (registry order) complete in the cache.
pub fn first_cached(cache: &Path, entry: &ModelEntry) -> Option<(String, ReplacedWeights)> {
    names(entry)
        .into_iter()
        .find_map(|n| cached(cache, entry, n).map(|r| (n.to_owned(), r)))
}

/// Registry checks of the `[[models.quants]]` rows: lowercase names, a replaceable component the
/// entry has, a relative .gguf path.
pub fn validate(e: &ModelEntry) -> std::result::Result<(), (&'static str, String)> {
    for q in &e.quants {
        let name_ok = !q.name.is_empty()
            && q.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !name_ok {
            return Err((
                "quants.name",
                format!("`{}`: use lowercase letters, digits, '_' or '-'", q.name),
            ));
        }
        if !REPLACEABLE.contains(&q.component.as_str())
            || !e.components.iter().any(|c| c.name == q.component)
        {
            return Err((
                "quants.component",
                format!(
                    "`{}` must be one of the entry's components {} (one of {})",
                    q.component,
                    e.components
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    REPLACEABLE.join(", ")
                ),
            ));
        }
        if !q.file.ends_with(".gguf")
            || q.file.starts_with('/')
            || q.file.split('/').any(|p| p == ".." || p.is_empty())
        {
            return Err((
                "quants.file",
                format!("`{}` must be a relative path to a .gguf file", q.file),
            ));
        }
        if q.repo.split('/').count() != 2 {
            return Err(("quants.repo", format!("`{}` is not `org/name`", q.repo)));
        }
    }
    Ok(())
}
