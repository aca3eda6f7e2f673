//! A video job end to end in tmux: the tiny Wan fixture as a folder model (`--kind txt2vid`),
//! its frames typed into the form's frames field, Ctrl-G: the queue shows the clip's length,
//! the MP4 is written, and the preview (halfblocks) holds its middle frame with the counter.
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::tmux;
use tmux::{Tmux, files_with_ext, fixture, quit, start_tui, wait_for_tui};

#[test]
fn a_wan_clip_is_queued_with_its_length_and_previewed() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(160, 48);
    start_tui(
        &tmux,
        home.path(),
        "halfblocks",
        &format!(
            "--model {} --kind txt2vid --dtype f32 --steps 2 --width 96 --height 64 --fps 8 \
             --seed 7 --prompt 'a red fox runs through the snowy forest'",
            fixture("wan-t2v-tiny").display()
        ),
    );
    wait_for_tui(&tmux);
    tmux.wait_for("the video fields", Duration::from_secs(30), |s| {
        s.contains("frames") && s.contains("fps")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt field left", Duration::from_secs(10), |s| {
        s.contains("Enter/i edits")
    });
    // Parameters: model, steps, guidance, seed, size, frames.
    tmux.keys(&["Tab", "Down", "Down", "Down", "Down", "Down", "Enter"]);
    tmux.keys(&["-l", "5"]);
    tmux.keys(&["Enter"]);
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("the clip in the queue", Duration::from_secs(30), |s| {
        s.contains("5f 0.6s @8fps") || s.contains("not queued") || s.contains("frames:")
    });
    assert!(screen.contains("5f 0.6s @8fps"), "{screen}");
    let screen = tmux.wait_for("the job to finish", Duration::from_secs(300), |s| {
        s.contains("job 1 done") || s.contains("failed")
    });
    assert!(screen.contains("job 1 done"), "the job failed:\n{screen}");
    let screen = tmux.wait_for(
        "the preview's frame counter",
        Duration::from_secs(60),
        |s| s.contains("frame 3/5 · 5f 0.6s @8fps") || s.contains("cannot play"),
    );
    assert!(screen.contains("frame 3/5"), "{screen}");
    assert!(screen.contains('▀') || screen.contains('▄'), "{screen}");
    let clips = files_with_ext(&home.path().join("out"), "mp4");
    assert_eq!(clips.len(), 1, "{clips:?}");
    quit(&tmux);
}
