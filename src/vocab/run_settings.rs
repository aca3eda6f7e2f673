//! The values of the global flags a run is asked for, as the domain takes them (the runner's
//! set-up and on-demand downloads): built from the command line by `GlobalArgs::run_settings`.

use std::path::PathBuf;

use super::DtypeChoice;

/// What a run was asked for (the global flags): the device, the dtype, the model registry, the
/// memory cap, the network and the output folder.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `auto|cpu|cuda[:N]|metal[:N]`.
    pub device: String,
    pub dtype: DtypeChoice,
    /// An extra models file merged over the shipped registry.
    pub models_file: Option<PathBuf>,
    pub offline: bool,
    /// e.g. "6GiB" (None: the device's budget).
    pub memory_budget: Option<String>,
    /// The output folder (None: under PALLAIDIUM_HOME).
    pub out: Option<PathBuf>,
}
