//! The dashboard: insta snapshots of its panes and tmux sessions driving the real binary.
//! One test binary for the group: each binary links candle, so fewer binaries keep CI's disk and link
//! time small. Each module is one former tests/*.rs file; helpers live in tests/support/,
//! declared once here and imported by the modules that use them.

// Test code and its helpers unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/run.rs"]
mod run;
#[path = "../support/runner.rs"]
mod runner;
#[path = "../support/serve.rs"]
mod serve;
#[path = "../support/silent_hub.rs"]
mod silent_hub;
#[path = "../support/tmux.rs"]
mod tmux;
#[path = "../support/tui.rs"]
mod tui;

mod tui_snapshots;
mod tui_snapshots_frames;
mod tui_snapshots_hosts;
mod tui_snapshots_media;
mod tui_snapshots_toolkit;
mod tui_snapshots_video;
mod tui_tmux;
mod tui_tmux_keys;
mod tui_tmux_remote;
mod tui_tmux_toolkit;
mod tui_tmux_video;
