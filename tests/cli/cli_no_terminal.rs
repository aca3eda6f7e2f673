//! Without a terminal (stdin and stdout are pipes here) the binary runs headless, whatever the
//! flags: no "No such device or address", no TUI that would queue nothing. The same flags with
//! --headless and without it give the same jobs.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// The binary in a fresh home, on the CPU, offline, without --headless.
fn bare(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home)
        .env("HF_HOME", home.join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("PALLAIDIUM_LOG")
        .args(["--device", "cpu", "--out"])
        .arg(home.join("out"));
    cmd
}

fn pngs(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p);
        }
    }
    found
}

fn tiny_job() -> Vec<String> {
    let model = fixture("sd1-tiny").display().to_string();
    [
        "--model", &model, "--steps", "2", "--width", "64", "--height", "64",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn job_flags_without_a_terminal_run_headless() {
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path())
        .args(tiny_job())
        .args(["--prompt", "a fox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // stdout is a pipe: JSON lines, as --headless gives.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"event\":\"done\""), "{stdout}");
    assert_eq!(pngs(&home.path().join("out")), 1);
}

#[test]
fn a_jobs_file_without_a_terminal_runs_every_job() {
    let home = tempfile::tempdir().unwrap();
    let jobs = home.path().join("jobs.jsonl");
    std::fs::write(&jobs, "{\"prompt\": \"one\"}\n{\"prompt\": \"two\"}\n").unwrap();
    let out = bare(home.path())
        .args(tiny_job())
        .arg("--jobs")
        .arg(&jobs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(pngs(&home.path().join("out")), 2);
}

#[test]
fn resume_without_a_terminal_is_headless() {
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path()).arg("--resume").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing to resume"), "{stderr}");
    assert!(!stderr.contains("No such device"), "{stderr}");
}

#[test]
fn bad_batch_input_without_a_terminal_is_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path())
        .args(tiny_job())
        .args(["--prompts", "/nonexistent/prompts.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("prompts.txt"));
    // Nothing to do at all: the headless message, not a terminal error.
    let out = bare(home.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing to run"), "{stderr}");
}

#[test]
fn history_without_headless_prints_the_history() {
    let home = tempfile::tempdir().unwrap();
    bare(home.path())
        .args(tiny_job())
        .args(["--prompt", "a fox"])
        .assert()
        .success();
    let out = bare(home.path()).arg("--history").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"state\":\"done\""), "{stdout}");
}
