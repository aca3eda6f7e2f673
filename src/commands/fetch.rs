//! `pallaidium fetch MODEL [--dtype D] [--quant Q]`: download a registry model (or its quantized
//! variant) into the Hugging Face cache.

use std::io::IsTerminal;

use crate::cli::GlobalArgs;
use crate::engines::CancelToken;
use crate::models::fetch::{StderrBar, fetch_model};
use crate::platform::switches::Switches;
use crate::vocab::DtypeChoice;

/// Entry point for `pallaidium fetch`: 0 when every file is in the cache afterwards.
pub fn run(
    global: &GlobalArgs,
    switches: &Switches,
    model: &str,
    dtype: DtypeChoice,
    quant: Option<&str>,
) -> anyhow::Result<i32> {
    let mut bar = StderrBar::new(std::io::stderr().is_terminal());
    let report = fetch_model(
        &global.run_settings(),
        switches,
        model,
        dtype,
        quant,
        &mut bar,
        &CancelToken::new(),
    )?;
    println!(
        "{} ({} @ {}): {} downloaded ({}), {} already cached; snapshot {}",
        model,
        report.repo,
        report.revision,
        report.downloaded.len(),
        crate::device::memory::format_bytes(report.downloaded_bytes),
        report.already_cached.len(),
        report.snapshot.display()
    );
    Ok(0)
}
