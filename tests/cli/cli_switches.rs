//! Black-box: a PALLAIDIUM_* measurement switch set for a headless run is recorded in the
//! output's JSON metadata (PNG chunk, or a text output's sidecar), and `info --json` shows it;
//! without one, the metadata has no `env_switches`; a malformed one is exit 2 naming it. Tiny
//! fixtures, CPU.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::run;
use run::{Run, fixture};

/// Runs to completion and returns the first output of the `done` event.
fn output_of(cmd: &mut Command) -> PathBuf {
    let out = cmd.arg("--json").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "done")
        .unwrap();
    PathBuf::from(done["outputs"][0].as_str().unwrap())
}

fn info_json(path: &Path) -> Value {
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
    serde_json::from_slice(&out.stdout).unwrap()
}

fn image(run: &Run) -> Command {
    let mut cmd = run.command();
    cmd.env_remove("PALLAIDIUM_STOCK_KERNELS")
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--prompt", "a red cat", "--width", "64", "--height", "64"])
        .args(["--steps", "2", "--seed", "3"]);
    cmd
}

#[test]
fn a_set_switch_is_in_the_png_metadata_and_info_shows_it() {
    let run = Run::new();
    let png = output_of(image(&run).env("PALLAIDIUM_STOCK_KERNELS", "1"));
    let info = info_json(&png);
    assert_eq!(
        info["env_switches"]["PALLAIDIUM_STOCK_KERNELS"], "1",
        "{info}"
    );
    assert_eq!(info["prompt"], "a red cat");
    // A setting (not a measurement switch) is not recorded.
    assert!(
        info["env_switches"].get("PALLAIDIUM_HOME").is_none(),
        "{info}"
    );

    let plain = Run::new();
    let png = output_of(&mut image(&plain));
    let info = info_json(&png);
    assert!(info.get("env_switches").is_none(), "{info}");
    assert_eq!(info["prompt"], "a red cat");
}

#[test]
fn a_set_switch_is_in_a_text_outputs_sidecar() {
    let run = Run::new();
    let txt = output_of(
        run.command()
            .env("PALLAIDIUM_COPY_WEIGHTS", "1")
            .args(["--kind", "enhance", "--enhancer"])
            .arg(fixture("qwen2-tiny-gguf"))
            .args(["--prompt", "a fox", "--max-tokens", "4", "--seed", "5"]),
    );
    let info = info_json(&txt);
    assert_eq!(
        info["env_switches"]["PALLAIDIUM_COPY_WEIGHTS"], "1",
        "{info}"
    );
}

#[test]
fn a_malformed_switch_is_bad_input_for_every_command() {
    for (name, value, args) in [
        ("PALLAIDIUM_STOCK_KERNELS", "yes", &["doctor"][..]),
        ("PALLAIDIUM_PROFILE", "2", &["models"][..]),
        ("PALLAIDIUM_PREVIEW_PROTOCOL", "png", &["--history"][..]),
    ] {
        let run = Run::new();
        let out = run.command().env(name, value).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {err}");
        assert!(err.contains(name) && err.contains("takes"), "{err}");
    }
}
