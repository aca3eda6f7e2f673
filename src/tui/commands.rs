//! Carrying out the app's `Command`s: runner calls, file work and memory planning go to blocking
//! threads and their results come back as `AppEvent`s, so the event loop never waits on them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::app::Command;
use super::event::AppEvent;
use super::history;
use super::planning::FormPlanner;
use super::queue_link::QueueLink;

/// Plan only once the form has been still this long, so typing does not plan every key.
pub const PLAN_DEBOUNCE: Duration = Duration::from_millis(250);

/// What commands run against.
pub struct Services {
    /// The queue jobs go to: this machine's runner or a remote server's.
    pub runner: Arc<dyn QueueLink>,
    pub tx: UnboundedSender<AppEvent>,
    pub history_file: PathBuf,
    /// Plans the form's job here; `None` when a remote server runs it (it plans there).
    pub planner: Option<Arc<FormPlanner>>,
    /// The newest plan generation asked for; an older request that wakes up late gives way.
    pub plan_latest: Arc<AtomicU64>,
    /// Where the LoRA picker's files are.
    pub loras: super::lora_files::LoraSources,
}

impl Services {
    pub fn execute(&self, command: Command) {
        let runner = Arc::clone(&self.runner);
        let tx = self.tx.clone();
        let notice = |tx: &UnboundedSender<AppEvent>, what: &str, e: crate::Error| {
            let _ = tx.send(AppEvent::Notice(format!("{what}: {e}")));
        };
        match command {
            Command::Submit(spec) => {
                tokio::task::spawn_blocking(move || match runner.submit(&spec) {
                    Ok(jobs) => {
                        for (job, spec) in jobs {
                            let _ = tx.send(AppEvent::Submitted {
                                job,
                                spec: Box::new(spec),
                            });
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(AppEvent::Rejected(format!("not queued: {e}")));
                    }
                });
            }
            Command::Cancel(id) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = runner.cancel(id) {
                        notice(&tx, "cancel", e);
                    }
                });
            }
            Command::Retry(id) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = runner.retry(id) {
                        notice(&tx, "retry", e);
                    }
                });
            }
            Command::Move { job, index } => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = runner.move_to(job, index) {
                        notice(&tx, "move", e);
                    }
                });
            }
            Command::SetPaused(paused) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = runner.set_paused(paused) {
                        notice(&tx, "pause", e);
                    }
                });
            }
            Command::SaveHistory(entries) => {
                let file = self.history_file.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = history::save(&file, &entries) {
                        let _ = tx.send(AppEvent::Notice(format!(
                            "cannot save prompt history {}: {e}",
                            file.display()
                        )));
                    }
                });
            }
            Command::LoadImage(path) => {
                tokio::task::spawn_blocking(move || match image::open(&path) {
                    Ok(image) => {
                        let label = path
                            .file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                        let _ = tx.send(AppEvent::Image {
                            label,
                            image: Box::new(image),
                        });
                    }
                    Err(e) => {
                        let _ = tx.send(AppEvent::Notice(format!(
                            "cannot show {}: {e}",
                            path.display()
                        )));
                    }
                });
            }
            Command::LoadAudio(path) => {
                tokio::task::spawn_blocking(move || {
                    let event = match super::preview::waveform::read_wav(&path) {
                        Ok(wave) => AppEvent::Waveform(Box::new(wave)),
                        Err(e) => AppEvent::Notice(format!("cannot show: {e}")),
                    };
                    let _ = tx.send(event);
                });
            }
            Command::LoadVideo(path) => {
                tokio::task::spawn_blocking(move || {
                    let event = match super::preview::video::load_clip(&path) {
                        Ok(clip) => AppEvent::Video(Box::new(clip)),
                        Err(e) => AppEvent::Notice(format!("cannot play: {e}")),
                    };
                    let _ = tx.send(event);
                });
            }
            Command::LoadText(path) => {
                tokio::task::spawn_blocking(move || {
                    let event = match std::fs::read_to_string(&path) {
                        Ok(text) => AppEvent::TextFile {
                            label: path
                                .file_name()
                                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                            text,
                        },
                        Err(e) => AppEvent::Notice(format!("cannot show {}: {e}", path.display())),
                    };
                    let _ = tx.send(event);
                });
            }
            Command::Plan { generation, spec } => self.plan(generation, spec, tx),
            Command::ResolveKind(model) => {
                let Some(planner) = self.planner.clone() else {
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    if let Some((kind, family)) = planner.model_kind(&model) {
                        let _ = tx.send(AppEvent::ModelKind {
                            model,
                            kind,
                            family,
                        });
                    }
                });
            }
            Command::LoadControl { path, canny } => {
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(
                        match super::preview::control::control_preview(&path, canny) {
                            Ok((label, image)) => AppEvent::Image {
                                label,
                                image: Box::new(image),
                            },
                            Err(e) => AppEvent::Notice(e),
                        },
                    );
                });
            }
            Command::ScanLoras => {
                let sources = self.loras.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(AppEvent::LoraFiles(super::lora_files::scan(&sources)));
                });
            }
            Command::Quit(_) => {}
        }
    }

    /// Debounced: waits, and plans only if no newer form arrived meanwhile.
    fn plan(
        &self,
        generation: u64,
        spec: Box<crate::jobs::spec::JobOverrides>,
        tx: UnboundedSender<AppEvent>,
    ) {
        self.plan_latest.fetch_max(generation, Ordering::Relaxed);
        let latest = Arc::clone(&self.plan_latest);
        let Some(planner) = self.planner.clone() else {
            let status = super::planning::PlanStatus::Unavailable(
                "the server plans the job's memory when it runs it".to_owned(),
            );
            let _ = tx.send(AppEvent::Plan { generation, status });
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(PLAN_DEBOUNCE).await;
            if latest.load(Ordering::Relaxed) != generation {
                return;
            }
            let planned = tokio::task::spawn_blocking(move || planner.plan(&spec)).await;
            match planned {
                Ok(status) => {
                    let _ = tx.send(AppEvent::Plan { generation, status });
                }
                Err(e) => tracing::warn!("memory planning stopped: {e}"),
            }
        });
    }
}
