//! Leaving the TUI, after the terminal is given back: what happens to the jobs still queued or
//! running is what the user chose (cancel them, keep them running headless) or what a signal
//! means (SIGTERM: stop, as `--headless` does).

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use super::app::QuitMode;
use crate::jobs::{JobEvent, JobId, JobRunner, JobState};
use crate::platform::paths::Paths;

/// Ends the session's jobs as `quit` says, then shuts the runner down.
pub fn finish(runner: Arc<JobRunner>, quit: QuitMode, paths: &Paths) {
    match quit {
        // The hosts view lets the session leave only when no job is queued or running here.
        QuitMode::CancelJobs | QuitMode::Switch(_) => cancel_all(&runner),
        QuitMode::StopJobs => {
            // The running job goes back as interrupted and the rest stay queued (--resume).
            runner.stop();
        }
        QuitMode::KeepJobs => {
            // A paused queue would never finish them.
            runner.set_paused(false);
            let active = active_jobs(&runner);
            if !active.is_empty() {
                let _ = writeln!(
                    std::io::stderr(),
                    "pallaidium: {} job(s) keep running headless; outputs go to {}, the log to {}",
                    active.len(),
                    paths.outputs.display(),
                    paths.logs.display()
                );
                wait_headless(&runner, active);
            }
        }
    }
    match Arc::try_unwrap(runner) {
        Ok(runner) => runner.shutdown(),
        Err(_) => tracing::warn!("the runner is still shared at exit; it stops with the process"),
    }
}

/// "Cancel them and quit": every queued and running job ends `cancelled` (so `--resume` does
/// not run it again). The queue is paused first, so no job starts between the cancels; the
/// running one stops at its next check and the worker records it cancelled, not interrupted
/// (that is what `stop` is for).
pub fn cancel_all(runner: &JobRunner) {
    runner.set_paused(true);
    for id in active_jobs(runner) {
        if let Err(e) = runner.cancel(id) {
            tracing::warn!("cannot cancel job {id}: {e}");
        }
    }
}

/// Jobs queued or running in the store (other processes' jobs are left to them by `cancel`).
fn active_jobs(runner: &JobRunner) -> BTreeSet<JobId> {
    runner
        .history(usize::MAX)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| matches!(r.state, JobState::Queued | JobState::Running))
        .map(|r| r.id)
        .collect()
}

/// Blocks until every job in `waiting` has ended; SIGHUP is already handled (ignored) by the
/// signal listener, so a closed terminal does not stop the batch.
fn wait_headless(runner: &JobRunner, mut waiting: BTreeSet<JobId>) {
    let mut events = runner.subscribe();
    // Jobs may have ended between the store read and the subscription.
    waiting.retain(|id| runner.record(*id).is_ok_and(|r| !r.state.is_finished()));
    while !waiting.is_empty() {
        match events.blocking_recv() {
            Some(e) if e.is_terminal() => {
                waiting.remove(&e.job());
                if let JobEvent::Failed { job, error } = &e {
                    tracing::error!("job {job} failed: {error}");
                }
            }
            Some(_) => {}
            None => break,
        }
    }
}
