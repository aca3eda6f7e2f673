//! Subcommands other than the TUI and headless runs.
pub mod info;
