//! Black-box tests of `pallaidium --headless` one-shot runs: the JSON-lines contract, output
//! naming and metadata, --batch, --from-image, img2img, and exit codes. Tiny SD1 fixture, CPU.

// Test helpers (not #[test] functions) unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::run;
use run::{Run, fixture};

/// The tiny SD1 fixture at 64x64, 2 steps.
fn tiny(run: &Run) -> Command {
    let mut cmd = run.command();
    cmd.arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--width", "64", "--height", "64", "--steps", "2"]);
    cmd
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect()
}

fn ok(cmd: &mut Command) -> Vec<Value> {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

fn info_json(path: &Path) -> Value {
    let out = Command::cargo_bin("pallaidium")
        .unwrap()
        .args(["info", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_one_shot_run_follows_the_event_contract() {
    let run = Run::new();
    let events = ok(tiny(&run).args(["--prompt", "a cat, in snow!", "--seed", "7"]));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"queued"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    assert!(
        events.iter().all(|e| e["job"].is_i64()),
        "every event names its job"
    );
    let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert_eq!(progress.len(), 2, "one progress event a step: {names:?}");
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["step"], i + 1);
        assert_eq!(p["steps"], 2);
        assert!(p["elapsed_s"].is_f64() && p["eta_s"].is_f64(), "{p}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "loading" && e["stage"] == "model")
    );
    let done = events.last().unwrap();
    let outputs = done["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let path = PathBuf::from(outputs[0].as_str().unwrap());
    assert_eq!(run.files(), vec![path.clone()]);
    // <out>/<YYYY-MM-DD>/<seed>_<slug>.png
    assert_eq!(path.file_name().unwrap(), "7_a-cat-in-snow.png");
    let day = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        day.len() == 10 && day.as_bytes()[4] == b'-' && day.as_bytes()[7] == b'-',
        "{day}"
    );
    assert_eq!(path.parent().unwrap().parent().unwrap(), run.out);
    assert!(
        done["timings"].is_object() && done["peak_bytes"].is_u64(),
        "{done}"
    );
    let spec = info_json(&path);
    assert_eq!(spec["seed"], 7);
    assert_eq!(spec["params"]["image"]["steps"], 2);
    assert_eq!(spec["prompt"], "a cat, in snow!");
    assert_eq!(
        spec["params"]["image"]["scheduler"]
            .as_str()
            .map(str::is_empty),
        Some(false),
        "resolved values are stored"
    );
    let image = image::open(&path).unwrap();
    assert_eq!((image.width(), image.height()), (64, 64));
}

#[test]
fn batch_seeds_count_up_and_a_random_seed_is_recorded() {
    let run = Run::new();
    ok(tiny(&run).args(["--prompt", "dots", "--seed", "100", "--batch", "2"]));
    let seeds: Vec<u64> = run
        .files()
        .iter()
        .map(|p| info_json(p)["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [100, 101]);

    let run = Run::new();
    ok(tiny(&run).args(["--prompt", "no seed given"]));
    let file = run.files().pop().unwrap();
    let seed = info_json(&file)["seed"].as_u64().unwrap();
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{seed}_"))
    );
}

#[test]
fn from_image_reproduces_an_output_and_flags_override() {
    let run = Run::new();
    ok(tiny(&run).args(["--prompt", "a tower", "--seed", "3"]));
    let first = run.files().pop().unwrap();
    ok(run.command().arg("--from-image").arg(&first));
    let files = run.files();
    assert_eq!(files.len(), 2);
    let second = files.iter().find(|p| **p != first).unwrap();
    assert_eq!(
        second.file_name().unwrap(),
        "3_a-tower(1).png",
        "collision suffix"
    );
    let (a, b) = (
        image::open(&first).unwrap().to_rgb8(),
        image::open(second).unwrap().to_rgb8(),
    );
    assert_eq!(a, b, "same stored parameters, same image");
    ok(run
        .command()
        .arg("--from-image")
        .arg(&first)
        .args(["--seed", "4"]));
    assert!(
        run.files()
            .iter()
            .any(|p| p.file_name().unwrap() == "4_a-tower.png")
    );
}

/// `--max-sequence-length`: the encoder's own length changes nothing; a shorter one cuts the
/// prompt to its first N-2 tokens (two prompts that differ only after them give the same image)
/// and pads to N (a different image from the full-length default).
#[test]
fn max_sequence_length_cuts_the_prompt_for_the_text_encoder() {
    let image = |prompt: &str, length: Option<&str>| {
        let run = Run::new();
        let mut cmd = run.command();
        cmd.arg("--model").arg(fixture("sd1-tiny"));
        cmd.args(["--width", "72", "--height", "64", "--steps", "2"]);
        cmd.args(["--prompt", prompt, "--seed", "3"]);
        if let Some(n) = length {
            cmd.args(["--max-sequence-length", n]);
        }
        ok(&mut cmd);
        let path = run.files().into_iter().next().unwrap();
        let pixels = image::open(&path).unwrap().to_rgb8().into_raw();
        (pixels, info_json(&path))
    };
    let red = "red red red red dog";
    let (plain, _) = image(red, None);
    let (full, spec) = image(red, Some("77"));
    assert_eq!(plain, full, "the encoder's own length is the default");
    assert_eq!(spec["params"]["image"]["max_sequence_length"], 77);
    let (cut_dog, _) = image(red, Some("6"));
    let (cut_blue, _) = image("red red red red blue", Some("6"));
    assert_eq!(cut_dog, cut_blue, "only the first 4 tokens are read");
    assert_ne!(cut_dog, plain, "a shorter sequence conditions differently");
    let (full_blue, _) = image("red red red red blue", None);
    assert_ne!(full_blue, plain, "the last word matters at full length");
}

#[test]
fn img2img_runs_from_an_init_image() {
    let run = Run::new();
    let events = ok(tiny(&run)
        .args(["--prompt", "repaint", "--seed", "1", "--strength", "0.5"])
        .arg("--init-image")
        .arg(fixture("images/init.png")));
    assert!(events.iter().any(|e| e["event"] == "done"));
    let spec = info_json(&run.files()[0]);
    assert_eq!(spec["kind"], "img2img");
    assert_eq!(spec["params"]["image"]["strength"], 0.5);
}

#[test]
fn history_lists_jobs_as_json_lines() {
    let run = Run::new();
    let out = run.command().arg("--history").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    ok(tiny(&run).args(["--prompt", "one", "--seed", "1"]));
    let out = run.command().arg("--history").output().unwrap();
    let jobs = json_lines(&out.stdout);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "done");
    assert_eq!(jobs[0]["spec"]["prompt"], "one");
    assert_eq!(jobs[0]["outputs"].as_array().unwrap().len(), 1);
}

#[test]
fn nothing_to_do_is_bad_input() {
    let run = Run::new();
    let out = run.command().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to run"));
    assert!(run.files().is_empty());
}

/// README's main command as a new user runs it: `--out out`, a relative folder that does not exist
/// yet, made under the current folder.
#[test]
fn readme_main_command_writes_under_a_relative_out_folder_that_does_not_exist_yet() {
    let run = Run::new();
    let cwd = run.dir.path().join("clone");
    std::fs::create_dir(&cwd).unwrap();
    let out = Command::cargo_bin("pallaidium")
        .unwrap()
        .current_dir(&cwd)
        .env("PALLAIDIUM_HOME", &run.home)
        .env("HF_HOME", run.home.join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("PALLAIDIUM_LOG")
        .env_remove("PALLAIDIUM_TEST_FAULT")
        .args(["--headless", "--device", "cpu", "--model"])
        .arg(fixture("sd1-tiny"))
        .args([
            "--prompt",
            "a lighthouse at dusk",
            "--width",
            "64",
            "--height",
            "64",
        ])
        .args(["--steps", "2", "--seed", "42", "--out", "out"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pngs: Vec<PathBuf> = std::fs::read_dir(cwd.join("out"))
        .unwrap()
        .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(pngs.len(), 1, "{pngs:?}");
    assert!(pngs[0].ends_with("42_a-lighthouse-at-dusk.png"), "{pngs:?}");
}
