//! The model registry: models.toml (shipped, compiled in) with an optional user file merged over it.
//! Parsing is strict: syntax errors, unknown keys, missing fields, bad enum values, duplicate ids and
//! impossible values are `Error::BadInput` naming the file, the line and the key.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::entry::{Kind, ModelEntry};
use super::registry_errors::{entry_error, parse_error};
use crate::{Error, Result};

/// The registry shipped inside the binary.
const SHIPPED: &str = include_str!("../../models.toml");
const SHIPPED_NAME: &str = "models.toml (shipped)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    models: Vec<Spanned<ModelEntry>>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<ModelEntry>,
}

impl Registry {
    /// The compiled-in registry alone.
    pub fn shipped() -> Result<Self> {
        Self::from_toml(SHIPPED, SHIPPED_NAME)
    }

    /// The shipped registry with `extra` (a user's `--models FILE`) merged over it: an entry with the
    /// same id replaces the shipped one in place, a new id is added at the end.
    pub fn load(extra: Option<&Path>) -> Result<Self> {
        let mut registry = Self::shipped()?;
        if let Some(path) = extra {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::bad_input(format!(
                    "cannot read models file {}: {e}; check the path given to --models",
                    path.display()
                ))
            })?;
            let user = Self::from_toml(&text, &path.display().to_string())?;
            registry.merge(user);
        }
        Ok(registry)
    }

    /// Parse and validate one models file; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let file: ModelsFile = toml::from_str(text).map_err(|e| parse_error(origin, text, &e))?;
        let mut entries: Vec<ModelEntry> = Vec::with_capacity(file.models.len());
        let mut lines: Vec<usize> = Vec::with_capacity(file.models.len());
        for spanned in file.models {
            let line = line_of(text, spanned.span().start);
            let mut entry = spanned.into_inner();
            if let Some(first) = entries.iter().position(|e| e.id == entry.id) {
                return Err(entry_error(
                    origin,
                    text,
                    line,
                    &entry.id,
                    "id",
                    &format!(
                        "duplicate id `{}` (first defined at line {}); give each entry its own id",
                        entry.id, lines[first]
                    ),
                ));
            }
            validate(&entry)
                .map_err(|(key, msg)| entry_error(origin, text, line, &entry.id, key, &msg))?;
            entry.source = format!("{origin}:{line}");
            entries.push(entry);
            lines.push(line);
        }
        Ok(Self { entries })
    }

    /// Merge `other` over `self`: same id replaces, new ids append.
    pub fn merge(&mut self, other: Registry) {
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.id == entry.id) {
                Some(slot) => *slot = entry,
                None => self.entries.push(entry),
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn is_multiple_of_8(v: u32) -> bool {
    v > 0 && v.is_multiple_of(8)
}

/// Checks serde cannot express. Returns the offending key and what is wrong with it.
fn validate(e: &ModelEntry) -> std::result::Result<(), (&'static str, String)> {
    let id_ok = !e.id.is_empty()
        && e.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err((
            "id",
            format!(
                "`{}` is not a valid id: use lowercase letters, digits, '-', '_' or '.'",
                e.id
            ),
        ));
    }
    let mut parts = e.repo.split('/');
    let repo_ok = matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty());
    if !repo_ok {
        return Err((
            "repo",
            format!(
                "`{}` is not a Hugging Face repo id of the form org/name",
                e.repo
            ),
        ));
    }
    if e.revision.trim().is_empty() {
        return Err(("revision", "must not be empty (use \"main\")".to_owned()));
    }
    if !e.license_url.starts_with("https://") {
        return Err((
            "license_url",
            format!("`{}` must be an https:// address", e.license_url),
        ));
    }
    if e.family.is_diffusion() {
        validate_image_entry(e)?;
    } else {
        validate_media_entry(e)?;
    }
    validate_components(e)?;
    super::quant::validate(e)?;
    if e.family.is_diffusion() && e.defaults.scheduler.is_flow() != e.family.is_flow() {
        return Err((
            "defaults.scheduler",
            format!(
                "`{}` does not fit a {} model: flow models (FLUX, Z-Image) run flow-euler, the UNet models the others",
                e.defaults.scheduler, e.family
            ),
        ));
    }
    for issue in &e.known_issues {
        for (key, bound) in [
            ("known_issues.min_macos", &issue.min_macos),
            ("known_issues.max_macos", &issue.max_macos),
        ] {
            if let Some(v) = bound
                && super::compat::parse_version(v).is_none()
            {
                return Err((
                    key,
                    format!("`{v}` is not a version like \"14\" or \"13.5\""),
                ));
            }
        }
        if issue.message.trim().is_empty() || issue.fix.trim().is_empty() {
            return Err((
                "known_issues.message",
                "every known issue needs a message and a fix".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Image entries: steps, guidance, size, scheduler, native resolution and a tokenizer.
fn validate_image_entry(e: &ModelEntry) -> std::result::Result<(), (&'static str, String)> {
    let d = &e.defaults;
    if d.steps == 0 {
        return Err(("defaults.steps", "must be at least 1".to_owned()));
    }
    if !d.guidance.is_finite() || d.guidance < 0.0 {
        return Err((
            "defaults.guidance",
            format!("{} must be a number >= 0", d.guidance),
        ));
    }
    if !is_multiple_of_8(d.width) {
        return Err((
            "defaults.width",
            format!("{} must be a positive multiple of 8", d.width),
        ));
    }
    if !is_multiple_of_8(d.height) {
        return Err((
            "defaults.height",
            format!("{} must be a positive multiple of 8", d.height),
        ));
    }
    if !e.native_resolution.iter().all(|&v| is_multiple_of_8(v)) {
        return Err((
            "native_resolution",
            format!(
                "{:?} must be two positive multiples of 8",
                e.native_resolution
            ),
        ));
    }
    let Some(tokenizer) = &e.tokenizer else {
        return Err((
            "tokenizer",
            "image models need a [models.tokenizer] table (format, folders)".to_owned(),
        ));
    };
    if tokenizer.folders.is_empty() {
        return Err((
            "tokenizer.folders",
            "must name at least one folder".to_owned(),
        ));
    }
    Ok(())
}

/// Audio and text entries: a duration and token cap that make sense, and a kind that fits the family.
fn validate_media_entry(e: &ModelEntry) -> std::result::Result<(), (&'static str, String)> {
    // A video family's models may also take a first frame (Wan 2.2 TI2V, LTX-Video).
    let video_pair = e.family.is_video() && matches!(e.kind, Kind::Txt2vid | Kind::Img2vid);
    if e.family.kind() != e.kind && !video_pair {
        return Err((
            "kind",
            format!(
                "a {} model makes {}, not {}",
                e.family,
                e.family.kind(),
                e.kind
            ),
        ));
    }
    let d = &e.defaults;
    if let Some(duration) = d.duration
        && !(duration.is_finite() && duration > 0.0 && duration <= 600.0)
    {
        return Err((
            "defaults.duration",
            format!("{duration} must be seconds between 0 and 600"),
        ));
    }
    if d.max_tokens == Some(0) {
        return Err(("defaults.max_tokens", "must be at least 1".to_owned()));
    }
    if !d.guidance.is_finite() || d.guidance < 0.0 {
        return Err((
            "defaults.guidance",
            format!("{} must be a number >= 0", d.guidance),
        ));
    }
    Ok(())
}

fn validate_components(e: &ModelEntry) -> std::result::Result<(), (&'static str, String)> {
    if e.components.is_empty() {
        return Err((
            "components",
            "an entry needs at least one [[models.components]]".to_owned(),
        ));
    }
    for (i, c) in e.components.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(("components.name", "must not be empty".to_owned()));
        }
        if e.components[..i].iter().any(|o| o.name == c.name) {
            return Err((
                "components.name",
                format!("component `{}` is listed twice", c.name),
            ));
        }
        if c.files.is_empty() && c.weights.is_none() {
            return Err((
                "components.files",
                format!("component `{}` lists no files", c.name),
            ));
        }
        if c.weights_fp16.is_some() && c.weights.is_none() {
            return Err((
                "components.weights",
                format!("component `{}` has weights_fp16 but no weights", c.name),
            ));
        }
        // Only formats that cannot run code on load (issue 6: pickles are refused).
        for (key, w) in [
            ("components.weights", &c.weights),
            ("components.weights_fp16", &c.weights_fp16),
        ] {
            // `<stem>*.safetensors*` also takes a sharded repo's `.safetensors.index.json`.
            if let Some(w) = w
                && !(w.ends_with(".safetensors")
                    || w.ends_with(".safetensors*")
                    || w.ends_with(".gguf"))
            {
                return Err((
                    key,
                    format!(
                        "`{w}` is not a .safetensors or .gguf file; pickled weights (.bin, .ckpt, .pt) are not loaded"
                    ),
                ));
            }
        }
        let all = c.files.iter().chain(&c.weights).chain(&c.weights_fp16);
        for f in all {
            if f.starts_with('/') || f.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err((
                    "components.files",
                    format!("`{f}` must be a relative path inside the repo"),
                ));
            }
        }
    }
    Ok(())
}
