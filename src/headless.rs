//! `pallaidium --headless`: drives the same runner as the TUI and prints JSON lines (with --json or
//! when stdout is not a terminal) or a progress bar on stderr. Ctrl-C / SIGTERM stop the running job
//! cleanly (exit 130, waiting jobs stay queued); SIGHUP is ignored so a dropped SSH session does not
//! stop the batch.

mod history;
pub(crate) mod progress;
pub(crate) mod specs;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

use tokio::signal::unix::{SignalKind, signal};

use crate::cli::Cli;
use crate::jobs::{JobEvent, JobId, JobRunner, Store};
use crate::platform::switches::Switches;

/// Runs what the command line asks for and returns the process exit code
/// (0 all done, 1 a job failed, 2 bad input, 130 cancelled).
pub fn run(cli: &Cli, switches: &Switches) -> anyhow::Result<i32> {
    if let Some(host) = &cli.remote.host {
        return crate::serve::client::run(cli, switches, host);
    }
    let paths = crate::platform::paths::Paths::resolve(cli.global.out.as_deref(), switches)?;
    let json = cli.job.json || !std::io::stdout().is_terminal();
    if cli.batch.history {
        let store = Store::open(&paths.queue_db).map_err(crate::Error::from)?;
        history::print(&store, json)?;
        return Ok(0);
    }
    // Everything the user can get wrong in the flags and files fails here, before any work.
    let specs = specs::collect(cli)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_jobs(cli, &paths, switches, specs, json))
}

async fn run_jobs(
    cli: &Cli,
    paths: &crate::platform::paths::Paths,
    switches: &Switches,
    specs: Vec<crate::jobs::spec::JobOverrides>,
    json: bool,
) -> anyhow::Result<i32> {
    // Signal handlers first, so a Ctrl-C during set-up is not lost; SIGHUP is taken (and ignored)
    // so its default action does not end the process.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let config = crate::jobs::run::setup::runner_setup(
        &cli.global.run_settings(),
        paths,
        switches,
        0,
        crate::jobs::run::setup::FetchDisplay::StderrBar,
    )?
    .config;
    let store = Store::open(&paths.queue_db).map_err(crate::Error::from)?;
    let runner = JobRunner::start(store, config)?;
    let mut events = runner.subscribe();
    let mut waiting: BTreeSet<JobId> = BTreeSet::new();
    if cli.batch.resume {
        waiting.extend(runner.resume_pending()?);
    }
    // All or nothing: one bad job refuses the whole batch, nothing queued.
    waiting.extend(runner.submit(&specs)?);
    if waiting.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "nothing to resume: no queued or interrupted jobs"
        );
        return Ok(0);
    }

    let _awake = crate::platform::KeepAwake::acquire("pallaidium is generating");
    let mut view = progress::HumanView::new(std::io::stderr().is_terminal());
    let mut failed = false;
    let mut failed_jobs: Vec<JobId> = Vec::new();
    let mut stopping = false;
    // Whether the run was cut short: a job cancelled, or jobs left queued by a stop.
    let mut cut_short = false;
    while !waiting.is_empty() {
        tokio::select! {
            received = events.recv() => match received {
                Some(event) => {
                    if !waiting.contains(&event.job()) {
                        continue;
                    }
                    show(&event, json, cli.job.preview, &mut view);
                    match &event {
                        JobEvent::Failed { .. } => {
                            failed = true;
                            failed_jobs.push(event.job());
                        }
                        JobEvent::Cancelled { .. } => cut_short = true,
                        _ => {}
                    }
                    if event.is_terminal() {
                        waiting.remove(&event.job());
                        if !waiting.is_empty() && runner.halted().is_some() {
                            // The error (in the event above) names the fix; the rest waits.
                            let _ = writeln!(
                                std::io::stderr(),
                                "pallaidium: the batch stopped; {} job(s) stay queued for \
                                 `pallaidium --headless --resume`",
                                waiting.len()
                            );
                            failed = true;
                            break;
                        }
                    }
                }
                None => {
                    // The worker ended with jobs unfinished (it should not): say so, exit 1.
                    tracing::error!(jobs = ?waiting, "the worker stopped before these jobs ended");
                    let _ = writeln!(
                        std::io::stderr(),
                        "pallaidium: the worker stopped before job(s) {waiting:?} ended; see the log"
                    );
                    failed = true;
                    break;
                }
            },
            _ = sigint.recv() => {
                if stop(&runner, &mut waiting, &mut stopping, &mut cut_short) { break; }
            }
            _ = sigterm.recv() => {
                if stop(&runner, &mut waiting, &mut stopping, &mut cut_short) { break; }
            }
            _ = sighup.recv() => {
                tracing::warn!("SIGHUP (terminal gone?): the batch goes on; see the log file");
            }
        }
    }
    // The worker finishes (or has stopped) its job; waiting jobs stay queued in the store.
    // Failures that were all the user's input (a model folder whose files do not match) exit 2.
    let bad_input_only =
        !failed_jobs.is_empty() && failed_jobs.iter().all(|&id| runner.failed_on_bad_input(id));
    runner.shutdown();
    // A stop that came after the running job's output was written leaves it done: the exit code
    // says done unless other jobs were left queued.
    Ok(if cut_short {
        130
    } else if failed && bad_input_only {
        2
    } else if failed {
        1
    } else {
        0
    })
}

