//! pallaidium: a terminal workbench for local generative AI.
//!
//! Data flows one way: CLI/TUI -> JobSpec -> compat + planner -> runner -> engine -> JobEvents -> TUI / headless.

pub mod cli;
pub mod commands;
pub mod device;
pub mod engines;
pub mod error;
pub mod headless;
pub mod jobs;
pub mod log_ring;
pub mod logging;
pub mod models;
pub mod platform;
pub mod serve;
pub mod terminal_text;
pub mod tui;
pub mod vocab;

pub use error::{Error, Result};

/// The system allocator, plus file-mapped vectors: lets f32 weights become CPU tensors without
/// a copy (`platform::mapped_alloc`). Stateless; declared here so the binary and every test use it.
#[global_allocator]
static ALLOCATOR: platform::mapped_alloc::MappingAlloc = platform::mapped_alloc::MappingAlloc;
