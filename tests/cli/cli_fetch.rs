//! Black-box: `pallaidium fetch` offline and gated errors, and `--plan` with --memory-budget.
//! (Needs main.rs to route `fetch` to commands::fetch::run and `--plan` to commands::plan::run.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::str::contains;

fn pallaidium(home: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home.join("pal"))
        .env("HF_HOME", home.join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    cmd
}

#[test]
fn fetch_offline_with_an_empty_cache_is_exit_2_naming_repo_file_and_command() {
    let tmp = tempfile::tempdir().unwrap();
    pallaidium(tmp.path())
        .args(["fetch", "sd15", "--dtype", "f16"])
        .env("HF_HUB_OFFLINE", "1")
        .assert()
        .code(2)
        .stderr(contains("stable-diffusion-v1-5/stable-diffusion-v1-5"))
        .stderr(contains("pallaidium fetch sd15"))
        .stderr(contains("model_index.json"));
    pallaidium(tmp.path())
        .args(["--offline", "fetch", "sd15", "--dtype", "f32"])
        .assert()
        .code(2)
        .stderr(contains("offline"));
}

#[test]
fn fetch_unknown_model_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    pallaidium(tmp.path())
        .args(["--offline", "fetch", "no-such-model"])
        .assert()
        .code(2)
        .stderr(contains("unknown model"));
}

#[test]
fn plan_json_picks_staged_when_only_staged_fits_and_refuses_tiny_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sd1-tiny");
    let peak = |residency: &str| -> u64 {
        let out = pallaidium(tmp.path())
            .args([
                "--headless",
                "--device",
                "cpu",
                "--model",
                fixture,
                "--plan",
                "--json",
                "--residency",
                residency,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in ["peak_bytes", "budget_bytes", "fits", "steps"] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        v["peak_bytes"].as_u64().unwrap()
    };
    let staged = peak("staged");
    assert!(staged < peak("resident"));
    let out = pallaidium(tmp.path())
        .args([
            "--headless",
            "--device",
            "cpu",
            "--model",
            fixture,
            "--plan",
            "--json",
        ])
        .args(["--memory-budget", &staged.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["residency"], "staged");
    assert_eq!(v["fits"], true);
    pallaidium(tmp.path())
        .args([
            "--headless",
            "--device",
            "cpu",
            "--model",
            fixture,
            "--plan",
            "--json",
            "--memory-budget",
            "1MiB",
        ])
        .assert()
        .code(2)
        .stderr(contains("not enough memory"))
        .stderr(contains("1.0 MiB is available"));
}