/// First Ctrl-C: stop cleanly and wait for the running job's end (`cancelled`, or `done` when
/// its output was already written). A second one: leave at once (the next run marks the job
/// interrupted and removes its partial file). Returns whether to leave the event loop now.
fn stop(
    runner: &JobRunner,
    waiting: &mut BTreeSet<JobId>,
    stopping: &mut bool,
    cut_short: &mut bool,
) -> bool {
    if *stopping {
        tracing::warn!("second interrupt: leaving without waiting for the running job");
        std::process::exit(130);
    }
    *stopping = true;
    tracing::warn!("stopping: the running job is cancelled, waiting jobs stay queued");
    let running = runner.stop();
    // Jobs that will not run now make this a cut-short run, whatever the running one does.
    *cut_short |= waiting.iter().any(|&id| Some(id) != running);
    match running {
        Some(running) => {
            waiting.retain(|&id| id == running);
            false
        }
        None => true,
    }
}

pub(crate) fn show(event: &JobEvent, json: bool, preview: bool, view: &mut progress::HumanView) {
    if json {
        let mut out = std::io::stdout().lock();
        // A closed stdout (dropped session, closed pipe) must not stop the batch.
        let _ = writeln!(out, "{}", event.to_json_line());
        let _ = out.flush();
    } else {
        view.show(event);
        if let JobEvent::Done { outputs, text, .. } = event {
            let mut out = std::io::stdout().lock();
            let shown = |t: &str| crate::terminal_text::escape_controls(t).into_owned();
            for path in outputs {
                let _ = writeln!(out, "{}", shown(&path.display().to_string()));
            }
            // A caption, transcript or enhanced prompt is what the user came for: print it.
            if let Some(text) = text {
                let _ = writeln!(out, "\n{}", shown(text));
            }
            let _ = out.flush();
            if preview {
                drop(out);
                show_inline(outputs);
            }
        }
    }
}

/// `--preview`: the finished images inline, when stdout is a terminal viuer can draw on.
fn show_inline(outputs: &[std::path::PathBuf]) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    let config = viuer::Config {
        absolute_offset: false,
        width: Some(40),
        ..Default::default()
    };
    for path in outputs {
        let shown = image::open(path)
            .map_err(|e| e.to_string())
            .and_then(|img| viuer::print(&img, &config).map_err(|e| e.to_string()));
        if let Err(err) = shown {
            tracing::warn!(path = %path.display(), %err, "cannot show the preview here");
        }
    }
}
