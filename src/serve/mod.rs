//! `pallaidium serve`: the HTTP API over the same runner and queue the TUI and headless runs
//! use. A versioned native API under /api/v1 (jobs, SSE events, outputs by id and index,
//! models, doctor, health, its OpenAPI document), and OpenAI- and A1111-compatible subsets.
//! SIGTERM or Ctrl-C stop it gracefully: nothing new is taken, the running job is interrupted
//! and goes back to the queue (the next start resumes it with the waiting ones), streams end.

pub mod a1111;
pub mod auth;
pub mod body;
pub mod client;
pub mod error;
pub mod events;
pub mod limits;
pub mod listen;
pub mod log_stream;
pub mod machine;
pub mod native;
pub mod openai;
pub mod preview;
pub mod remote;
pub mod remote_jobs;
pub mod router;
pub mod shared_queue;
pub mod sse;
pub mod state;
pub mod stream_ids;
pub mod submit;
pub mod system;
pub mod uploads;
pub mod views;
pub mod ws;
pub mod ws_frame;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::cli::GlobalArgs;
use crate::jobs::run::queue::Takes;
use crate::jobs::spec::JobOverrides;
use crate::jobs::store::{JobStore, PgStore};
use crate::jobs::{JobRunner, RunnerConfig};
use crate::platform::switches::Switches;
use crate::serve::auth::Token;
use crate::serve::events::EventLog;
use crate::serve::state::AppState;

/// How long a stop waits for the running job to give way (it stops within one step).
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How long a stop waits for open requests to finish once nothing new is taken.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Everything a server needs, set up from the command line.
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub token: Option<Token>,
    pub max_body: usize,
    pub runner: RunnerConfig,
    /// The runner's connection to the queue.
    pub store: Box<dyn JobStore>,
    /// A second connection, for the API's reads.
    pub reads: Box<dyn JobStore>,
    /// With `--queue`: the shared queue's events, which workers elsewhere store. This server
    /// then only queues jobs; its runner runs none.
    pub shared_queue: Option<PgStore>,
    /// Job flags given before `serve`.
    pub defaults: JobOverrides,
    pub uploads_dir: PathBuf,
    pub global: GlobalArgs,
    pub switches: Switches,
    /// The machine's memory, CPU and device, for `GET /api/v1/system`.
    pub machine: machine::Machine,
    /// The server's newest log lines, for `GET /api/v1/logs`.
    pub logs: Arc<crate::log_ring::LogRing>,
}

fn io_error(what: &str, err: std::io::Error) -> crate::Error {
    crate::Error::job_failed(format!("{what}: {err}"))
}

/// Serves until SIGTERM or SIGINT, then stops gracefully.
pub async fn run(config: ServeConfig) -> crate::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| io_error("signals", e))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| io_error("signals", e))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| io_error("signals", e))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            crate::Error::bad_input(format!(
                "--listen {}: cannot listen there ({e})",
                config.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| io_error("the listening address", e))?;

    let takes = match config.shared_queue {
        Some(_) => Takes::Nothing,
        None => Takes::Own,
    };
    let runner = Arc::new(JobRunner::start_taking(config.store, takes, config.runner)?);
    let events = Arc::new(EventLog::new(limits::RETAINED_EVENTS));
    let pump = match config.shared_queue {
        None => tokio::spawn(events::pump(runner.subscribe(), Arc::clone(&events))),
        Some(queue) => tokio::task::spawn_blocking({
            let (watching, events) = (runner.subscribe(), Arc::clone(&events));
            move || shared_queue::pump(queue, watching, &events)
        }),
    };
    // The queue is the server's: jobs left queued or interrupted by an earlier run go on.
    let resumed = runner.resume_pending()?;
    if !resumed.is_empty() {
        tracing::info!(jobs = resumed.len(), "resumed queued and interrupted jobs");
    }
    let state = AppState {
        runner: Arc::clone(&runner),
        events: Arc::clone(&events),
        reads: Arc::new(Mutex::new(config.reads)),
        defaults: Arc::new(config.defaults),
        uploads: Arc::new(uploads::Uploads::new(config.uploads_dir)),
        global: Arc::new(config.global),
        switches: Arc::new(config.switches),
        token: config.token.map(Arc::new),
        a1111_model: Arc::new(Mutex::new(None)),
        machine: Arc::new(config.machine),
        logs: config.logs,
    };
    let app = router::build(state, config.max_body);

    tracing::info!(%addr, "serving");
    let _ = writeln!(
        std::io::stderr(),
        "pallaidium serve: listening on http://{addr} (API /api/v1, OpenAPI /api/v1/openapi.json)"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server = tokio::spawn(listen::serve(listener, app, stop_rx, DRAIN_GRACE));

    tokio::select! {
        ended = &mut server => {
            // The server ended by itself: an accept loop that failed.
            events.close();
            runner.stop();
            return match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(io_error("the server stopped", e)),
                Err(e) => Err(crate::Error::job_failed(format!("the server stopped: {e}"))),
            };
        }
        name = stop_signal(&mut sigterm, &mut sigint, &mut sighup) => {
            tracing::warn!(signal = name, "stopping: the running job goes back to the queue");
        }
    }
    // Streams end now and waiting requests answer 503, so no client takes the running job's
    // stop for a cancel: it goes back to the queue, and a client that reconnects to the next
    // server sees it run there.
    let mut watching = runner.subscribe();
    events.close();
    if let Some(job) = runner.stop() {
        let stopped = async {
            while let Some(event) = watching.recv().await {
                if event.job() == job && event.is_terminal() {
                    break;
                }
            }
        };
        if tokio::time::timeout(STOP_GRACE, stopped).await.is_err() {
            tracing::warn!(%job, "the running job did not stop in time; leaving it interrupted");
        }
    }
    drop(watching);
    let _ = stop_tx.send(true);
    let grace = DRAIN_GRACE + Duration::from_secs(1);
    if tokio::time::timeout(grace, &mut server).await.is_err() {
        server.abort();
    }
    drop(pump);
    // The worker thread is joined when the last handle goes: off the async threads.
    let _ = tokio::task::spawn_blocking(move || drop(runner)).await;
    Ok(())
}

/// The signal that stops the server; SIGHUP (a dropped SSH session) does not.
async fn stop_signal(
    sigterm: &mut Signal,
    sigint: &mut Signal,
    sighup: &mut Signal,
) -> &'static str {
    loop {
        tokio::select! {
            _ = sigterm.recv() => return "SIGTERM",
            _ = sigint.recv() => return "SIGINT",
            _ = sighup.recv() => tracing::warn!("SIGHUP (terminal gone?): serving on"),
        }
    }
}
