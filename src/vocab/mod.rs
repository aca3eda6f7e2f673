//! The job vocabulary: the named choices a job is made of (what it makes, the dtype, the backend,
//! the memory modes, the scheduler), and the global run settings. Each is one enum, used alike by the command line (clap's `ValueEnum`: the
//! flag values), job files, the queue database and output metadata (serde: the same lowercase
//! names), the TUI, the planner and the runner. candle's `DType` appears only at the engine
//! boundary (`Dtype::to_candle`).

mod backend;
mod dtype;
mod kind;
mod memory_modes;
mod run_settings;
mod scheduler;
pub mod values;

pub use backend::Backend;
pub use dtype::{Dtype, DtypeChoice};
pub use kind::JobKind;
pub use memory_modes::{AttentionSlicing, Residency, ResidencyChoice, Toggle};
pub use run_settings::RunSettings;
pub use scheduler::{Scheduler, alias_key as scheduler_alias_key};
