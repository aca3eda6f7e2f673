//! The TUI's first keys and its ways out, in tmux at 160x48 as a user meets them: Ctrl-G or
//! letters as the very first keys with the default preview protocol (auto: the terminal query
//! runs, and in a detached tmux it is never answered), keys typed before the TUI is drawn, Esc
//! cancelling the running job, and "cancel them and quit" leaving the jobs cancelled.
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::tmux;
use tmux::{Tmux, fixture, pngs, quit, start_tui, wait_for_tui};

/// The tiny SD1 job flags; `size` and `steps` decide how long it runs.
fn sd1(steps: u32, size: u32, extra: &str) -> String {
    format!(
        "--model {} --steps {steps} --width {size} --height {size} --seed 7 {extra}",
        fixture("sd1-tiny").display()
    )
}

/// The state of every job in `home`'s queue database, oldest first (`--history --json`).
fn stored_states(home: &Path) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pallaidium"))
        .env("PALLAIDIUM_HOME", home)
        .args(["--history", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "--history failed: {out:?}");
    let mut states: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["state"].as_str().unwrap().to_owned()
        })
        .collect();
    states.reverse();
    states
}

#[test]
fn ctrl_g_as_the_very_first_key_queues_the_job() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "auto",
        &sd1(2, 64, "--prompt 'a red cat'"),
    );
    wait_for_tui(&tmux);
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("the job to finish", Duration::from_secs(120), |s| {
        s.contains("job 1 done") || s.contains("failed")
    });
    assert!(!screen.contains("failed"), "the job failed:\n{screen}");
    assert_eq!(pngs(&home.path().join("out")).len(), 1, "one output");
    quit(&tmux);
}

#[test]
fn the_first_typed_letters_reach_the_prompt() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(&tmux, home.path(), "auto", &sd1(2, 64, ""));
    wait_for_tui(&tmux);
    tmux.keys(&["-l", "abc"]);
    tmux.wait_for("abc in the prompt", Duration::from_secs(10), |s| {
        s.contains("prompt   abc")
    });
    quit(&tmux);
}

/// Typed before the TUI is drawn (while the terminal query waits): kept, in order.
#[test]
fn keys_typed_before_the_tui_is_drawn_are_kept() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(&tmux, home.path(), "auto", &sd1(2, 64, ""));
    tmux.keys(&["-l", "xyz"]);
    wait_for_tui(&tmux);
    tmux.wait_for("xyz in the prompt", Duration::from_secs(10), |s| {
        s.contains("prompt   xyz")
    });
    quit(&tmux);
}

/// Esc leaves the prompt field; Esc again (no field, no dialog) cancels the running job.
#[test]
fn esc_outside_a_field_cancels_the_running_job() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "none",
        &sd1(500, 128, "--prompt 'a slow fox'"),
    );
    wait_for_tui(&tmux);
    tmux.keys(&["C-g"]);
    tmux.wait_for("the job running", Duration::from_secs(60), |s| {
        s.contains("ETA")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt field left", Duration::from_secs(10), |s| {
        s.contains("Enter/i edits")
    });
    tmux.keys(&["Escape"]);
    let screen = tmux.wait_for("the job cancelled", Duration::from_secs(120), |s| {
        s.contains("⊘ cancelled")
    });
    assert!(screen.contains("a slow fox"), "{screen}");
    quit(&tmux);
    assert_eq!(stored_states(home.path()), ["cancelled"]);
    assert!(pngs(&home.path().join("out")).is_empty(), "no output");
}

/// Two jobs (one running, one waiting), Ctrl-Q from the prompt editor, "c": both are stored
/// `cancelled`, so --resume has nothing to run.
#[test]
fn cancel_them_and_quit_leaves_the_jobs_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "none",
        &sd1(500, 128, "--prompt 'a slow fox'"),
    );
    wait_for_tui(&tmux);
    tmux.keys(&["C-g"]);
    tmux.wait_for("the first job running", Duration::from_secs(60), |s| {
        s.contains("ETA")
    });
    tmux.keys(&["C-g"]);
    tmux.wait_for("the second job queued", Duration::from_secs(10), |s| {
        s.contains("#2 … queued")
    });
    tmux.keys(&["C-q"]);
    tmux.wait_for("the quit question", Duration::from_secs(10), |s| {
        s.contains("cancel them and quit")
    });
    tmux.keys(&["c"]);
    tmux.wait_for("the shell again", Duration::from_secs(120), |s| {
        s.contains("EXIT=0")
    });
    assert_eq!(stored_states(home.path()), ["cancelled", "cancelled"]);
    let resume = std::process::Command::new(env!("CARGO_BIN_EXE_pallaidium"))
        .env("PALLAIDIUM_HOME", home.path())
        .args(["--headless", "--device", "cpu", "--resume"])
        .output()
        .unwrap();
    assert!(resume.status.success(), "{resume:?}");
    assert!(
        String::from_utf8_lossy(&resume.stderr).contains("nothing to resume"),
        "{resume:?}"
    );
}

/// --jobs without --headless: the TUI queues the file's jobs and shows them finishing.
#[test]
fn jobs_file_is_queued_in_the_tui() {
    let home = tempfile::tempdir().unwrap();
    let jobs = home.path().join("jobs.jsonl");
    std::fs::write(
        &jobs,
        "{\"prompt\": \"first fox\"}\n{\"prompt\": \"second fox\"}\n",
    )
    .unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "none",
        &sd1(2, 64, &format!("--jobs {}", jobs.display())),
    );
    wait_for_tui(&tmux);
    let screen = tmux.wait_for("both jobs done", Duration::from_secs(120), |s| {
        s.matches("✔ done").count() == 2 || s.contains("failed")
    });
    assert!(!screen.contains("failed"), "{screen}");
    assert!(
        screen.contains("first fox") && screen.contains("second fox"),
        "{screen}"
    );
    assert_eq!(pngs(&home.path().join("out")).len(), 2);
    quit(&tmux);
}

/// A bad --jobs file stops the TUI before it takes the screen: exit 2 and the reason.
#[test]
fn a_bad_jobs_file_is_refused_before_the_tui_starts() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "none",
        &sd1(2, 64, "--jobs /nonexistent/jobs.toml"),
    );
    let screen = tmux.wait_for("the exit", Duration::from_secs(30), |s| {
        s.contains("EXIT=2")
    });
    assert!(screen.contains("jobs.toml"), "names the file:\n{screen}");
    assert!(!tmux.alternate_on());
    assert!(stored_states(home.path()).is_empty(), "nothing queued");
}
