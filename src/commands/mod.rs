//! Subcommands other than the TUI and headless runs.
pub mod bench;
pub mod doctor;
pub mod fetch;
pub mod info;
pub mod models;
pub mod plan;
pub mod serve;
pub mod worker;
