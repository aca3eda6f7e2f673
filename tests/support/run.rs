//! A headless run in a temporary home: the binary with its own PALLAIDIUM_HOME, an empty HF cache,
//! offline, on the CPU; and the outputs it wrote. Included with
//! `#[path = "support/run.rs"] mod run;`.
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
        let mut cmd = Command::cargo_bin("pallaidium").unwrap();
        cmd.env("PALLAIDIUM_HOME", &self.home)
            .env("HF_HOME", self.home.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .args(["--headless", "--device", "cpu", "--out"])
            .arg(&self.out);
        cmd
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
