//! LoRA: low-rank changes to a model's weights, merged into them at load (`patch`). Files in
//! kohya/A1111 and diffusers/PEFT naming (`keys`, kohya's SDXL names through `sgm`) are read
//! (`file`) and matched against the components' weights before anything loads (`resolve`), so a
//! LoRA for another model is refused up front, naming its first key that matches nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod bfl;
pub mod file;
pub mod keys;
pub mod patch;
pub mod resolve;
pub mod sgm;

pub use keys::Target;
pub use patch::{PatchedBackend, WeightPatch};
pub use resolve::{ComponentIndex, Patches};

use crate::error::Result;

/// One LoRA of a job: its file (resolved, safetensors) and strength.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub path: PathBuf,
    pub weight: f64,
}

/// The components of a diffusers pipeline folder a LoRA may change: each `(target, folder)`
/// indexed from its weight files' headers. `layers_per_block` is the UNet config's.
pub fn index_folders(
    dir: &Path,
    targets: &[Target],
    fp16_variant: bool,
    layers_per_block: Option<usize>,
) -> Result<HashMap<Target, ComponentIndex>> {
    targets
        .iter()
        .map(|&t| {
            let tensors = super::weights::tensor_shapes(&dir.join(t.folder()), fp16_variant)?;
            let lpb = if t == Target::Unet {
                layers_per_block
            } else {
                None
            };
            Ok((t, ComponentIndex::new(tensors, lpb)))
        })
        .collect()
}

/// The deltas of `loras` on a pipeline folder's `targets` (none: no patches).
pub fn patches_for(
    loras: &[LoraSpec],
    dir: &Path,
    targets: &[Target],
    fp16_variant: bool,
    layers_per_block: Option<usize>,
) -> Result<Patches> {
    if loras.is_empty() {
        return Ok(Patches::new());
    }
    let indexes = index_folders(dir, targets, fp16_variant, layers_per_block)?;
    let patches = resolve::resolve(loras, &indexes)?;
    for (target, patch) in &patches {
        tracing::info!(
            component = target.folder(),
            weights = patch.len(),
            "LoRA merged"
        );
    }
    Ok(patches)
}
