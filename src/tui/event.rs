//! The one inbound channel: terminal input, ticks, job events, system snapshots and signals all
//! become `AppEvent`s; the app drains them, then draws.

use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::sampler::SysSnapshot;
use crate::jobs::JobEvent;

/// A signal the TUI reacts to by leaving (the terminal is restored on the way out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// SIGTERM: stop the running job (it goes back as interrupted); the rest stay queued.
    Terminate,
    /// SIGHUP: the terminal is gone; running jobs finish headless.
    Hangup,
}

#[derive(Debug, Clone)]
pub enum AppEvent {
    Input(Event),
    /// A slow heartbeat (ETA countdowns, the spinner).
    Tick,
    Job(JobEvent),
    System(SysSnapshot),
    Signal(SignalKind),
    /// Prompt history finished loading from disk.
    History(Vec<String>),
    /// A background task failed; shown in the status line.
    Notice(String),
    /// The runner refused a submitted job (shown like a notice; a waiting prompt helper stops).
    Rejected(String),
    /// An audio output's waveform, read for the preview.
    Waveform(Box<crate::tui::preview::waveform::Waveform>),
    /// The LoRA files for the LoRA picker.
    LoraFiles(Vec<crate::tui::lora_files::LoraFile>),
    /// What the form's model (a folder) makes.
    ModelKind {
        model: String,
        kind: crate::models::Kind,
        family: crate::models::Family,
    },
    /// A video output, decoded for the preview.
    Video(Box<crate::tui::preview::video::Clip>),
    /// A text output, read for the preview.
    TextFile {
        label: String,
        text: String,
    },
    /// The runner accepted a job the form submitted.
    Submitted {
        job: crate::jobs::JobId,
        spec: Box<crate::jobs::JobSpec>,
    },
    /// An output image finished loading for the preview.
    Image {
        label: String,
        image: Box<image::DynamicImage>,
    },
    /// The memory plan of the form as it was at `generation` (older ones are dropped).
    Plan {
        generation: u64,
        status: super::planning::PlanStatus,
    },
}

pub fn channel() -> (UnboundedSender<AppEvent>, UnboundedReceiver<AppEvent>) {
    unbounded_channel()
}

/// Reads the terminal with crossterm's async `EventStream` until the receiver is gone.
pub fn spawn_input(tx: UnboundedSender<AppEvent>) {
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if tx.send(AppEvent::Input(ev)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!("terminal input failed: {e}");
                    break;
                }
            }
        }
    });
}

pub fn spawn_ticks(tx: UnboundedSender<AppEvent>, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            if tx.send(AppEvent::Tick).is_err() {
                break;
            }
        }
    });
}

/// SIGTERM and SIGHUP become events so the loop leaves through the path that restores the terminal.
#[cfg(unix)]
pub fn spawn_signals(tx: UnboundedSender<AppEvent>) {
    use tokio::signal::unix::{SignalKind as Kind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (signal(Kind::terminate()), signal(Kind::hangup()))
        else {
            tracing::warn!("cannot listen for SIGTERM/SIGHUP");
            return;
        };
        loop {
            let kind = tokio::select! {
                _ = term.recv() => SignalKind::Terminate,
                _ = hup.recv() => SignalKind::Hangup,
            };
            if tx.send(AppEvent::Signal(kind)).is_err() {
                break;
            }
        }
    });
}

#[cfg(not(unix))]
pub fn spawn_signals(_tx: UnboundedSender<AppEvent>) {}
