//! Black-box: stored text reaches the terminal with control characters escaped (a prompt holding
//! an OSC title sequence and BEL, through `info`, errors and JSON), and a headless run's stderr
//! says a long prompt was cut once per job, with the count, and nothing about keep-awake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::run;

use run::{Run, fixture};

const HOSTILE: &str = "a fox \u{1b}]0;pwned\u{7}\u{1b}[41m in snow";

fn tiny_job(run: &Run, prompt: &str) -> std::process::Output {
    run.command()
        .env_remove("PALLAIDIUM_LOG")
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args([
            "--prompt", prompt, "--steps", "1", "--width", "64", "--height", "64",
        ])
        .args(["--seed", "3", "--guidance", "2"])
        .output()
        .unwrap()
}

fn no_controls(bytes: &[u8]) -> bool {
    !bytes.iter().any(|&b| b == 0x1b || b == 0x07)
}

#[test]
fn info_prints_a_hostile_prompt_escaped_and_json_keeps_it_exact() {
    let run = Run::new();
    let out = tiny_job(&run, HOSTILE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // JSON lines: valid JSON, the control characters escaped by serde.
    assert!(no_controls(&out.stdout));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let png = run
        .files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();

    let info = run.command().arg("info").arg(&png).output().unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(
        no_controls(&info.stdout),
        "{:?}",
        String::from_utf8_lossy(&info.stdout)
    );
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("a fox \\x1b]0;pwned\\x07\\x1b[41m in snow"),
        "{text}"
    );

    let json = run
        .command()
        .args(["info", "--json"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(no_controls(&json.stdout));
    let spec: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(spec["prompt"], HOSTILE);
}

#[test]
fn an_error_quoting_user_text_is_escaped() {
    let run = Run::new();
    let out = run
        .command()
        .args([
            "--model",
            "no-such-model-\u{1b}]0;pwned\u{7}",
            "--prompt",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        no_controls(&out.stderr),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\\x1b]0;pwned\\x07"));
}

#[test]
fn a_long_prompt_is_reported_cut_once_with_the_count_and_keep_awake_stays_quiet() {
    let run = Run::new();
    let long = vec!["red"; 100].join(" ");
    let out = tiny_job(&run, &long);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let cut: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("tokens were dropped"))
        .collect();
    assert_eq!(cut.len(), 1, "{err}");
    // 100 one-token words, 75 fit between the start and end tokens.
    assert!(cut[0].contains("its last 25 tokens were dropped"), "{err}");
    assert!(!err.contains("keep-awake"), "{err}");
}
