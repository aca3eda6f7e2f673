//! Black-box: `--help` grouped under headings with a description and default for every flag
//! (snapshot), subcommands showing only the flags they take, and bad values for numeric flags and
//! --log-level refused with exit 2 and a message saying what the flag takes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::str::contains;

fn pallaidium() -> Command {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    // A home of its own per command (left for the OS to clean): runs may go in parallel.
    let home = tempfile::tempdir().unwrap().keep();
    cmd.env("PALLAIDIUM_HOME", &home)
        .env("HF_HOME", home.join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .env("COLUMNS", "100")
        .env_remove("PALLAIDIUM_LOG")
        .env_remove("PALLAIDIUM_PREVIEW_PROTOCOL");
    cmd
}

fn help(args: &[&str]) -> String {
    let out = pallaidium().args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_level_help_is_grouped_and_every_flag_has_a_description_and_default() {
    let text = help(&[]);
    for heading in [
        "Job:",
        "Image:",
        "Audio and text:",
        "Memory:",
        "Batch:",
        "Global:",
        "Output:",
    ] {
        assert!(text.contains(heading), "no {heading}\n{text}");
    }
    // Each flag line (`  --name ...`) is followed by a description with a default.
    let flags: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("--") && !l.contains("--help") && !l.contains("--version")
        })
        .collect();
    assert!(flags.len() > 40, "{}", flags.len());
    let blocks: Vec<String> = text
        .split("\n      --")
        .skip(1)
        .map(|b| b.split("\n\n").next().unwrap_or_default().to_owned())
        .collect();
    for block in &blocks {
        let name = block.split_whitespace().next().unwrap_or_default();
        if name == "help" || name == "version" {
            continue;
        }
        assert!(
            block.contains("default"),
            "--{name} has no default:\n{block}"
        );
    }
    assert!(text.contains(pallaidium::jobs::spec::media::DEFAULT_ENHANCER));
    insta::assert_snapshot!("top_level_help", text);
}

#[test]
fn subcommands_show_only_the_flags_they_take() {
    let info = help(&["info"]);
    for absent in [
        "--device",
        "--theme",
        "--offline",
        "--prompt",
        "--memory-budget",
    ] {
        assert!(!info.contains(absent), "info shows {absent}\n{info}");
    }
    assert!(
        info.contains("--log-level") && info.contains("--json"),
        "{info}"
    );
    let doctor = help(&["doctor"]);
    assert!(doctor.contains("--device") && doctor.contains("--memory-budget"));
    for absent in ["--theme", "--offline", "--prompt", "--preview-protocol"] {
        assert!(!doctor.contains(absent), "doctor shows {absent}\n{doctor}");
    }
    let fetch = help(&["fetch"]);
    assert!(fetch.contains("--offline") && fetch.contains("--dtype"));
    assert!(!fetch.contains("--theme") && !fetch.contains("--memory-budget"));
    // A flag given before the subcommand still counts.
    pallaidium()
        .args(["--offline", "fetch", "no-such-model"])
        .assert()
        .code(2)
        .stderr(contains("unknown model"));
    pallaidium()
        .args(["info", "x.png", "--theme", "dark"])
        .assert()
        .code(2)
        .stderr(contains("--theme"));
}

#[test]
fn negative_and_bad_numbers_reach_the_value_parser() {
    pallaidium()
        .args(["--headless", "--prompt", "fox", "--height", "-1"])
        .assert()
        .code(2)
        .stderr(contains("--height"))
        .stderr(contains("must be a multiple of 8 between 64 and 4096"));
    pallaidium()
        .args(["--headless", "--prompt", "fox", "--seed", "-5"])
        .assert()
        .code(2)
        .stderr(contains("--seed"))
        .stderr(contains("from 0"));
    pallaidium()
        .args(["--headless", "--prompt", "fox", "--steps", "-3"])
        .assert()
        .code(2)
        .stderr(contains("at least 1"));
}

#[test]
fn a_log_level_that_names_no_level_is_refused() {
    pallaidium()
        .args(["--log-level", "garbage", "--headless", "--history"])
        .assert()
        .code(2)
        .stderr(contains("names no log level"));
    pallaidium()
        .args(["models", "--log-level", "pallaidium=loud"])
        .assert()
        .code(2);
    pallaidium()
        .env("PALLAIDIUM_LOG", "garbage")
        .args(["--headless", "--history"])
        .assert()
        .code(2)
        .stderr(contains("PALLAIDIUM_LOG"));
    pallaidium()
        .args([
            "--log-level",
            "pallaidium=debug,warn",
            "--headless",
            "--history",
        ])
        .assert()
        .success();
}
