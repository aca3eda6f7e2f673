//! A headless run in a temporary home: the binary with its own PALLAIDIUM_HOME, an empty HF cache,
//! offline, on the CPU; and the outputs it wrote. Included with
//! `#[path = "../support/run.rs"] mod run;` in a test binary\'s main.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub struct Run {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub out: PathBuf,
}

impl Run {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (home, out) = (dir.path().join("home"), dir.path().join("out"));
        Self { dir, home, out }
    }

    /// `--headless` without --json: stdout is a pipe here, so JSON lines are the default.
    pub fn command(&self) -> Command {
        Command::from_std(self.std_command())
    }

    /// `command` as a std Command, to spawn, read as it runs and signal.
    pub fn std_command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pallaidium"));
        cmd.env("PALLAIDIUM_HOME", &self.home)
            .env("HF_HOME", self.home.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("PALLAIDIUM_LOG")
            .env_remove("PALLAIDIUM_TEST_FAULT")
            .args(["--headless", "--device", "cpu", "--out"])
            .arg(&self.out);
        cmd
    }

    /// `--history` as JSON values, newest first.
    pub fn history(&self) -> Vec<serde_json::Value> {
        let out = self.command().arg("--history").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout)
    }

    /// Every file under `<out>/<date>/`, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut found = vec![];
        for day in std::fs::read_dir(&self.out).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(day.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                found.push(file.path());
            }
        }
        found.sort();
        found
    }
}

/// Every non-empty line of `stdout` as JSON.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The stage names of a memory plan printed by `--plan --json`, in order.
pub fn plan_stages(plan: &serde_json::Value) -> Vec<&str> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect()
}

/// Kills `child` if it is still running after `limit` (a hang must fail the test, not stall it);
/// returns a guard whose drop stops the watch.
pub fn watchdog(child: &std::process::Child, limit: std::time::Duration) -> Watchdog {
    let pid = child.id();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Dropping the guard disconnects the channel: only a timeout kills.
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    Watchdog(stop)
}

pub struct Watchdog(std::sync::mpsc::Sender<()>);

/// A headless job file: one `[[job]]` table a line of `key = value` pairs.
pub fn jobs_toml(jobs: &[Vec<(&str, String)>]) -> String {
    let mut text = String::new();
    for job in jobs {
        text.push_str("[[job]]\n");
        for (key, value) in job {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text.push('\n');
    }
    text
}
