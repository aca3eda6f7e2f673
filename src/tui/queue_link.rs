//! What the TUI's queue runs on: this machine's runner (`LocalQueue`), or a remote `pallaidium
//! serve` (`tui::remote_queue::RemoteQueue`, `--host URL`). The app and its commands only see
//! this interface, so the same panes drive either.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::event::AppEvent;
use crate::jobs::run::queue::CancelOutcome;
use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobEvents, JobId, JobRecord, JobRunner, JobSpec, JobState};

pub trait QueueLink: Send + Sync {
    /// Queues the form's job; the queued jobs (a batch may make several) and their specs.
    fn submit(&self, job: &JobOverrides) -> crate::Result<Vec<(JobId, JobSpec)>>;
    fn cancel(&self, id: JobId) -> crate::Result<()>;
    fn retry(&self, id: JobId) -> crate::Result<()>;
    fn move_to(&self, id: JobId, index: usize) -> crate::Result<()>;
    fn set_paused(&self, paused: bool) -> crate::Result<()>;
    /// The newest `rows` jobs, newest first.
    fn history(&self, rows: usize) -> crate::Result<Vec<JobRecord>>;
    /// Sends job events (as `AppEvent::Job`) to `tx` from the moment the link was made until
    /// `tx`'s receiver is gone.
    fn forward_events(&self, tx: UnboundedSender<AppEvent>);
    /// Samples the machine jobs run on (as `AppEvent::System`) every `every`.
    fn spawn_sampler(&self, every: std::time::Duration, tx: UnboundedSender<AppEvent>);
    /// Where jobs run, for the status line ("this machine", or the server's URL).
    fn place(&self) -> String;
}

/// This machine's runner.
pub struct LocalQueue {
    pub runner: Arc<JobRunner>,
    /// Subscribed when the link was made, so nothing queued before the loop runs is missed.
    events: Mutex<Option<JobEvents>>,
    probe: Mutex<Option<super::sampler::DeviceProbe>>,
}

impl LocalQueue {
    pub fn new(runner: Arc<JobRunner>, probe: super::sampler::DeviceProbe) -> Self {
        let events = runner.subscribe();
        Self {
            runner,
            events: Mutex::new(Some(events)),
            probe: Mutex::new(Some(probe)),
        }
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}

impl QueueLink for LocalQueue {
    fn submit(&self, job: &JobOverrides) -> crate::Result<Vec<(JobId, JobSpec)>> {
        self.runner.submit_prepared(std::slice::from_ref(job))
    }

    fn cancel(&self, id: JobId) -> crate::Result<()> {
        self.runner.cancel(id).map(|_: CancelOutcome| ())
    }

    fn retry(&self, id: JobId) -> crate::Result<()> {
        self.runner.retry(id)
    }

    fn move_to(&self, id: JobId, index: usize) -> crate::Result<()> {
        self.runner.move_to(id, index)
    }

    fn set_paused(&self, paused: bool) -> crate::Result<()> {
        self.runner.set_paused(paused);
        Ok(())
    }

    fn history(&self, rows: usize) -> crate::Result<Vec<JobRecord>> {
        self.runner.history(rows)
    }

    fn forward_events(&self, tx: UnboundedSender<AppEvent>) {
        let Some(mut events) = take(&self.events) else {
            return;
        };
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send(AppEvent::Job(e)).is_err() {
                    break;
                }
            }
        });
    }

    fn spawn_sampler(&self, every: std::time::Duration, tx: UnboundedSender<AppEvent>) {
        super::sampler::Sampler::new(take(&self.probe)).spawn(every, tx);
    }

    fn place(&self) -> String {
        "this machine".to_owned()
    }
}

/// Jobs of `history` that are queued or running.
pub fn active(history: &[JobRecord]) -> BTreeSet<JobId> {
    history
        .iter()
        .filter(|r| matches!(r.state, JobState::Queued | JobState::Running))
        .map(|r| r.id)
        .collect()
}
