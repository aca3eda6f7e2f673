//! The runner a `--device cpu --offline` invocation builds, in a temporary home (as the TUI
//! links it). Included with `#[path = "../support/runner.rs"] mod runner;` in a test binary\'s main.rs.
#![allow(dead_code)]

use std::path::Path;

use clap::Parser;
use pallaidium::models::Registry;
use pallaidium::platform::paths::{PathEnv, Paths};
use pallaidium::tui::runner_link::{RunnerLink, runner_link};

/// The paths under `home` (created) and the runner link for the CPU, offline.
pub fn cpu_runner_link(home: &Path) -> (Paths, RunnerLink) {
    let env = PathEnv {
        pallaidium_home: Some(home.to_path_buf()),
        hf_home: Some(home.join("hf")),
        ..Default::default()
    };
    let paths = Paths::from_env(&env, None).unwrap();
    paths.create_dirs().unwrap();
    let cli = pallaidium::cli::Cli::try_parse_from(["pallaidium", "--device", "cpu", "--offline"])
        .unwrap();
    let registry = Registry::shipped().unwrap();
    let link = runner_link(&cli, &paths, &Default::default(), &registry).unwrap();
    (paths, link)
}
