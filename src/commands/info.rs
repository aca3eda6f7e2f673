//! `pallaidium info FILE [--json]`: the parameters stored in an output.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::jobs::output::media_files::{Sidecar, read_wav_info};
use crate::jobs::output::png_meta::read_parameters;
use crate::jobs::spec::Params;

/// Prints what `file` stores: the A1111 parameters and the JobSpec, or with `json` the JobSpec
/// as one JSON object. Exit code 0; an unreadable file or one without parameters is bad input.
/// Stored text reaches the terminal with its control characters escaped.
pub fn run(file: &Path, json: bool) -> anyhow::Result<i32> {
    // JSON is left to serde, which escapes control characters itself.
    let text = if json {
        describe_json(file)?
    } else {
        crate::terminal_text::escape_controls(&describe(file)?).into_owned()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}

/// The JobSpec, with the PALLAIDIUM_* switches that were set when it was made (if any).
fn describe_json(file: &Path) -> anyhow::Result<String> {
    let (spec, switches) = if is_png(file) {
        let stored = read_parameters(file)?;
        // Our own chunk: the spec as it ran; another tool's text: the job it asks for.
        let spec = match &stored.spec {
            Some(spec) => serde_json::to_value(spec)?,
            None => serde_json::to_value(&stored.job)?,
        };
        (spec, stored.switches)
    } else {
        let car = media_sidecar(file)?;
        (serde_json::to_value(&car.spec)?, car.switches)
    };
    let shown = crate::platform::switches::annotate(spec, &switches);
    Ok(serde_json::to_string_pretty(&shown)? + "\n")
}

fn is_png(file: &Path) -> bool {
    file.extension()
        .is_none_or(|e| e.eq_ignore_ascii_case("png"))
}

fn describe(file: &Path) -> anyhow::Result<String> {
    if !is_png(file) {
        return media_info(file);
    }
    let stored = read_parameters(file)?;
    let mut out = String::new();
    writeln!(out, "{}", stored.path.display())?;
    writeln!(out, "size: {}x{}", stored.width, stored.height)?;
    if let Some(parameters) = &stored.parameters {
        writeln!(out, "\n{parameters}")?;
    }
    if stored.spec.is_some() {
        writeln!(
            out,
            "\nre-run with: pallaidium --headless --from-image {}",
            file.display()
        )?;
    } else {
        writeln!(
            out,
            "\n(no pallaidium chunk: the settings above were read from another tool's text)"
        )?;
    }
    Ok(out)
}

fn media_sidecar(file: &Path) -> anyhow::Result<Sidecar> {
    if !file.is_file() {
        return Err(crate::Error::bad_input(format!("{}: no such file", file.display())).into());
    }
    Ok(Sidecar::read(file)?)
}

/// Audio and text outputs: the JSON sidecar beside them, and a WAV's own INFO chunk.
fn media_info(file: &Path) -> anyhow::Result<String> {
    let car = media_sidecar(file)?;
    let mut out = String::new();
    let spec = &car.spec;
    writeln!(out, "{}", file.display())?;
    writeln!(out, "kind: {}", spec.kind.as_str())?;
    writeln!(out, "model: {}", spec.model)?;
    if !spec.prompt.is_empty() {
        writeln!(out, "prompt: {}", spec.prompt)?;
    }
    match &spec.params {
        Params::Image(p) => {
            if let Some(idea) = p.enhance.as_ref().and_then(|e| e.from.as_ref()) {
                writeln!(out, "enhanced from: {idea}")?;
            }
        }
        Params::Speech(p) => writeln!(out, "voice: {}", p.voice)?,
        Params::Transcribe(p) => {
            writeln!(out, "audio: {}", p.audio.display())?;
            if let Some(language) = &p.language {
                writeln!(out, "language: {language}")?;
            }
        }
        Params::Caption(p) => writeln!(out, "image: {}", p.image.display())?,
        Params::Upscale(p) => writeln!(out, "image: {} (x{})", p.image.display(), p.scale)?,
        Params::Video(p) => writeln!(
            out,
            "video: {} frames at {} fps, {}x{}, {} steps, guidance {}",
            p.frames, p.fps, p.width, p.height, p.steps, p.guidance
        )?,
        Params::Music(_) | Params::Enhance(_) => {}
    }
    if let Some(seed) = spec.seed {
        writeln!(out, "seed: {seed}")?;
    }
    if let Some(seconds) = car.duration_s {
        writeln!(out, "duration: {seconds:.2} s")?;
    }
    if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        && let Ok(bytes) = std::fs::read(file)
        && let Some(info) = read_wav_info(&bytes)
    {
        writeln!(out, "wav comment: {}", info.comment)?;
    }
    if let Some(text) = &car.text {
        writeln!(out, "\n{text}")?;
    }
    Ok(out)
}
