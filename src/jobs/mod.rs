//! Jobs, by stage: what the user asked for and its validation (`spec/`), the durable queue
//! (`store/`), running them (`run/`) and what they write (`output/`).

pub mod output;
pub mod run;
pub mod spec;
pub mod store;

pub use run::config::{ModelInfo, RunnerConfig, WorkerDevice};
pub use run::event_hub::JobEvents;
pub use run::events::{JobEvent, JobId};
pub use run::runner::JobRunner;
pub use spec::JobSpec;
pub use store::state::JobState;
pub use store::{JobRecord, Store};
