//! Black-box tests of the job runner through the binary: job files, batches, the engine cache,
//! kill -9 + --resume, signals, and bad input refused before anything is queued or written.
//! They run the tiny SD1 fixture on the CPU.

// Test helpers (not #[test] functions) unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    out: PathBuf,
    work: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (home, out, work) = (
            dir.path().join("home"),
            dir.path().join("out"),
            dir.path().join("work"),
        );
        std::fs::create_dir_all(&work).unwrap();
        Self {
            _dir: dir,
            home,
            out,
            work,
        }
    }

    fn std_command(&self) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("pallaidium"));
        cmd.env("PALLAIDIUM_HOME", &self.home)
            .env("HF_HOME", self.home.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("PALLAIDIUM_LOG")
            .args(["--headless", "--json", "--device", "cpu", "--out"])
            .arg(&self.out);
        cmd
    }

    fn command(&self) -> Command {
        Command::from_std(self.std_command())
    }

    /// The shared flags of a tiny, fast job on the fixture model.
    fn tiny(&self) -> Vec<String> {
        let model = fixture("sd1-tiny");
        [
            "--model",
            model.to_str().unwrap(),
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
        ]
        .map(String::from)
        .to_vec()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.work.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every file under --out, sorted.
    fn files(&self) -> Vec<PathBuf> {
        let mut found = vec![];
        let mut stack = vec![self.out.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    found.push(entry.path());
                }
            }
        }
        found.sort();
        found
    }

    fn history(&self) -> Vec<Value> {
        let out = self.command().arg("--history").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out.stdout)
    }

    fn spawn(&self, args: &[String]) -> Child {
        self.std_command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn events<'a>(all: &'a [Value], name: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == name).collect()
}

/// Reads JSON events from a running child until `stop(event)` is true; returns those read.
fn read_until(
    child: &mut Child,
    stop: impl Fn(&Value) -> bool,
) -> (Vec<Value>, BufReader<std::process::ChildStdout>) {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = vec![];
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the run ended before the expected event; saw {seen:?}");
        }
        let event: Value = serde_json::from_str(line.trim()).unwrap();
        let done = stop(&event);
        seen.push(event);
        if done {
            return (seen, reader);
        }
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

fn partial_files(files: &[PathBuf]) -> Vec<&PathBuf> {
    files
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".pallaidium-partial")
        })
        .collect()
}

fn stored_seed(path: &Path) -> u64 {
    let out = Command::cargo_bin("pallaidium")
        .unwrap()
        .args(["info", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    spec["seed"].as_u64().unwrap()
}

fn jobs_toml(seeds: &[u64], steps: u32) -> String {
    let model = fixture("sd1-tiny");
    let mut text = String::new();
    for seed in seeds {
        text.push_str(&format!(
            "[[job]]\nmodel = {:?}\nprompt = \"job with seed {seed}\"\nseed = {seed}\nwidth = 64\nheight = 64\nsteps = {steps}\n\n",
            model.to_str().unwrap()
        ));
    }
    text
}

#[test]
fn a_job_file_of_several_jobs_gives_exactly_those_outputs() {
    let env = Env::new();
    let file = env.write("jobs.toml", &jobs_toml(&[11, 12, 13], 2));
    let out = env.command().arg("--jobs").arg(&file).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = lines(&out.stdout);
    let done = events(&all, "done");
    assert_eq!(done.len(), 3, "{all:?}");
    assert_eq!(events(&all, "queued").len(), 3);
    let mut from_events: Vec<PathBuf> = done
        .iter()
        .flat_map(|e| e["outputs"].as_array().unwrap().iter())
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    from_events.sort();
    assert_eq!(
        env.files(),
        from_events,
        "exactly the announced outputs, nothing else"
    );
    let mut seeds: Vec<u64> = from_events.iter().map(|p| stored_seed(p)).collect();
    seeds.sort();
    assert_eq!(seeds, [11, 12, 13]);
    for e in &done {
        assert!(e["timings"]["generate"].as_f64().unwrap() > 0.0, "{e}");
    }
    let history = env.history();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|j| j["state"] == "done"), "{history:?}");
}

