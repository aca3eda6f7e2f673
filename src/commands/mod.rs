//! Subcommands other than the TUI and headless runs.
pub mod doctor;
pub mod info;
pub mod models;
pub mod fetch;
pub mod plan;
pub mod bench;
