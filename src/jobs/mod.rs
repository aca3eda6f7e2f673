//! Jobs: what the user asked for (`JobSpec`), the durable queue, the runner and its events.

pub mod cache;
pub mod config;
pub mod engine;
pub mod event_hub;
pub mod events;
pub mod fault;
mod image_job;
pub mod latents_file;
pub mod media_files;
pub mod media_job;
mod media_output;
pub mod media_spec;
pub mod model_check;
pub mod out_dir;
pub mod output;
pub mod planning;
pub mod png_meta;
pub mod queue;
pub mod resolve;
pub mod runner;
pub mod setup;
pub mod sources;
pub mod spec;
pub mod state;
pub mod store;
pub mod store_health;
pub mod worker;

pub use config::{ModelInfo, RunnerConfig, WorkerDevice};
pub use event_hub::JobEvents;
pub use events::{JobEvent, JobId};
pub use runner::JobRunner;
pub use spec::JobSpec;
pub use state::JobState;
pub use store::{JobRecord, Store};
