//! The TUI in client mode (`--host URL`): the queue, gauges, log and outputs of a remote
//! `pallaidium serve`. Submitting sends the form's job there (input files uploaded); events
//! come from its server-wide stream, followed through dropped connections (resumed after the
//! last event seen); a finished job's outputs are downloaded into `--out` so the preview shows
//! them. The jobs never depend on this client: quitting leaves them to the server unless the
//! user cancels the ones this session queued.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::app::QuitMode;
use super::event::AppEvent;
use super::queue_link::{QueueLink, active};
use crate::jobs::output::OutputWriter;
use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobEvent, JobId, JobRecord, JobSpec};
use crate::log_ring::LogLine;
use crate::serve::machine::SystemReport;
use crate::serve::remote::Remote;

pub struct RemoteQueue {
    remote: Arc<Remote>,
    /// `--out`: where finished jobs' outputs are downloaded.
    outputs: PathBuf,
    /// The server's newest event when the link was made: events are followed from there.
    start_after: String,
    /// Jobs this session queued (quitting with "cancel" cancels only these).
    submitted: Mutex<BTreeSet<JobId>>,
}

impl RemoteQueue {
    /// Reaches the server (its machine report proves the URL and token); the report comes back
    /// for the form's device and the first gauges.
    pub fn connect(
        host: &str,
        token: Option<String>,
        outputs: PathBuf,
    ) -> crate::Result<(Self, SystemReport)> {
        let remote = Remote::new(host, token)?;
        let report = remote.system()?;
        Ok((
            Self {
                remote: Arc::new(remote),
                outputs,
                start_after: report.last_event_id.clone(),
                submitted: Mutex::default(),
            },
            report,
        ))
    }

    fn submitted(&self) -> std::sync::MutexGuard<'_, BTreeSet<JobId>> {
        self.submitted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leaving: "cancel" cancels the jobs this session queued that are still waiting or
    /// running; otherwise every job goes on on the server.
    pub fn finish(&self, quit: QuitMode) {
        let mine = self.submitted().clone();
        if mine.is_empty() {
            return;
        }
        let still = self
            .remote
            .history(crate::serve::limits::MAX_LIST)
            .map(|h| active(&h))
            .unwrap_or_default();
        let open: Vec<JobId> = mine.intersection(&still).copied().collect();
        match quit {
            QuitMode::CancelJobs => {
                for id in open {
                    if let Err(e) = self.remote.cancel_job(id) {
                        tracing::warn!("cannot cancel job {id} on the server: {e}");
                    }
                }
            }
            QuitMode::KeepJobs | QuitMode::StopJobs | QuitMode::Switch(_) if !open.is_empty() => {
                let _ = writeln!(
                    std::io::stderr(),
                    "pallaidium: {} job(s) go on on the server at {} (GET /api/v1/jobs)",
                    open.len(),
                    self.remote.base()
                );
            }
            QuitMode::KeepJobs | QuitMode::StopJobs | QuitMode::Switch(_) => {}
        }
    }
}

impl QueueLink for RemoteQueue {
    fn submit(&self, job: &JobOverrides) -> crate::Result<Vec<(JobId, JobSpec)>> {
        let reply = self.remote.submit_reply(job)?;
        let id = reply["id"].as_i64().map(JobId).ok_or_else(|| {
            crate::Error::job_failed(format!("the server's answer has no job id: {reply}"))
        })?;
        let spec: JobSpec = serde_json::from_value(reply["spec"].clone()).map_err(|e| {
            crate::Error::job_failed(format!("the server's answer has no readable spec: {e}"))
        })?;
        self.submitted().insert(id);
        Ok(vec![(id, spec)])
    }

    fn cancel(&self, id: JobId) -> crate::Result<()> {
        self.remote.cancel_job(id)
    }

    fn retry(&self, id: JobId) -> crate::Result<()> {
        self.remote.retry(id)
    }

    fn move_to(&self, id: JobId, index: usize) -> crate::Result<()> {
        self.remote.move_to(id, index)
    }

    fn set_paused(&self, paused: bool) -> crate::Result<()> {
        self.remote.set_paused(paused)
    }

    fn history(&self, rows: usize) -> crate::Result<Vec<JobRecord>> {
        self.remote
            .history(rows.min(crate::serve::limits::MAX_LIST))
    }

    fn forward_events(&self, tx: UnboundedSender<AppEvent>) {
        forward_server_logs(Arc::clone(&self.remote), tx.clone());
        let remote = Arc::clone(&self.remote);
        let start = Some(self.start_after.clone());
        let writer = OutputWriter::new(&self.outputs);
        // A plain thread: its reads block, and the runtime's exit must not wait for them.
        std::thread::spawn(move || {
            let mut downloads = Downloads {
                remote: &remote,
                writer,
                done: BTreeSet::new(),
            };
            let notices = tx.clone();
            let mut seen = |event: &JobEvent| match downloads.local(event, &tx) {
                Some(event) => {
                    log_event(&event);
                    tx.send(AppEvent::Job(event)).is_err()
                }
                None => tx.is_closed(),
            };
            let mut dropped = |why: &str| {
                let text = format!("lost the server ({why}); reconnecting");
                notices.send(AppEvent::Notice(text)).is_ok()
            };
            if let Err(e) = remote.follow_all(start, &mut seen, &mut dropped) {
                let _ = notices.send(AppEvent::Notice(format!("job events: {e}")));
            }
        });
    }

