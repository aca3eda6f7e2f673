//! Failures inside a running batch end cleanly, through the binary: a panic while loading or
//! planning fails only its job (the engine cache is dropped, the batch goes on, exit 1, no hang),
//! and an output that cannot be written puts the job back for --resume and stops the batch.
//! Tiny SD1 fixture on the CPU; the panics come from the test-only PALLAIDIUM_TEST_FAULT hook.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::run;
use run::{Run, fixture, jobs_toml, json_lines, watchdog};

/// A tiny 64x64 job on the fixture with `seed`.
fn tiny_job(seed: u64) -> Vec<(&'static str, String)> {
    vec![
        (
            "model",
            format!("{:?}", fixture("sd1-tiny").to_str().unwrap()),
        ),
        ("prompt", format!("\"job {seed}\"")),
        ("seed", seed.to_string()),
        ("width", "64".into()),
        ("height", "64".into()),
        ("steps", "2".into()),
    ]
}

/// Runs `--jobs` with these jobs (and `fault`), bounded; returns (exit code, events, stderr).
fn run_batch(run: &Run, seeds: &[u64], fault: Option<&str>) -> (Option<i32>, Vec<Value>, String) {
    let jobs: Vec<_> = seeds.iter().map(|&s| tiny_job(s)).collect();
    let file = run.dir.path().join("jobs.toml");
    std::fs::write(&file, jobs_toml(&jobs)).unwrap();
    let mut cmd = run.std_command();
    if let Some(fault) = fault {
        cmd.env("PALLAIDIUM_TEST_FAULT", fault);
    }
    let child = cmd
        .arg("--jobs")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = watchdog(&child, Duration::from_secs(300));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), json_lines(&out.stdout), stderr)
}

fn of_job(events: &[Value], job: i64) -> Vec<&Value> {
    events.iter().filter(|e| e["job"] == job).collect()
}

fn names(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

fn loads_model(events: &[&Value]) -> bool {
    events
        .iter()
        .any(|e| e["event"] == "loading" && e["stage"] == "model")
}

#[test]
fn a_panic_at_load_or_plan_fails_only_its_job_and_the_batch_goes_on() {
    let run = Run::new();
    // Fresh home: the jobs are 1..=4. Job 2 loads the engine; job 3 panics before using it, so
    // the cache is dropped and job 4 loads it again.
    let (code, events, stderr) =
        run_batch(&run, &[1, 2, 3, 4], Some("panic-at-load:1,panic-at-plan:3"));
    assert_eq!(code, Some(1), "a job failed: exit 1; stderr: {stderr}");
    for (job, fault) in [(1, "panic-at-load:1"), (3, "panic-at-plan:3")] {
        let mine = of_job(&events, job);
        let last = mine.last().unwrap();
        assert_eq!(last["event"], "failed", "job {job}: {:?}", names(&mine));
        let error = last["error"].as_str().unwrap();
        assert!(
            error.contains("panicked") && error.contains(fault),
            "job {job}: the panic's text: {error}"
        );
    }
    for job in [2, 4] {
        let mine = of_job(&events, job);
        assert_eq!(
            mine.last().unwrap()["event"],
            "done",
            "job {job}: {:?}",
            names(&mine)
        );
        assert!(
            loads_model(&mine),
            "job {job} loads the engine: {:?}",
            names(&mine)
        );
    }
    let history = run.history();
    let states: Vec<(i64, &str)> = history
        .iter()
        .map(|j| (j["job"].as_i64().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [(4, "done"), (3, "failed"), (2, "done"), (1, "failed")]
    );
    assert_eq!(run.files().len(), 2, "{:?}", run.files());
}

#[test]
fn an_output_that_cannot_be_written_puts_the_job_back_and_stops_the_batch() {
    let run = Run::new();
    std::fs::create_dir_all(&run.out).unwrap();
    // Outputs go to <out>/<date>/: a regular file there cannot become that folder, even for
    // root (whom a read-only mode would not stop). Tomorrow too, in case the date turns.
    let today = chrono::Local::now();
    let days: Vec<String> = [today, today + chrono::Duration::days(1)]
        .iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();
    for day in &days {
        std::fs::write(run.out.join(day), "not a folder").unwrap();
    }
    let (code, events, stderr) = run_batch(&run, &[1, 2, 3], None);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    let first = of_job(&events, 1);
    let last = first.last().unwrap();
    assert_eq!(last["event"], "failed", "{:?}", names(&first));
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains("cannot write the output") && error.contains("--resume"),
        "the message names the fix: {error}"
    );
    for job in [2, 3] {
        assert_eq!(
            names(&of_job(&events, job)),
            ["queued"],
            "job {job} never started: the batch stopped"
        );
    }
    assert!(stderr.contains("2 job(s) stay queued"), "{stderr}");
    let history = run.history();
    let state = |job: i64| {
        history
            .iter()
            .find(|j| j["job"] == job)
            .map(|j| j["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(
        [state(1), state(2), state(3)],
        ["interrupted", "queued", "queued"]
    );
    let stored_error = history.iter().find(|j| j["job"] == 1).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stored_error.contains("cannot write the output"),
        "{stored_error}"
    );
    // Fixed, the same jobs finish with --resume: each output exactly once.
    for day in &days {
        std::fs::remove_file(run.out.join(day)).unwrap();
    }
    let out = run.command().arg("--resume").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Vec<i64> = json_lines(&out.stdout)
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| e["job"].as_i64().unwrap())
        .collect();
    assert_eq!(done, [1, 2, 3]);
    assert_eq!(run.files().len(), 3, "{:?}", run.files());
}
