//! A `--jobs` file of thousands of jobs: every job's events reach stdout, in order, each once
//! (a bounded broadcast once dropped all but ~4,000 `queued` events and some `done` events).
//! Job 1 is a real job on the tiny fixture; the others use a copy of the fixture that is removed
//! while job 1 runs, so they fail fast at load: real jobs, real events, a few seconds in all.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::run;
use run::{Run, fixture, watchdog};

/// More than the old 4096-event channel held: there, the first ~900 `queued` events and job 1's
/// `done` went missing. (Queueing costs ~8 ms a job in a debug build, so not 10,000.)
const JOBS: i64 = 5_000;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn job_line(model: &Path, seed: i64, steps: u32) -> String {
    serde_json::json!({
        "model": model, "prompt": format!("job {seed}"), "seed": seed,
        "width": 64, "height": 64, "steps": steps,
    })
    .to_string()
}

#[test]
fn every_job_of_a_huge_batch_gets_every_event_in_order_once() {
    let run = Run::new();
    let doomed = run.dir.path().join("model-copy");
    copy_dir(&fixture("sd1-tiny"), &doomed);
    let mut text = job_line(&fixture("sd1-tiny"), 1, 40);
    for seed in 2..=JOBS {
        text.push('\n');
        text.push_str(&job_line(&doomed, seed, 1));
    }
    let file = run.dir.path().join("jobs.jsonl");
    std::fs::write(&file, text).unwrap();

    let mut child = run
        .std_command()
        .arg("--jobs")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = watchdog(&child, Duration::from_secs(600));
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut per_job: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for line in reader.lines() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let name = event["event"].as_str().unwrap().to_owned();
        if name == "progress" && doomed.exists() {
            // Job 1 runs: the others' model goes away, so they fail at once when their turn comes.
            std::fs::remove_dir_all(&doomed).unwrap();
        }
        per_job
            .entry(event["job"].as_i64().unwrap())
            .or_default()
            .push(name);
    }
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "killed: the run hung ({status})");

    assert_eq!(per_job.len() as i64, JOBS, "every job has events");
    assert_eq!(per_job.keys().next(), Some(&1));
    for (job, names) in &per_job {
        let terminal: Vec<&String> = names
            .iter()
            .filter(|n| matches!(n.as_str(), "done" | "failed" | "cancelled"))
            .collect();
        assert_eq!(
            names.first().map(String::as_str),
            Some("queued"),
            "job {job}: {names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| *n == "queued").count(),
            1,
            "job {job}: {names:?}"
        );
        assert_eq!(terminal.len(), 1, "job {job}: one end: {names:?}");
        assert_eq!(
            names.last(),
            terminal.first().copied(),
            "job {job}: ends last: {names:?}"
        );
    }
    assert_eq!(per_job[&1].last().map(String::as_str), Some("done"));
}
