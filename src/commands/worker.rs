//! `pallaidium worker --queue postgres://...`: runs jobs from a shared queue, one at a time, on
//! this machine's device. No UI: it logs with tracing. Its runner claims jobs (`Takes::Any`);
//! this loop renews the running job's lease, forwards the runner's events to the queue (where
//! `serve --queue` streams them) and decides when to stop: `--max-jobs`, `--exit-when-empty`,
//! or SIGTERM/SIGINT, which gives the running job back to the queue at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::{GlobalArgs, WorkerArgs};
use crate::jobs::JobRunner;
use crate::jobs::run::queue::Takes;
use crate::jobs::run::setup::{FetchDisplay, runner_setup};
use crate::jobs::store::{JobStore, PgOptions, PgStore};
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;

/// How often events are forwarded and the stop conditions looked at.
const TICK: Duration = Duration::from_millis(100);
/// How often an idle worker looks for jobs, and --exit-when-empty for an empty queue.
const POLL: Duration = Duration::from_millis(500);
/// The longest time between heartbeats (a cancel asked elsewhere arrives with the next one).
const MAX_HEARTBEAT: Duration = Duration::from_secs(2);

pub fn run(global: &GlobalArgs, switches: &Switches, args: &WorkerArgs) -> anyhow::Result<i32> {
    let lease = args.lease.lease()?;
    if args.max_jobs == Some(0) {
        return Err(crate::Error::bad_input("--max-jobs must be at least 1").into());
    }
    let options = PgOptions { lease, poll: POLL };
    // The queue first: a wrong URL is refused before anything is set up or written.
    let connect = || PgStore::connect(&args.queue, options).map_err(crate::Error::from);
    let claims = connect()?;
    let mut watch = connect()?;
    let paths = Paths::resolve(global.out.as_deref(), switches)?;
    let setup = runner_setup(
        &global.run_settings(),
        &paths,
        switches,
        0,
        FetchDisplay::LogOnly,
    )?;
    tracing::info!(
        queue = claims.url(),
        worker = claims.worker(),
        out = %setup.config.out_dir.display(),
        lease_s = lease.as_secs_f64(),
        "worker started"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| crate::Error::job_failed(format!("cannot watch for signals: {e}")))?;
    }
    let runner = JobRunner::start_taking(
        Box::new(claims),
        Takes::Any {
            limit: args.max_jobs,
        },
        setup.config,
    )?;
    let mut events = runner.subscribe();
    let heartbeat_every = (lease / 3).min(MAX_HEARTBEAT);
    let (mut last_beat, mut last_poll) = (Instant::now(), Instant::now());
    let why = loop {
        std::thread::sleep(TICK);
        if let Err(err) = watch.forward(&mut events) {
            tracing::error!(%err, "could not store the job's events");
        }
        if stop.load(Ordering::SeqCst) {
            if let Some(job) = runner.stop() {
                tracing::warn!(%job, "stopping: the running job goes back to the queue");
            }
            break "signal";
        }
        if last_beat.elapsed() >= heartbeat_every {
            last_beat = Instant::now();
            if let Err(err) = runner.keep_alive() {
                tracing::error!(%err, "could not renew the lease");
            }
        }
        let (running, claimed, more) = runner.activity();
        if running {
            continue;
        }
        if !more {
            break "--max-jobs reached";
        }
        if args.exit_when_empty && last_poll.elapsed() >= POLL {
            last_poll = Instant::now();
            match watch.unfinished() {
                Ok(0) => break "the queue is empty",
                Ok(_) => {}
                Err(err) => tracing::error!(%err, claimed, "could not read the queue"),
            }
        }
    };
    // Let the runner finish (a stopped job is recorded as interrupted), then send what it said.
    runner.shutdown();
    if let Err(err) = watch.forward(&mut events) {
        tracing::error!(%err, "could not store the job's events");
    }
    tracing::info!(reason = why, "worker stopped");
    Ok(0)
}