    fn spawn_sampler(&self, every: Duration, tx: UnboundedSender<AppEvent>) {
        let remote = Arc::clone(&self.remote);
        std::thread::spawn(move || {
            loop {
                if let Ok(report) = remote.system()
                    && tx.send(AppEvent::System(report.machine)).is_err()
                {
                    break;
                }
                if tx.is_closed() {
                    break;
                }
                std::thread::sleep(every);
            }
        });
    }

    fn place(&self) -> String {
        self.remote.base().to_owned()
    }
}

/// The server's own log lines into the log pane (target `server`, the server's module after
/// each message), from the newest it kept, followed through dropped connections until the
/// app is gone. A server without `GET /api/v1/logs` (an older one) says so once.
fn forward_server_logs(remote: Arc<Remote>, tx: UnboundedSender<AppEvent>) {
    // A plain thread: its reads block, and the runtime's exit must not wait for them.
    std::thread::spawn(move || {
        let mut seen = |line: &LogLine| {
            log_server_line(line);
            tx.is_closed()
        };
        let mut dropped = |_: &str| !tx.is_closed();
        if let Err(e) = remote.follow_logs(&mut seen, &mut dropped) {
            tracing::warn!(target: "remote", "the server's log is not shown: {e}");
        }
    });
}

/// One of the server's log lines, marked as the server's (target `server`).
fn log_server_line(line: &LogLine) {
    let text = format!("{} [{}]", line.message, line.target);
    match line.level.as_str() {
        "ERROR" => tracing::error!(target: "server", "{text}"),
        "WARN" => tracing::warn!(target: "server", "{text}"),
        "DEBUG" => tracing::debug!(target: "server", "{text}"),
        "TRACE" => tracing::trace!(target: "server", "{text}"),
        _ => tracing::info!(target: "server", "{text}"),
    }
}

/// The server's job events in the log pane (steps and streamed text are left to the panes).
fn log_event(event: &JobEvent) {
    match event {
        JobEvent::Queued { job, position } => {
            tracing::info!(target: "remote", "job {job} queued on the server at {position}")
        }
        JobEvent::Loading { job, stage } => {
            tracing::info!(target: "remote", "job {job} loading {stage}")
        }
        JobEvent::Done { job, outputs, .. } => {
            tracing::info!(target: "remote", "job {job} done; {} output(s) downloaded", outputs.len())
        }
        JobEvent::Failed { job, error } => {
            tracing::error!(target: "remote", "job {job} failed on the server: {error}")
        }
        JobEvent::Cancelled { job } => tracing::info!(target: "remote", "job {job} cancelled"),
        JobEvent::Progress { .. } | JobEvent::Preview { .. } | JobEvent::Text { .. } => {}
    }
}

/// Brings finished jobs' outputs here, once each.
struct Downloads<'a> {
    remote: &'a Remote,
    writer: OutputWriter,
    done: BTreeSet<JobId>,
}

impl Downloads<'_> {
    /// The event as the app should see it: a `done` with this machine's copies of the
    /// outputs, a `preview` with its pixels fetched from the server (its PNG URL); `None` for a
    /// preview the server no longer has or a `done` already brought down.
    fn local(&mut self, event: &JobEvent, tx: &UnboundedSender<AppEvent>) -> Option<JobEvent> {
        match event {
            JobEvent::Preview { job, .. } => {
                let (width, height, pixels) = self.remote.preview(*job).ok()?;
                Some(JobEvent::Preview {
                    job: *job,
                    width,
                    height,
                    pixels,
                })
            }
            JobEvent::Done {
                job,
                outputs,
                timings,
                peak_bytes,
                device_peak_bytes,
                text,
                duration_s,
            } => {
                if !self.done.insert(*job) {
                    return None;
                }
                let local = crate::serve::client::download_all(
                    self.remote,
                    &self.writer,
                    job.0,
                    outputs.len(),
                )
                .unwrap_or_else(|e| {
                    let _ = tx.send(AppEvent::Notice(format!("job {job}: {e}")));
                    Vec::new()
                });
                Some(JobEvent::Done {
                    job: *job,
                    outputs: local,
                    timings: timings.clone(),
                    peak_bytes: *peak_bytes,
                    device_peak_bytes: *device_peak_bytes,
                    text: text.clone(),
                    duration_s: *duration_s,
                })
            }
            other => Some(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn unreachable_previews_are_dropped_and_a_done_comes_through_once() {
        // Nothing here reaches the server: a done without outputs downloads nothing.
        let remote = Remote::new("http://127.0.0.1:9", None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut downloads = Downloads {
            remote: &remote,
            writer: OutputWriter::new(dir.path()),
            done: BTreeSet::new(),
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let job = JobId(4);
        let preview = JobEvent::Preview {
            job,
            width: 8,
            height: 8,
            pixels: Vec::new(),
        };
        assert_eq!(
            downloads.local(&preview, &tx),
            None,
            "no pixels from an unreachable server"
        );
        let progress = JobEvent::Progress {
            job,
            step: 1,
            steps: 2,
            elapsed_s: 0.5,
            eta_s: 0.5,
        };
        assert_eq!(downloads.local(&progress, &tx), Some(progress.clone()));
        let done = JobEvent::Done {
            job,
            outputs: Vec::new(),
            timings: BTreeMap::new(),
            peak_bytes: None,
            device_peak_bytes: None,
            text: Some("a caption".into()),
            duration_s: None,
        };
        assert_eq!(downloads.local(&done, &tx), Some(done.clone()));
        assert_eq!(
            downloads.local(&done, &tx),
            None,
            "a replayed done is not shown twice"
        );
    }
}