#[test]
fn json_lines_job_files_work_too() {
    let env = Env::new();
    let model = fixture("sd1-tiny");
    let m = model.to_str().unwrap();
    let file = env.write(
        "jobs.jsonl",
        &format!(
            "{{\"model\": {m:?}, \"prompt\": \"a\", \"seed\": 1, \"width\": 64, \"height\": 64, \"steps\": 2}}\n\
             {{\"model\": {m:?}, \"prompt\": \"b\", \"seed\": 2, \"width\": 64, \"height\": 64, \"steps\": 2, \"batch\": 2}}\n"
        ),
    );
    let out = env.command().arg("--jobs").arg(&file).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&lines(&out.stdout), "done").len(), 2);
    assert_eq!(env.files().len(), 3, "one image, then a batch of two");
}

#[test]
fn the_engine_loads_once_for_a_batch_on_one_model() {
    let env = Env::new();
    let prompts = env.write(
        "prompts.txt",
        "# three prompts\na red cube\n\na blue sphere\na green cone\n",
    );
    let out = env
        .command()
        .args(env.tiny())
        .arg("--prompts")
        .arg(&prompts)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = lines(&out.stdout);
    assert_eq!(events(&all, "done").len(), 3);
    let model_loads: Vec<_> = events(&all, "loading")
        .into_iter()
        .filter(|e| e["stage"] == "model")
        .collect();
    assert_eq!(model_loads.len(), 1, "{all:?}");
    assert_eq!(env.files().len(), 3);
}

#[test]
fn a_run_killed_mid_batch_then_resumed_has_every_output_exactly_once() {
    let env = Env::new();
    let seeds = [21, 22, 23, 24, 25];
    let file = env.write("jobs.toml", &jobs_toml(&seeds, 10));
    let mut child = env.spawn(&["--jobs".into(), file.to_str().unwrap().into()]);
    // Kill while the second job is generating.
    let (_seen, _reader) = read_until(&mut child, |e| {
        e["event"] == "progress" && e["job"].as_i64() > Some(1)
    });
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let before = env.history();
    let unfinished = before.iter().filter(|j| j["state"] != "done").count();
    assert!(
        unfinished > 0,
        "the kill came too late to test anything: {before:?}"
    );

    let out = env.command().arg("--resume").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = env.files();
    assert!(partial_files(&files).is_empty(), "stray files: {files:?}");
    let mut stored: Vec<u64> = files.iter().map(|p| stored_seed(p)).collect();
    stored.sort();
    assert_eq!(stored, seeds, "each job's output exactly once: {files:?}");
    let after = env.history();
    assert_eq!(after.len(), seeds.len());
    assert!(after.iter().all(|j| j["state"] == "done"), "{after:?}");
    // A second resume finds nothing to do and writes nothing.
    let out = env.command().arg("--resume").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(env.files(), files);
}

#[test]
fn sigint_exits_130_leaves_no_partial_file_and_keeps_the_queue() {
    let env = Env::new();
    let file = env.write("jobs.toml", &jobs_toml(&[31, 32, 33], 20));
    let mut child = env.spawn(&["--jobs".into(), file.to_str().unwrap().into()]);
    let (_, mut reader) = read_until(&mut child, |e| e["event"] == "progress");
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let tail = lines(rest.as_bytes());
    assert_eq!(events(&tail, "cancelled").len(), 1, "{tail:?}");
    let files = env.files();
    assert!(partial_files(&files).is_empty(), "{files:?}");
    let history = env.history();
    let waiting = history
        .iter()
        .filter(|j| j["state"] == "queued" || j["state"] == "interrupted")
        .count();
    let done = history.iter().filter(|j| j["state"] == "done").count();
    assert_eq!(waiting + done, 3, "{history:?}");
    assert_eq!(files.len(), done, "only finished jobs have outputs");
    // And the rest can be finished later.
    let out = env.command().arg("--resume").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.files().len(), 3);
}

