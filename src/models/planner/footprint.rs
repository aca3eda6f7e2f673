//! What a diffusers folder costs in memory before any job parameters: the exact tensor sizes of each
//! component (from safetensors headers, never the data) and the few architecture numbers the
//! activation formulas need (which the SD engine reads from its configs: `engines::sd::footprint`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Result;
use crate::engines::sd::footprint as sd_footprint;
pub use crate::engines::sd::footprint::{TextArch, UNetArch, VaeArch};
use crate::models::safetensors_header::{self, SafetensorsHeader};

/// One component's weights: its files and the elements it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentWeights {
    pub name: String,
    pub files: Vec<PathBuf>,
    /// Bytes on disk (what a CPU/unified-memory load maps while reading).
    pub file_bytes: u64,
    /// Floating-point elements (converted to the run dtype when loaded).
    pub float_elements: u64,
    /// Bytes of integer tensors (kept as stored).
    pub other_bytes: u64,
    /// The largest tensor as stored. The loader copies one tensor at a time out of the mapped
    /// file and then drops that tensor's mapped pages (`engines/nn/weights.rs`), so loading
    /// holds the tensors copied so far plus about two copies of one tensor (its mapped pages and,
    /// when the run dtype differs, the stored-dtype copy it is converted from).
    pub largest_tensor_bytes: u64,
    /// Every tensor's size, for the allocator model of staged residency (`stages.rs`).
    #[serde(skip)]
    pub tensors: Vec<TensorSize>,
}

/// One tensor's size as stored and once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSize {
    pub elements: u64,
    /// Bytes per element in the file.
    pub stored_elem: u64,
    /// Floats are converted to the run dtype when loaded; other tensors keep theirs.
    pub float: bool,
}

impl TensorSize {
    pub fn stored_bytes(&self) -> u64 {
        self.elements * self.stored_elem
    }

    /// Bytes once loaded with floats of `float_bytes` each.
    pub fn bytes_at(&self, float_bytes: u64) -> u64 {
        self.elements
            * if self.float {
                float_bytes
            } else {
                self.stored_elem
            }
    }

    /// Loading converts it (a stored-dtype copy exists for a moment).
    pub fn converted_at(&self, float_bytes: u64) -> bool {
        self.float && self.stored_elem != float_bytes
    }
}

impl ComponentWeights {
    pub(super) fn from_headers(name: &str, headers: &[SafetensorsHeader]) -> Self {
        let mut float_elements = 0;
        let mut other_bytes = 0;
        let mut largest_tensor_bytes = 0;
        let mut tensors = Vec::new();
        for t in headers.iter().flat_map(|h| h.tensors.values()) {
            let size = TensorSize {
                elements: t.elements(),
                stored_elem: t.dtype.size_in_bytes(),
                float: t.dtype.is_float(),
            };
            largest_tensor_bytes = largest_tensor_bytes.max(size.stored_bytes());
            tensors.push(size);
            if t.dtype.is_float() {
                float_elements += t.elements();
            } else {
                other_bytes += t.bytes_at(0);
            }
        }
        Self {
            name: name.to_owned(),
            files: headers.iter().map(|h| h.path.clone()).collect(),
            file_bytes: headers.iter().map(|h| h.file_bytes).sum(),
            float_elements,
            other_bytes,
            largest_tensor_bytes,
            tensors,
        }
    }

    /// Bytes once loaded with floats of `float_bytes` each.
    pub fn bytes_at(&self, float_bytes: u64) -> u64 {
        self.float_elements * float_bytes + self.other_bytes
    }
}

/// Everything the planner needs to know about a model folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFootprint {
    pub dir: PathBuf,
    pub text_encoders: Vec<ComponentWeights>,
    pub unet: ComponentWeights,
    pub vae: ComponentWeights,
    pub unet_arch: UNetArch,
    pub vae_arch: VaeArch,
    pub text_arch: Vec<TextArch>,
    /// The job's ControlNets (`--controlnet`): loaded and held with the UNet.
    pub controlnets: Vec<ComponentWeights>,
}

impl ModelFootprint {
    /// Reads configs and safetensors headers of a diffusers folder (`fp16_variant`: the
    /// `*.fp16.safetensors` files where present, as the engine loads them).
    pub fn read(dir: &Path, fp16_variant: bool) -> Result<Self> {
        let _span = tracing::info_span!("footprint", dir = %dir.display()).entered();
        let arch = sd_footprint::Architecture::read(dir)?;
        let mut text_encoders = Vec::new();
        for name in ["text_encoder", "text_encoder_2"]
            .iter()
            .take(arch.text.len())
        {
            text_encoders.push(component(&dir.join(name), name, fp16_variant)?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            unet: component(&dir.join("unet"), "unet", fp16_variant)?,
            vae: component(&dir.join("vae"), "vae", fp16_variant)?,
            text_encoders,
            unet_arch: arch.unet,
            vae_arch: arch.vae,
            text_arch: arch.text,
            controlnets: vec![],
        })
    }

    /// This footprint with a job's ControlNet folders (their safetensors headers read).
    pub fn with_controlnets(mut self, dirs: &[PathBuf]) -> Result<Self> {
        for dir in dirs {
            self.controlnets.push(component(dir, "controlnet", false)?);
        }
        Ok(self)
    }
}

/// The weight files of one component folder, found as the engine finds them, headers read.
pub(super) fn component(folder: &Path, name: &str, fp16_variant: bool) -> Result<ComponentWeights> {
    let files = crate::engines::nn::weights::find_weight_files(folder, fp16_variant)?;
    let headers = files
        .iter()
        .map(|f| safetensors_header::read_header(f))
        .collect::<Result<Vec<_>>>()?;
    Ok(ComponentWeights::from_headers(name, &headers))
}
