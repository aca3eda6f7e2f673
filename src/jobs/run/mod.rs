//! Running jobs: the runner thread and its queue, the worker that loads engines (cached) and hands
//! each job to its kind (kinds/), the memory planner's hook, set-up from the command line, and the events a job
//! emits to every watcher.

pub mod cache;
pub mod config;
pub mod engine;
pub mod event_hub;
pub mod events;
pub mod fault;
mod kinds;
pub mod planning;
pub mod queue;
pub mod runner;
pub mod setup;
pub mod worker;
