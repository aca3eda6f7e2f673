//! The worker: one thread per device, taking jobs off the queue, running the engine (kept loaded
//! in the cache between jobs), writing outputs and recording everything before announcing it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::engines::{CancelToken, EngineEvent};

use crate::jobs::output::OutputWriter;
use crate::jobs::run::cache::EngineCache;
use crate::jobs::run::config::RunnerConfig;
use crate::jobs::run::engine::Engine;
use crate::jobs::run::event_hub::EventHub;
use crate::jobs::run::events::{JobEvent, JobId, Timings};
use crate::jobs::run::queue::Queue;
use crate::jobs::store::JobRecord;

/// What the runner handle and the worker thread share.
pub struct Shared {
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
    pub events: EventHub,
    /// Set when the owner wants the worker to exit once it is idle.
    pub closing: std::sync::atomic::AtomicBool,
    /// Jobs that failed on the user's input (a broken model folder found only at load time):
    /// a headless run that failed only on these exits 2, not 1.
    pub bad_input_failures: Mutex<std::collections::HashSet<JobId>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue usable: its data is in the store.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn emit(&self, event: JobEvent) {
        // No watcher is fine: the store has the truth.
        self.events.emit(event);
    }

    fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) config: RunnerConfig,
    pub(super) cache: EngineCache<Engine>,
    pub(super) writer: OutputWriter,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, config: RunnerConfig) -> Self {
        let cache = EngineCache::new(config.cache_capacity_bytes);
        let writer = OutputWriter::new(&config.out_dir).with_switches(config.switches.recorded());
        Self {
            shared,
            config,
            cache,
            writer,
        }
    }

    /// Runs jobs until told to close and idle, or stopped.
    pub fn run(mut self) {
        // However the worker ends (a panic included), watchers learn that nothing more comes.
        let _close = CloseEvents(Arc::clone(&self.shared));
        while let Some((record, cancel)) = self.wait_for_job() {
            self.run_job(record, &cancel);
        }
        tracing::debug!("worker finished");
    }

    fn wait_for_job(&self) -> Option<(JobRecord, CancelToken)> {
        let mut queue = self.shared.lock();
        let mut trimmed = false;
        loop {
            match queue.take_next() {
                Ok(Some(job)) => return Some(job),
                Ok(None) => {}
                Err(err) => tracing::error!(%err, "the queue database failed"),
            }
            if queue.is_stopping() || self.shared.closing() {
                return None;
            }
            if !trimmed {
                // Idle: the memory the jobs freed goes back to the system (outside the lock).
                drop(queue);
                crate::platform::heap::return_freed_memory();
                trimmed = true;
                queue = self.shared.lock();
                continue;
            }
            // A shared queue is filled by other processes too: look again every poll.
            queue = match queue.poll_interval() {
                Some(every) => {
                    self.shared
                        .wake
                        .wait_timeout(queue, every)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
                None => self
                    .shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }

    fn run_job(&mut self, record: JobRecord, cancel: &CancelToken) {
        let id = record.id;
        let _span = tracing::info_span!("job", job = %id).entered();
        let started = Instant::now();
        let mut timings = Timings::new();
        crate::device::cuda_pool::reset_peak(&self.config.device.device);
        // A panic anywhere in the job (loading, planning, writing) fails this job only; the
        // engines it may have left half-updated are dropped and loaded afresh by the next job.
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.execute(&record, cancel, &mut timings)
        }))
        .unwrap_or_else(|panic| {
            self.cache.clear();
            Err(job_panicked(panic))
        });
        timings.insert("total".into(), started.elapsed().as_secs_f64());
        let mut queue = self.shared.lock();
        let shutdown = queue.finish_running(id);
        let (event, stored) = match result {
            Ok(outcome) => (
                JobEvent::Done {
                    job: id,
                    outputs: outcome.outputs,
                    timings,
                    peak_bytes: crate::platform::process::peak_rss_bytes(),
                    device_peak_bytes: crate::device::cuda_pool::peak(&self.config.device.device)
                        .map(|p| p.used),
                    text: outcome.text,
                    duration_s: outcome.duration_s,
                },
                queue.store_mut().mark_done(id),
            ),
            Err(crate::Error::Cancelled) => {
                // A shutdown puts the job back for --resume; a cancel is the user's choice.
                let store = queue.store_mut();
                let stored = if shutdown {
                    store.mark_interrupted(id)
                } else {
                    store.mark_cancelled(id)
                };
                (JobEvent::Cancelled { job: id }, stored)
            }
            Err(crate::Error::OutputWrite { path, source }) => {
                // Not the job's fault: it waits to run again, and nothing more starts (a full
                // disk would fail every remaining job after computing it).
                let error = format!(
                    "cannot write the output {}: {source}. The job is back in the queue and the \
                     batch stopped: free space or make {} writable, then run `pallaidium \
                     --headless --resume` (or retry the job)",
                    path.display(),
                    self.config.out_dir.display()
                );
                tracing::error!(%error, "output not written; queue halted");
                queue.halt(error.clone());
                let stored = queue.store_mut().mark_interrupted_by(id, &error);
                (JobEvent::Failed { job: id, error }, stored)
            }
            Err(err) => {
                if err.exit_code() == 2 {
                    self.shared
                        .bad_input_failures
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(id);
                }
                let error = err.to_string();
                tracing::error!(%error, "job failed");
                let stored = queue.store_mut().mark_failed(id, &error);
                (JobEvent::Failed { job: id, error }, stored)
            }
        };
        if let Err(err) = stored {
            tracing::error!(%err, "could not record the job's end");
        }
        drop(queue);
        tracing::info!(state = ?event_name(&event), "job ended");
        self.shared.emit(event);
    }

    fn execute(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        super::kinds::job_for(&record.spec.params).run(self, record, cancel, timings)
    }
}

