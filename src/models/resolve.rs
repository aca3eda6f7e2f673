//! `--model ID|DIR` -> files on disk. Order (DESIGN.md): a local folder, then a registry id (or its
//! Hugging Face repo id) found in the local HF cache. Downloading is `pallaidium fetch`'s job.

use std::path::{Path, PathBuf};

use super::entry::{Defaults, Family, Kind, ModelEntry};
use super::hf_cache;
use super::layout::ModelLayout;
use super::media_layout;
use super::quant::{self, ReplacedWeights};
use super::registry::Registry;
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The registry id, or the folder name of a local model.
    pub id: String,
    /// The pipeline folder (a cache snapshot or the user's folder).
    pub dir: PathBuf,
    /// The registry entry; `None` for a local folder.
    pub entry: Option<ModelEntry>,
    /// The diffusers layout of an image model; `None` for audio and text models.
    pub layout: Option<ModelLayout>,
    pub family: Family,
    /// What the model makes (the registry's word, or the family's for a local folder).
    pub kind: Kind,
    /// The entry's defaults, or the detected family's for a local folder.
    pub defaults: Defaults,
    /// Weights files replacing some of the folder's (a cached quantized variant).
    pub weights: ReplacedWeights,
    /// The quantized variant those files are, when one is used.
    pub quant: Option<String>,
}

pub fn resolve(registry: &Registry, model: &str, hf_cache: &Path) -> Result<ResolvedModel> {
    let path = Path::new(model);
    if path.is_dir() || (path.is_file() && media_layout::detect(path)?.is_some()) {
        return resolve_folder(path);
    }
    if let Some(entry) = registry
        .get(model)
        .or_else(|| registry.entries().iter().find(|e| e.repo == model))
    {
        return resolve_entry(entry, hf_cache);
    }
    if model.starts_with('.')
        || model.starts_with('/')
        || model.starts_with('~')
        || model.contains('\\')
    {
        return Err(Error::bad_input(format!(
            "model folder {model} does not exist; give a diffusers folder or a registry id (`pallaidium models` lists them)"
        )));
    }
    let close = close_matches(model, registry);
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(Error::bad_input(format!(
        "unknown model `{model}`{hint} (`pallaidium models` lists the registry ids; a local diffusers folder works too)"
    )))
}

fn resolve_folder(dir: &Path) -> Result<ResolvedModel> {
    let id = dir
        .canonicalize()
        .ok()
        .as_deref()
        .and_then(Path::file_name)
        .map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
    if let Some(media) = media_layout::detect(dir)? {
        return Ok(ResolvedModel {
            id,
            dir: media.path,
            entry: None,
            layout: None,
            family: media.family,
            kind: media.family.kind(),
            defaults: Defaults {
                scale: media.scale,
                ..media.family.default_params()
            },
            weights: ReplacedWeights::default(),
            quant: None,
        });
    }
    let layout = ModelLayout::open(dir)?;
    Ok(ResolvedModel {
        id,
        dir: dir.to_path_buf(),
        entry: None,
        defaults: layout.default_params(),
        family: layout.family,
        kind: layout.kind(),
        layout: Some(layout),
        weights: ReplacedWeights::default(),
        quant: None,
    })
}

fn resolve_entry(entry: &ModelEntry, cache: &Path) -> Result<ResolvedModel> {
    let missing_full = hf_cache::missing_files(cache, entry, false);
    let missing_fp16 = hf_cache::missing_files(cache, entry, true);
    let snapshot = hf_cache::cached_snapshot(cache, &entry.repo, &entry.revision);
    let complete = missing_full.is_empty() || missing_fp16.is_empty();
    // Without the full weights, a quantized variant in the cache serves (FLUX's GGUFs).
    let (weights, quant_name) = match (&snapshot, complete) {
        (Some(_), true) => (ReplacedWeights::default(), None),
        _ => match quant::first_cached(cache, entry) {
            Some((name, weights)) => {
                tracing::info!(model = %entry.id, quant = %name, "using the cached quantized variant");
                (weights, Some(name))
            }
            None => (ReplacedWeights::default(), None),
        },
    };
    let (Some(dir), true) = (snapshot, complete || quant_name.is_some()) else {
        // Report the variant closer to complete: that is the one the user most likely fetched.
        let missing = if missing_fp16.len() <= missing_full.len() {
            missing_fp16
        } else {
            missing_full
        };
        let more = match missing.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let variants = quant::names(entry);
        let quants = match variants.first() {
            Some(first) => format!(
                " (or a quantized variant: `pallaidium fetch {} --quant {first}`; variants: {})",
                entry.id,
                variants.join(", ")
            ),
            None => String::new(),
        };
        return Err(Error::bad_input(format!(
            "model `{}` ({} at revision {}) is not in the Hugging Face cache at {}: missing {}{more}; \
             run `pallaidium fetch {}` to download it{quants}",
            entry.id,
            entry.repo,
            entry.revision,
            cache.display(),
            missing.first().copied().unwrap_or("the snapshot"),
            entry.id
        )));
    };
    let layout = if entry.family.is_diffusion() || entry.family.is_video() {
        Some(ModelLayout::open(&dir)?)
    } else {
        None
    };
    // A GGUF repo often holds several quantisations, an upscaler repo several networks: the
    // engine gets the entry's file, not the folder.
    let dir = match entry.family {
        Family::GgufLlm | Family::Realesrgan => gguf_weights(entry, &dir).unwrap_or(dir),
        _ => dir,
    };
    Ok(ResolvedModel {
        id: entry.id.clone(),
        dir,
        entry: Some(entry.clone()),
        layout,
        family: entry.family,
        kind: entry.kind,
        defaults: entry.defaults.clone(),
        weights,
        quant: quant_name,
    })
}

/// The cached file an LLM entry's `weights` names (a `*` pattern picks the first match).
fn gguf_weights(entry: &ModelEntry, snapshot: &Path) -> Option<PathBuf> {
    let name = entry.components.iter().find_map(|c| c.weights.as_deref())?;
    let rel = if super::file_pattern::is_pattern(name) {
        super::file_pattern::matching_in(snapshot, name)
            .into_iter()
            .next()?
    } else {
        name.to_owned()
    };
    Some(snapshot.join(rel)).filter(|p| p.is_file())
}

/// Registry ids within a few edits of `wanted`, or containing it, closest first (at most 3).
fn close_matches<'r>(wanted: &str, registry: &'r Registry) -> Vec<&'r str> {
    let wanted = wanted.to_ascii_lowercase();
    let limit = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = registry
        .ids()
        .filter_map(|id| {
            let d = edit_distance(&wanted, id);
            let related =
                id.contains(wanted.as_str()) || (wanted.len() >= 3 && wanted.contains(id));
            (d <= limit || related).then_some((d, id))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, id)| id).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
