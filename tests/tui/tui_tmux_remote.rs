//! The TUI in client mode (`--host URL`) against a real `pallaidium serve` on loopback, the tiny
//! SD1 fixture as its model: queue a job from the prompt form, see it finish in the queue pane
//! (the job ran on the server, its output came down into this client's --out), the gauges fed
//! by the server; pause the server's queue and cancel a waiting job from the queue pane; restart
//! the server on the same port and see the next job finish (the event stream reconnected); quit.
//! The log pane shows the server's own log lines.

use std::time::Duration;

use crate::serve::Server;
use crate::tmux::{Tmux, fixture, launch, pngs, quit, start_tui};

#[test]
fn the_tui_queues_a_job_on_a_remote_server_and_sees_it_finish() {
    let server = Server::start(&[], &[]);
    let (home, tmux) = remote_tui(&server, "--steps 2 --width 64 --height 64 --seed 7");
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

    // The queue pane acts on the server: pause it, queue a job that therefore waits, cancel it.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt field left", Duration::from_secs(10), |s| {
        s.contains("Enter/i edits")
    });
    tmux.keys(&["Tab"]);
    tmux.keys(&["Tab"]);
    tmux.keys(&["p"]);
    tmux.wait_for("the paused queue", Duration::from_secs(30), |s| {
        s.contains("PAUSED")
    });
    tmux.keys(&["C-g"]);
    wait_until("job 2 queued on the server", || {
        state(&server, 2) == "queued"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(state(&server, 2), "queued", "a paused queue starts nothing");
    // Clear the finished row so the waiting job is the selected one, then cancel it.
    tmux.keys(&["x"]);
    tmux.keys(&["c"]);
    wait_until("job 2 cancelled on the server", || {
        state(&server, 2) == "cancelled"
    });
    tmux.wait_for("the cancelled row", Duration::from_secs(30), |s| {
        s.contains("cancelled")
    });
    tmux.keys(&["p"]);

    // The server restarts on the same port: the TUI reconnects and follows the next job.
    let listen = server.base.trim_start_matches("http://").to_owned();
    let (code, _, run) = server.terminate();
    assert_eq!(code, Some(0));
    let server = Server::start_in(run, &[], &["--listen", &listen], None);
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("job 3 to finish", Duration::from_secs(300), |s| {
        s.contains("job 3 done") || s.contains("failed")
    });
    assert!(
        !screen.contains("failed"),
        "job 3 failed:
{screen}"
    );
    assert_eq!(state(&server, 3), "done");
    assert_eq!(
        pngs(&home.path().join("out")).len(),
        2,
        "job 3's output came down"
    );
    quit(&tmux);
}

/// The TUI in a 160x48 tmux window, in a fresh home, driving `server` with the tiny SD1
/// fixture as its model and `flags`.
fn remote_tui(server: &Server, flags: &str) -> (tempfile::TempDir, Tmux) {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    launch(
        &tmux,
        home.path(),
        &format!(
            "--host {} --model {} {flags}",
            server.base,
            fixture("sd1-tiny").display()
        ),
    );
    (home, tmux)
}

fn state(server: &Server, id: i64) -> serde_json::Value {
    server.get(&format!("/api/v1/jobs/{id}")).json()["state"].clone()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// F2 switches from this machine's runner to a server of the config file; a server that cannot
/// be reached leaves the TUI where it was, saying why.
#[test]
fn the_hosts_view_switches_from_this_machine_to_a_configured_server() {
    let server = Server::start(&[], &[]);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[[hosts]]\nname = \"gone\"\nurl = \"http://127.0.0.1:9\"\n\n\
             [[hosts]]\nname = \"loopback\"\nurl = \"{}\"\n",
            server.base
        ),
    )
    .unwrap();
    let tmux = Tmux::start(160, 48);
    launch(
        &tmux,
        home.path(),
        &format!(
            "--model {} --steps 2 --width 64 --height 64 --seed 7",
            fixture("sd1-tiny").display()
        ),
    );
    tmux.keys(&["F2"]);
    tmux.wait_for("the hosts view", Duration::from_secs(10), |s| {
        s.contains("Hosts: where jobs run") && s.contains("loopback")
    });
    tmux.keys(&["Down"]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the refused switch", Duration::from_secs(60), |s| {
        s.contains("cannot switch to gone")
    });
    assert!(
        screen.contains("(restart to change)"),
        "back on this machine:\n{screen}"
    );

    tmux.keys(&["F2"]);
    tmux.wait_for("the hosts view", Duration::from_secs(10), |s| {
        s.contains("Hosts: where jobs run")
    });
    tmux.keys(&["Down"]);
    tmux.keys(&["Down"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the remote session", Duration::from_secs(60), |s| {
        s.contains("the server plans") && s.contains("cpu:0 @")
    });
    tmux.keys(&["-l", "switched"]);
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("the job to finish", Duration::from_secs(300), |s| {
        s.contains("job 1 done") || s.contains("failed")
    });
    assert!(!screen.contains("failed"), "the job failed:\n{screen}");
    assert_eq!(state(&server, 1), "done");
    quit(&tmux);
}

/// Before the terminal is taken: a wrong hosts file is exit 2 naming the file and the fix; a
/// server that is not there is exit 1 saying so; the screen is the shell's again either way.
#[test]
fn a_wrong_hosts_file_and_an_absent_server_are_refused_before_the_tui_starts() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[[hosts]]\nname = \"gpu\"\nurl = \"gpu:7860\"\n",
    )
    .unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(&tmux, home.path(), "none", "");
    let screen = tmux.wait_for("exit 2", Duration::from_secs(30), |s| s.contains("EXIT=2"));
    assert!(
        screen.contains("config.toml") && screen.contains("no http://"),
        "the file and the fix are named:\n{screen}"
    );
    assert!(!tmux.alternate_on(), "the TUI never took the screen");

    std::fs::remove_file(home.path().join("config.toml")).unwrap();
    tmux.send_line("clear");
    start_tui(&tmux, home.path(), "none", "--host http://127.0.0.1:9");
    let screen = tmux.wait_for("exit 1", Duration::from_secs(60), |s| s.contains("EXIT=1"));
    assert!(
        screen.contains("cannot reach the server at http://127.0.0.1:9"),
        "{screen}"
    );
}

#[test]
fn the_remote_tuis_log_pane_shows_the_servers_own_log_lines() {
    let server = Server::start(&[], &[]);
    let (_home, tmux) = remote_tui(&server, "");
    // The server logged `serving addr=...` at its start; this client never does.
    let screen = tmux.wait_for("the server's log line", Duration::from_secs(30), |s| {
        s.contains("serving addr=")
    });
    let line = screen
        .lines()
        .find(|l| l.contains("serving addr="))
        .unwrap_or_default();
    assert!(
        line.contains("server") && line.contains("[pallaidium::serve]"),
        "the line is marked as the server's: {line}\n{screen}"
    );
    quit(&tmux);
}
