//! What a runner needs from the rest of the program: where outputs go, the device it runs on,
//! and how a `--model` string becomes a folder with defaults (the models module, or a test's).

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::DType;

use crate::models::{Defaults, Family, Kind};
use crate::vocab::DtypeChoice;

/// A `--model` value resolved to a diffusers folder and its defaults.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    /// The model's folder (or a .gguf file for a language model).
    pub dir: PathBuf,
    pub defaults: Defaults,
    pub family: Family,
    /// What it makes.
    pub kind: Kind,
    /// Weights files replacing some of the folder's (a cached quantized variant).
    pub weights: crate::models::quant::ReplacedWeights,
}

/// Resolves a `--model ID|DIR`; an unknown model is `Error::BadInput`.
pub type ModelLookup = Arc<dyn Fn(&str) -> crate::Result<ModelInfo> + Send + Sync>;

/// Picks the compute dtype for a job's `dtype` (None: the run's `--dtype`).
pub type DtypeResolver = Arc<dyn Fn(Option<DtypeChoice>) -> crate::Result<DType> + Send + Sync>;

/// The device one worker runs on.
#[derive(Clone)]
pub struct WorkerDevice {
    pub device: candle_core::Device,
    /// e.g. "cpu", "cuda:0", "metal:0": part of the engine cache key.
    pub name: String,
    pub dtype: DtypeResolver,
}

#[derive(Clone)]
pub struct RunnerConfig {
    pub out_dir: PathBuf,
    pub device: WorkerDevice,
    pub models: ModelLookup,
    /// Loaded engines are evicted (least recently used first) above this many bytes.
    pub cache_capacity_bytes: u64,
    /// Emit a latent preview every this many steps (0: never).
    pub preview_every: u32,
    /// Plans each job's memory before it is queued and before its engine loads (None: no plan,
    /// everything resident as the job asks).
    pub planner: Option<Arc<crate::jobs::run::planning::JobPlanner>>,
    /// The PALLAIDIUM_* switches read at start: the engines' kernel and loading choices, the
    /// test fault hook, and what outputs record in their metadata.
    pub switches: crate::platform::switches::Switches,
}
