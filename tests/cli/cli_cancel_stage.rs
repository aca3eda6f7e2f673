//! SIGTERM during one long denoising step (the only one) is honoured inside the step: the job
//! ends `cancelled` on stdout, is kept for --resume (`interrupted`, never `done`), no image is
//! written, and the exit code is 130. With checks only between steps, the step would finish,
//! the VAE would decode and the job would be recorded done with its image. (Checks inside the
//! VAE decode are proven by the pipeline's unit tests: the tiny fixture's decode is too short to
//! signal into reliably.)

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run;
use run::{Run, fixture, watchdog};

/// The tiny fixture's one UNet step takes ~8 s at this size in a debug build (its attention
/// over 2,304 tokens); larger sizes take minutes.
const SIZE: &str = "384";

#[test]
fn sigterm_during_a_long_step_stops_it_with_nothing_written() {
    let run = Run::new();
    let mut child = run
        .std_command()
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args([
            "--prompt",
            "a very large image",
            "--seed",
            "1",
            "--steps",
            "1",
        ])
        .args(["--width", SIZE, "--height", SIZE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = watchdog(&child, Duration::from_secs(300));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = vec![];
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let denoising = event["event"] == "loading" && event["stage"] == "unet";
        seen.push(event);
        if denoising {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|e| e["stage"] == "unet"),
        "the run ended before the step: {seen:?}"
    );
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    let tail: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    eprintln!(
        "SIGTERM honoured after {:.2} s",
        sent.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(130), "tail: {tail:?}");
    let ends: Vec<&str> = tail
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|n| matches!(*n, "done" | "failed" | "cancelled"))
        .collect();
    assert_eq!(ends, ["cancelled"], "tail: {tail:?}");
    let history = run.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["state"], "interrupted", "{history:?}");
    assert_eq!(history[0]["outputs"], serde_json::json!([]));
    assert!(run.files().is_empty(), "nothing written: {:?}", run.files());
}
