//! Models: the registry (models.toml), compatibility checks, the diffusers folder layout, the read-only
//! Hugging Face cache lookup and resolution of `--model ID|DIR` to files on disk.

pub mod compat;
pub mod entry;
pub mod family;
pub mod file_pattern;
mod flux_layout;
pub mod hf_cache;
pub mod layout;
mod ltx_layout;
pub mod media_layout;
pub mod quant;
pub mod registry;
mod registry_errors;
pub mod resolve;
mod sd3_layout;
mod transformer_layout;
mod wan_layout;
mod zimage_layout;

pub use compat::{CompatContext, CompatFinding, Severity, Verdict};
pub use entry::{Defaults, Family, Kind, ModelEntry, Os};
pub use layout::ModelLayout;
pub use registry::Registry;
pub use resolve::{ResolvedModel, resolve};

pub mod fetch;
pub mod planner;
pub mod safetensors_header;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
pub mod upscaler_file;
