//! The job runner shuts down promptly however its worker's startup and the shutdown interleave
//! (a lost wake-up once hung `--headless` at exit in CI: the closing flag was set outside the
//! queue's lock, between the worker's check and its wait).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::Duration;

use crate::runner;
use runner::cpu_runner_link;

#[test]
fn start_then_shutdown_never_hangs() {
    let home = tempfile::tempdir().unwrap();
    let (paths, link) = cpu_runner_link(home.path());
    for round in 0..3000 {
        let store = pallaidium::jobs::Store::open(&paths.queue_db).unwrap();
        let runner = pallaidium::jobs::JobRunner::start(store, link.config.clone()).unwrap();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            runner.shutdown();
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(20)).is_ok(),
            "round {round}: the runner did not shut down"
        );
    }
}

/// The TUI's "cancel them and quit": cancel every job, then stop and shut down. The running job
/// and the waiting ones end `cancelled` (not `interrupted`, which --resume would run again).
#[test]
fn cancel_then_stop_records_every_job_cancelled() {
    use pallaidium::jobs::spec::JobOverrides;
    use pallaidium::jobs::{JobEvent, JobState};
    let home = tempfile::tempdir().unwrap();
    let (paths, link) = cpu_runner_link(home.path());
    let store = pallaidium::jobs::Store::open(&paths.queue_db).unwrap();
    let runner = pallaidium::jobs::JobRunner::start(store, link.config.clone()).unwrap();
    let mut events = runner.subscribe();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let spec = |seed| JobOverrides {
        model: Some(fixture.display().to_string()),
        prompt: Some("a long job".into()),
        // Long enough that it still runs when the cancel comes.
        steps: Some(500),
        width: Some(64),
        height: Some(64),
        seed: Some(seed),
        ..JobOverrides::default()
    };
    let ids = runner.submit(&[spec(1), spec(2), spec(3)]).unwrap();
    loop {
        match events.blocking_recv().unwrap() {
            JobEvent::Progress { job, .. } if job == ids[0] => break,
            e => assert!(!e.is_terminal(), "ended before the cancel: {e:?}"),
        }
    }
    for &id in &ids {
        runner.cancel(id).unwrap();
    }
    runner.stop();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        runner.shutdown();
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(Duration::from_secs(120)).is_ok(),
        "the runner did not stop"
    );
    let store = pallaidium::jobs::Store::open(&paths.queue_db).unwrap();
    let states: Vec<JobState> = ids.iter().map(|&id| store.get(id).unwrap().state).collect();
    assert_eq!(states, [JobState::Cancelled; 3]);
}
