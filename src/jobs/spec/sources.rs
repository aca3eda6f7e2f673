//! Where jobs come from besides the flags: `--jobs FILE` (TOML `[[job]]` tables or JSON lines,
//! any job flag as a key), `--prompts FILE` (one prompt a line) and `--from-image PNG`.
//! The command-line job flags are shared defaults; a file's keys are merged over them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::jobs::output::png_meta::read_parameters;
use crate::jobs::spec::JobOverrides;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlJobFile {
    #[serde(default)]
    job: Vec<JobOverrides>,
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
/// file whose first non-blank character is `{`), each laid over `base` (the flags). Errors name
/// the file and the line.
pub fn read_job_file(path: &Path, base: &JobOverrides) -> crate::Result<Vec<JobOverrides>> {
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
    Ok(entries
        .into_iter()
        .map(|e| base.clone().merged(e.relative_to(&dir)))
        .collect())
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

fn parse_json_lines(path: &Path, text: &str) -> crate::Result<Vec<JobOverrides>> {
    let mut entries = vec![];
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let entry = serde_json::from_str::<JobOverrides>(trimmed).map_err(|e| {
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
pub fn read_prompts_file(path: &Path, base: &JobOverrides) -> crate::Result<Vec<JobOverrides>> {
    let text = read_text(path, "--prompts")?;
    let specs: Vec<JobOverrides> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|prompt| JobOverrides {
            prompt: Some(prompt.to_string()),
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

/// The job stored in an output, as asked again (`--from-image`): a PNG's JSON chunk (or another
/// tool's `parameters` text), or the JSON sidecar of an audio or text output (.wav, .srt, .txt,
/// .json).
pub fn stored_job(path: &Path) -> crate::Result<JobOverrides> {
    let is_png = path
        .extension()
        .is_none_or(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        Ok(read_parameters(path)?.job)
    } else {
        Ok(crate::jobs::output::media_files::Sidecar::read(path)?
            .spec
            .to_overrides())
    }
}

#[cfg(test)]
mod tests;