/// What a finished job hands to its `done` event.
#[derive(Debug, Default)]
pub struct JobOutcome {
    pub outputs: Vec<PathBuf>,
    pub text: Option<String>,
    pub duration_s: Option<f64>,
}

pub(super) fn to_job_event(job: JobId, event: EngineEvent) -> JobEvent {
    match event {
        EngineEvent::Loading { stage } => JobEvent::Loading { job, stage },
        EngineEvent::Progress {
            step,
            steps,
            elapsed_s,
            eta_s,
        } => JobEvent::Progress {
            job,
            step,
            steps,
            elapsed_s,
            eta_s,
        },
        EngineEvent::Preview(preview) => JobEvent::Preview {
            job,
            width: preview.width,
            height: preview.height,
            pixels: preview.pixels,
        },
        EngineEvent::Text { delta } => JobEvent::Text { job, delta },
    }
}

fn event_name(event: &JobEvent) -> &'static str {
    match event {
        JobEvent::Done { .. } => "done",
        JobEvent::Failed { .. } => "failed",
        JobEvent::Cancelled { .. } => "cancelled",
        _ => "other",
    }
}

/// Closes the event queues when dropped (the worker thread's end, however it comes).
struct CloseEvents(Arc<Shared>);

impl Drop for CloseEvents {
    fn drop(&mut self) {
        self.0.events.close();
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A panic inside an engine, as the failed job reports it.
pub(super) fn engine_crash(panic: Box<dyn std::any::Any + Send>) -> crate::Error {
    crate::Error::EngineCrashed {
        message: panic_text(&*panic),
    }
}

/// A panic elsewhere in a job (loading a model, planning, writing), as the failed job reports it.
fn job_panicked(panic: Box<dyn std::any::Any + Send>) -> crate::Error {
    crate::Error::job_failed(format!(
        "the job panicked (a bug; please report it with the log): {}",
        panic_text(&*panic)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_events_keep_their_fields() {
        let event = to_job_event(
            JobId(3),
            EngineEvent::Progress {
                step: 1,
                steps: 4,
                elapsed_s: 0.5,
                eta_s: 1.5,
            },
        );
        assert_eq!(
            event,
            JobEvent::Progress {
                job: JobId(3),
                step: 1,
                steps: 4,
                elapsed_s: 0.5,
                eta_s: 1.5
            }
        );
        let stage = to_job_event(
            JobId(3),
            EngineEvent::Loading {
                stage: "unet".into(),
            },
        );
        assert_eq!(
            stage,
            JobEvent::Loading {
                job: JobId(3),
                stage: "unet".into()
            }
        );
    }

    #[test]
    fn peak_memory_is_known_on_unix() {
        if cfg!(unix) {
            assert!(crate::platform::process::peak_rss_bytes().unwrap() > 1024 * 1024);
        }
    }
}
