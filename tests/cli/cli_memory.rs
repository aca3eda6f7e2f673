//! The memory planner guards real runs: a job that cannot fit the budget is refused before
//! anything is queued, loaded or written (exit 2); one that fits only with staged loading runs
//! staged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny")
}

fn base(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home)
        .env_remove("PALLAIDIUM_LOG")
        .args(["--device", "cpu", "--dtype", "f32", "--model"])
        .arg(tiny())
        .args([
            "--prompt",
            "a lighthouse",
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
        ]);
    cmd
}

fn planned_peak(home: &Path, residency: &str) -> u64 {
    let out = base(home)
        .args(["--plan", "--json", "--residency", residency])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["peak_bytes"].as_u64().unwrap()
}

#[test]
fn a_budget_too_small_refuses_the_job_before_anything_runs() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("out");
    let out = base(home.path())
        .args(["--headless", "--json", "--memory-budget", "1MiB", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not enough memory"), "{stderr}");
    assert!(stderr.contains("1.0 MiB is available"), "{stderr}");
    assert!(
        stderr.contains("--memory-budget"),
        "the fix is named: {stderr}"
    );
    assert!(!out_dir.exists(), "nothing may be written");
    let history = Command::cargo_bin("pallaidium")
        .unwrap()
        .env("PALLAIDIUM_HOME", home.path())
        .args(["--headless", "--history", "--json"])
        .output()
        .unwrap();
    assert!(
        history.stdout.is_empty(),
        "nothing may be queued: {}",
        String::from_utf8_lossy(&history.stdout)
    );
}

#[test]
fn a_budget_that_fits_only_staged_runs_staged() {
    let home = tempfile::tempdir().unwrap();
    let staged = planned_peak(home.path(), "staged");
    let resident = planned_peak(home.path(), "resident");
    assert!(
        staged < resident,
        "staged {staged} must need less than resident {resident}"
    );
    let budget = (staged + resident) / 2;
    let out_dir = home.path().join("out");
    let out = base(home.path())
        .args([
            "--headless",
            "--json",
            "--memory-budget",
            &format!("{budget}B"),
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs: String = std::fs::read_dir(home.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let plan_line = logs
        .lines()
        .find(|l| l.contains("memory plan"))
        .unwrap_or_else(|| panic!("no memory plan logged:\n{logs}"));
    assert!(plan_line.contains("residency=Staged"), "{plan_line}");
    assert!(
        logs.contains("text encoders released"),
        "staged mode frees the encoders"
    );
}

/// A registry model missing from the cache is downloaded on demand (here the endpoint is a closed
/// local port, so the download fails fast and says so); with --offline nothing is attempted.
#[test]
fn a_registry_model_missing_from_the_cache_is_fetched_on_demand_unless_offline() {
    let home = tempfile::tempdir().unwrap();
    let run = |offline: bool| {
        let mut cmd = Command::cargo_bin("pallaidium").unwrap();
        cmd.env("PALLAIDIUM_HOME", home.path())
            .env("HF_HOME", home.path().join("hf"))
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env_remove("HF_HUB_OFFLINE")
            .args([
                "--headless",
                "--json",
                "--device",
                "cpu",
                "--model",
                "sd15",
                "--prompt",
                "x",
            ]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().unwrap()
    };
    let online = run(false);
    // The input was fine and the network was not: a failure (1), as `pallaidium fetch` says it;
    // nothing was queued.
    assert_eq!(online.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&online.stderr);
    assert!(stderr.contains("downloading it failed"), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:9"),
        "the endpoint tried is named: {stderr}"
    );
    let offline = run(true);
    assert_eq!(offline.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert!(
        !stderr.contains("downloading it failed"),
        "offline must not download: {stderr}"
    );
    assert!(stderr.contains("pallaidium fetch sd15"), "{stderr}");
}
