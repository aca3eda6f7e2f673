//! The job runner shuts down promptly however its worker's startup and the shutdown interleave
//! (a lost wake-up once hung `--headless` at exit in CI: the closing flag was set outside the
//! queue's lock, between the worker's check and its wait).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::Duration;

#[path = "support/runner.rs"]
mod runner;
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
