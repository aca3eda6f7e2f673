//! Per-file download progress: a trait the TUI (a gauge) and headless runs (a stderr bar) implement.

use std::io::Write;
use std::time::Instant;

use crate::device::memory::format_bytes;

/// Receives progress of one file at a time.
pub trait FetchProgress {
    /// A file starts (or resumes); `size` is its full size in bytes.
    fn start(&mut self, file: &str, size: u64);
    /// `done` bytes of the current file are on disk.
    fn advance(&mut self, done: u64);
    fn finish(&mut self, file: &str);
}

/// Progress that goes nowhere (tests, `--json` runs that report only the result).
pub struct Silent;

impl FetchProgress for Silent {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self, _: &str) {}
}

const BAR_WIDTH: usize = 24;

/// `unet/diffusion_pytorch_model.fp16.safetensors [#####.....] 812.0 MiB/1.6 GiB 41.2 MiB/s`,
/// redrawn in place on a terminal, a line per file otherwise.
pub struct StderrBar {
    redraw: bool,
    file: String,
    size: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

impl StderrBar {
    pub fn new(stderr_is_terminal: bool) -> Self {
        Self {
            redraw: stderr_is_terminal,
            file: String::new(),
            size: 0,
            started: Instant::now(),
            last_draw: None,
        }
    }

    pub fn line(file: &str, done: u64, size: u64, secs: f64) -> String {
        let filled = if size == 0 {
            0
        } else {
            ((done.min(size) as u128 * BAR_WIDTH as u128) / size as u128) as usize
        };
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        format!(
            "{file} [{}{}] {}/{} {}/s",
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled),
            format_bytes(done),
            format_bytes(size),
            format_bytes(rate as u64)
        )
    }
}

impl FetchProgress for StderrBar {
    fn start(&mut self, file: &str, size: u64) {
        self.file = file.to_owned();
        self.size = size;
        self.started = Instant::now();
        self.last_draw = None;
    }

    fn advance(&mut self, done: u64) {
        // Redraw at most 10 times a second; write errors (a closed terminal) are ignored.
        if !self.redraw
            || self
                .last_draw
                .is_some_and(|t| t.elapsed().as_millis() < 100)
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let line = Self::line(
            &self.file,
            done,
            self.size,
            self.started.elapsed().as_secs_f64(),
        );
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
    }

    fn finish(&mut self, file: &str) {
        let line = Self::line(
            file,
            self.size,
            self.size,
            self.started.elapsed().as_secs_f64(),
        );
        let prefix = if self.redraw { "\r\x1b[2K" } else { "" };
        let _ = writeln!(std::io::stderr().lock(), "{prefix}{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_shows_fraction_and_sizes() {
        let line = StderrBar::line("vae/x.safetensors", 512 << 20, 1 << 30, 2.0);
        assert!(
            line.contains(&format!("[{}{}]", "#".repeat(12), ".".repeat(12))),
            "{line}"
        );
        assert!(
            line.contains("512.0 MiB/1.0 GiB") && line.contains("256.0 MiB/s"),
            "{line}"
        );
    }
}