#[test]
fn sighup_does_not_stop_the_batch() {
    let env = Env::new();
    let file = env.write("jobs.toml", &jobs_toml(&[41, 42, 43], 4));
    let mut child = env.spawn(&["--jobs".into(), file.to_str().unwrap().into()]);
    let (mut seen, reader) = read_until(&mut child, |e| e["event"] == "progress");
    signal(&child, libc::SIGHUP);
    for line in reader.lines() {
        seen.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(events(&seen, "done").len(), 3);
    assert_eq!(env.files().len(), 3);
}

/// Runs with `args`, expects exit 2 and a message containing `needle`, and nothing written or queued.
fn refused(env: &Env, args: &[String], needle: &str) {
    let out = env.command().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(env.files().is_empty(), "{args:?} wrote {:?}", env.files());
    assert!(env.history().is_empty(), "{args:?} queued something");
}

#[test]
fn bad_input_exits_2_with_nothing_written_or_queued() {
    let env = Env::new();
    // The tiny job's flags with `extra` replacing any flag of the same name.
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![];
        for pair in env.tiny().chunks(2) {
            if !extra.contains(&pair[0].as_str()) {
                args.extend_from_slice(pair);
            }
        }
        args.extend(["--prompt".to_string(), "x".to_string()]);
        args.extend(extra.iter().map(|e| (*e).to_string()));
        args
    };
    refused(&env, &with(&["--width", "100"]), "multiple of 8");
    refused(&env, &with(&["--steps", "0"]), "--steps 0");
    refused(&env, &with(&["--strength", "1.5"]), "--strength 1.5");
    refused(&env, &with(&["--scheduler", "nope"]), "--scheduler nope");
    let missing = env.work.join("missing.png");
    refused(
        &env,
        &with(&["--init-image", missing.to_str().unwrap()]),
        "--init-image",
    );
    let not_image = env.write("not-an-image.png", "hello");
    refused(
        &env,
        &with(&["--init-image", not_image.to_str().unwrap()]),
        "--init-image",
    );
    refused(
        &env,
        &[
            "--model".into(),
            "no-such-model-anywhere".into(),
            "--prompt".into(),
            "x".into(),
        ],
        "no-such-model-anywhere",
    );
    // A malformed job file names the file and the line; the good job before it is not queued.
    let bad = env.write(
        "bad.toml",
        &format!("{}[[job]]\nprompt = \"x\"\nstepz = 3\n", jobs_toml(&[1], 2)),
    );
    refused(
        &env,
        &["--jobs".into(), bad.to_str().unwrap().into()],
        "bad.toml line",
    );
    let bad_jsonl = env.write("bad.jsonl", "{\"prompt\": \"a\"}\n{\"steps\": \"many\"}\n");
    refused(
        &env,
        &["--jobs".into(), bad_jsonl.to_str().unwrap().into()],
        "bad.jsonl line 2",
    );
    // One bad job refuses the whole file: nothing of it runs.
    let mixed = env.write(
        "mixed.toml",
        &jobs_toml(&[1, 2], 2)
            .replacen("steps = 2", "steps = 0", 2)
            .replacen("steps = 0", "steps = 2", 1),
    );
    refused(
        &env,
        &["--jobs".into(), mixed.to_str().unwrap().into()],
        "--steps 0",
    );
}

#[test]
fn info_prints_what_an_output_stores() {
    let env = Env::new();
    let out = env
        .command()
        .args(env.tiny())
        .args([
            "--prompt",
            "a lighthouse",
            "--negative",
            "fog",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = env.files().pop().unwrap();
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("5_a-lighthouse"),
        "{file:?}"
    );
    let info = Command::cargo_bin("pallaidium")
        .unwrap()
        .arg("info")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(info.status.code(), Some(0));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("a lighthouse\nNegative prompt: fog\nSteps: 2,"),
        "{text}"
    );
    assert!(text.contains("Seed: 5, Size: 64x64"), "{text}");
    let not_png = env.write("x.txt", "text");
    let info = Command::cargo_bin("pallaidium")
        .unwrap()
        .arg("info")
        .arg(&not_png)
        .output()
        .unwrap();
    assert_eq!(info.status.code(), Some(2));
}

#[test]
fn the_committed_sample_job_files_run() {
    let env = Env::new();
    let out = env
        .command()
        .arg("--jobs")
        .arg(fixture("jobs/three.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&lines(&out.stdout), "done").len(), 3);
    let out = env
        .command()
        .arg("--jobs")
        .arg(fixture("jobs/two.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.files().len(), 6, "3 + 1 + a batch of 2");
    let env = Env::new();
    refused(
        &env,
        &[
            "--jobs".into(),
            fixture("jobs/malformed.toml").to_str().unwrap().into(),
        ],
        "malformed.toml line 7",
    );
}
