//! Where jobs come from besides the flags: `--jobs FILE` (TOML `[[job]]` tables or JSON lines,
//! any job flag as a key), `--prompts FILE` (one prompt a line) and `--from-image PNG`.
//! The command-line job flags are shared defaults; a file's keys override them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::jobs::output::png_meta::read_parameters;
use crate::jobs::spec::JobSpec;
use crate::vocab::{DtypeChoice, JobKind, ResidencyChoice, Scheduler, Toggle};

/// One job in a job file: every key optional, kebab-case like the flags (snake_case accepted).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobEntry {
    pub kind: Option<JobKind>,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub negative: Option<String>,
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
    pub seed: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub batch: Option<u32>,
    pub scheduler: Option<Scheduler>,
    #[serde(alias = "init_image")]
    pub init_image: Option<PathBuf>,
    pub strength: Option<f64>,
    pub mask: Option<PathBuf>,
    #[serde(alias = "init_latents")]
    pub init_latents: Option<PathBuf>,
    pub dtype: Option<DtypeChoice>,
    #[serde(alias = "attention_slicing")]
    pub attention_slicing: Option<String>,
    #[serde(alias = "vae_tiling")]
    pub vae_tiling: Option<Toggle>,
    pub residency: Option<ResidencyChoice>,
    pub voice: Option<String>,
    pub duration: Option<f64>,
    pub audio: Option<PathBuf>,
    pub language: Option<String>,
    pub translate: Option<bool>,
    /// An image to caption (a caption job).
    pub caption: Option<PathBuf>,
    pub enhance: Option<bool>,
    pub enhancer: Option<String>,
    #[serde(alias = "max_tokens")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlJobFile {
    #[serde(default)]
    job: Vec<JobEntry>,
}

impl JobEntry {
    /// The entry over `base`; relative paths are taken from `dir` (the job file's folder).
    pub fn apply(self, base: &JobSpec, dir: &Path) -> JobSpec {
        let path = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        let mut spec = base.clone();
        if let Some(kind) = self.kind {
            spec.kind = kind;
        }
        // A model folder given relative to the job file, like its images.
        set(
            &mut spec.model,
            self.model.map(|m| {
                let local = dir.join(&m);
                if Path::new(&m).is_relative() && local.is_dir() {
                    local.to_string_lossy().into_owned()
                } else {
                    m
                }
            }),
        );
        set(&mut spec.prompt, self.prompt);
        set(&mut spec.negative, self.negative);
        over(&mut spec.steps, self.steps);
        over(&mut spec.guidance, self.guidance);
        over(&mut spec.seed, self.seed);
        over(&mut spec.width, self.width);
        over(&mut spec.height, self.height);
        over(&mut spec.batch, self.batch);
        over(&mut spec.scheduler, self.scheduler);
        over(&mut spec.init_image, self.init_image.map(path));
        over(&mut spec.strength, self.strength);
        over(&mut spec.mask, self.mask.map(path));
        over(&mut spec.init_latents, self.init_latents.map(path));
        over(&mut spec.dtype, self.dtype);
        over(&mut spec.attention_slicing, self.attention_slicing);
        over(&mut spec.vae_tiling, self.vae_tiling);
        over(&mut spec.residency, self.residency);
        over(&mut spec.voice, self.voice);
        over(&mut spec.duration, self.duration);
        if let Some(audio) = self.audio.map(path) {
            spec.audio = Some(audio);
            if self.kind.is_none() {
                spec.kind = JobKind::Stt;
            }
        }
        over(&mut spec.language, self.language);
        set(&mut spec.translate, self.translate);
        if let Some(image) = self.caption.map(path) {
            spec.init_image = Some(image);
            if self.kind.is_none() {
                spec.kind = JobKind::Caption;
            }
        }
        set(&mut spec.enhance, self.enhance);
        over(&mut spec.enhancer, self.enhancer);
        over(&mut spec.max_tokens, self.max_tokens);
        spec
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn over<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn read_text(path: &Path, flag: &str) -> crate::Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        crate::Error::bad_input(format!("{flag} {}: cannot read it ({e})", path.display()))
    })
}

fn folder_of(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Reads a job file: TOML `[[job]]` tables, or JSON lines (`.jsonl`, `.json`, `.ndjson`, or a
/// file whose first non-blank character is `{`). Errors name the file and the line.
pub fn read_job_file(path: &Path, base: &JobSpec) -> crate::Result<Vec<JobSpec>> {
    let text = read_text(path, "--jobs")?;
    let dir = folder_of(path);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let json_lines = matches!(ext, "jsonl" | "json" | "ndjson")
        || (ext != "toml" && text.trim_start().starts_with('{'));
    let entries = if json_lines {
        parse_json_lines(path, &text)?
    } else {
        toml::from_str::<TomlJobFile>(&text)
            .map_err(|e| {
                let at = e
                    .span()
                    .map(|span| format!(" line {}", toml_error_line(&text, span, e.message())))
                    .unwrap_or_default();
                crate::Error::bad_input(format!(
                    "--jobs {}{at}: {}; each job is a [[job]] table whose keys are job flags \
                     (model, prompt, steps, ...)",
                    path.display(),
                    e.message()
                ))
            })?
            .job
    };
    if entries.is_empty() {
        return Err(crate::Error::bad_input(format!(
            "--jobs {}: no jobs in it; add [[job]] tables (TOML) or one JSON object a line",
            path.display()
        )));
    }
    Ok(entries.into_iter().map(|e| e.apply(base, &dir)).collect())
}

/// The line a TOML error is about. For an unknown key toml points at its table, so look for
/// the key itself inside the table.
fn toml_error_line(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let start = span.start.min(text.len());
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let key = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    if let Some(key) = key {
        let end = span.end.clamp(start, text.len());
        let mut offset = start;
        for line in text[start..end].split_inclusive('\n') {
            let trimmed = line.trim_start();
            let is_key = trimmed
                .strip_prefix(key)
                .is_some_and(|after| after.trim_start().starts_with('='));
            if is_key {
                return line_of(offset);
            }
            offset += line.len();
        }
    }
    line_of(start)
}

fn parse_json_lines(path: &Path, text: &str) -> crate::Result<Vec<JobEntry>> {
    let mut entries = vec![];
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let entry = serde_json::from_str::<JobEntry>(trimmed).map_err(|e| {
            crate::Error::bad_input(format!(
                "--jobs {} line {}: {e}; each line is one JSON object whose keys are job flags",
                path.display(),
                index + 1
            ))
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// One job per prompt line (blank lines and `#` comments skipped), the rest from `base`.
pub fn read_prompts_file(path: &Path, base: &JobSpec) -> crate::Result<Vec<JobSpec>> {
    let text = read_text(path, "--prompts")?;
    let specs: Vec<JobSpec> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|prompt| JobSpec {
            prompt: prompt.to_string(),
            ..base.clone()
        })
        .collect();
    if specs.is_empty() {
        return Err(crate::Error::bad_input(format!(
            "--prompts {}: no prompts in it (one prompt a line; # starts a comment)",
            path.display()
        )));
    }
    Ok(specs)
}

/// The spec stored in an output (`--from-image`): a PNG's JSON chunk, or the JSON sidecar of
/// an audio or text output (.wav, .srt, .txt, .json).
pub fn stored_spec(path: &Path) -> crate::Result<JobSpec> {
    let is_png = path
        .extension()
        .is_none_or(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        Ok(read_parameters(path)?.spec)
    } else {
        Ok(crate::jobs::output::media_files::Sidecar::read(path)?.spec)
    }
}

#[cfg(test)]
mod tests;
