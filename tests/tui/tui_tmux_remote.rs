//! The TUI in client mode (`--host URL`) against a real `pallaidium serve` on loopback, the tiny
//! SD1 fixture as its model: queue a job from the prompt form, see it finish in the queue pane
//! (the job ran on the server, its output came down into this client's --out), the gauges fed
//! by the server, quit. The job stays in the server's queue as done.

use std::time::Duration;

use crate::serve::Server;
use crate::tmux::{Tmux, fixture, launch, pngs, quit};

#[test]
fn the_tui_queues_a_job_on_a_remote_server_and_sees_it_finish() {
    let server = Server::start(&[], &[]);
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    launch(
        &tmux,
        home.path(),
        &format!(
            "--host {} --model {} --steps 2 --width 64 --height 64 --seed 7",
            server.base,
            fixture("sd1-tiny").display()
        ),
    );
    // No local plan: the server plans the job when it runs it.
    let screen = tmux.wait_for("the remote plan notice", Duration::from_secs(30), |s| {
        s.contains("the server plans")
    });
    assert!(
        screen.contains("cpu:0 @"),
        "the device is the server's:\n{screen}"
    );

    tmux.keys(&["-l", "a remote lighthouse"]);
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("the job to finish", Duration::from_secs(300), |s| {
        s.contains("job 1 done") || s.contains("failed")
    });
    assert!(!screen.contains("failed"), "the job failed:\n{screen}");
    assert!(
        screen.contains("✔ done") && screen.contains("a remote lighthouse"),
        "the queue shows the finished job by its prompt:\n{screen}"
    );
    for gauge in ["RAM", "CPU"] {
        assert!(screen.contains(gauge), "gauge {gauge} missing:\n{screen}");
    }
    let outputs = pngs(&home.path().join("out"));
    assert_eq!(outputs.len(), 1, "the output came down: {outputs:?}");
    let png = image::open(&outputs[0]).unwrap();
    assert_eq!((png.width(), png.height()), (64, 64));

    let jobs = server.get("/api/v1/jobs").expect(200);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["jobs"][0]["state"], "done");
    assert_eq!(jobs["jobs"][0]["spec"]["prompt"], "a remote lighthouse");
    quit(&tmux);
}
