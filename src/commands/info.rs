//! `pallaidium info FILE [--json]`: the parameters stored in an output.

use std::io::Write;
use std::path::Path;

use crate::jobs::png_meta::read_parameters;

/// Prints what `file` stores: the A1111 parameters and the JobSpec, or with `json` the JobSpec
/// as one JSON object. Exit code 0; an unreadable file or one without parameters is bad input.
pub fn run(file: &Path, json: bool) -> anyhow::Result<i32> {
    let stored = read_parameters(file)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&stored.spec)?)?;
        return Ok(0);
    }
    writeln!(out, "{}", stored.path.display())?;
    writeln!(out, "size: {}x{}", stored.width, stored.height)?;
    if let Some(parameters) = &stored.parameters {
        writeln!(out, "\n{parameters}")?;
    }
    if stored.exact {
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
    Ok(0)
}
