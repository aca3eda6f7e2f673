//! `AppState`: what every handler shares — the runner, the event log, a read connection to the
//! queue, the operator's job defaults, uploads, and the flags doctor and models are asked with.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::cli::GlobalArgs;
use crate::jobs::spec::JobOverrides;
use crate::jobs::store::JobStore;
use crate::jobs::{JobId, JobRecord, JobRunner};
use crate::platform::switches::Switches;
use crate::serve::auth::Token;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::events::EventLog;
use crate::serve::uploads::Uploads;

/// Runs `work`, which waits on the queue's database, from an async handler: PostgreSQL's
/// client blocks on a runtime of its own, which may not run inside one of the server's tasks.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[derive(Clone)]
pub struct AppState {
    pub runner: Arc<JobRunner>,
    pub events: Arc<EventLog>,
    /// Reads (get, list, outputs) on a connection of their own, off the runner's lock.
    pub reads: Arc<Mutex<Box<dyn JobStore>>>,
    /// Job flags given before `serve`: every request's defaults, under what it asks.
    pub defaults: Arc<JobOverrides>,
    pub uploads: Arc<Uploads>,
    pub global: Arc<GlobalArgs>,
    pub switches: Arc<Switches>,
    pub token: Option<Arc<Token>>,
    /// The model A1111 clients chose (`POST /sdapi/v1/options`), over the defaults' model.
    pub a1111_model: Arc<Mutex<Option<String>>>,
    /// The machine's gauges for `GET /api/v1/system`.
    pub machine: Arc<crate::serve::machine::Machine>,
    /// The server's newest log lines (`GET /api/v1/logs`).
    pub logs: Arc<crate::log_ring::LogRing>,
}

impl AppState {
    fn store(&self) -> MutexGuard<'_, Box<dyn JobStore>> {
        self.reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A job as stored now; 404 when there is none.
    pub fn record(&self, id: JobId) -> ApiResult<JobRecord> {
        blocking(|| Ok(self.store().get(id)?))
    }

    /// The newest `limit` jobs.
    pub fn history(&self, limit: usize) -> ApiResult<Vec<JobRecord>> {
        blocking(|| Ok(self.store().history(limit)?))
    }

    /// Refuses new work while the server stops.
    pub fn check_open(&self) -> ApiResult<()> {
        if self.events.is_closed() {
            return Err(ApiError::Unavailable(
                "the server is shutting down; submit again once it is back".to_owned(),
            ));
        }
        Ok(())
    }

    /// The model a compatible-API request runs: the one it names when given, else A1111's
    /// choice, else the operator's `--model`.
    pub fn model_for(&self, asked: Option<&str>) -> ApiResult<String> {
        if let Some(model) = asked.map(str::trim).filter(|m| !m.is_empty()) {
            return Ok(model.to_owned());
        }
        let chosen = self
            .a1111_model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        chosen
            .or_else(|| self.defaults.model.clone())
            .ok_or_else(|| {
                ApiError::Unprocessable(
                    "no model given and the server has no default: name one, or start the server \
                 with `pallaidium --model ID|DIR serve`"
                        .to_owned(),
                )
            })
    }
}
