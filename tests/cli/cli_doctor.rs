//! Black-box tests of `pallaidium doctor` on this machine (no GPU features in CI builds).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::Value;

fn doctor(home: &std::path::Path, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap_or_else(|e| panic!("binary: {e}"));
    cmd.env("PALLAIDIUM_HOME", home)
        .env("HF_HUB_CACHE", home.join("hf"))
        .env_remove("PALLAIDIUM_LOG")
        .arg("doctor")
        .args(args);
    cmd.assert()
}

fn meminfo_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn json_names_the_cpu_and_the_real_ram() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = doctor(home.path(), &["--json", "--device", "cpu"])
        .get_output()
        .clone();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));

    for key in [
        "os",
        "arch",
        "chip",
        "macos_version",
        "ssh",
        "tmux",
        "backends",
        "devices",
        "selected_device",
        "dtype",
        "memory",
        "paths",
        "hf_token_set",
        "registry",
        "problems",
    ] {
        assert!(json.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(json["os"], std::env::consts::OS);
    assert_eq!(json["selected_device"]["kind"], "cpu");
    assert_eq!(json["dtype"], "f32");
    assert!(
        json["backends"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from("cpu")))
    );
    let cpu = json["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["kind"] == "cpu"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(cpu["name"].as_str().is_some_and(|n| !n.is_empty()), "{cpu}");
    assert!(cpu["memory_total"].as_u64().is_some_and(|t| t > 0), "{cpu}");
    assert!(cpu["memory_free"].as_u64().is_some(), "{cpu}");

    if let Some(expected) = meminfo_total_bytes() {
        assert_eq!(json["memory"]["ram_total"].as_u64(), Some(expected));
    }
    let home_row = &json["paths"]["home"];
    assert_eq!(home_row["path"].as_str(), home.path().to_str());
    assert_eq!(home_row["writable"], true);
    assert!(home_row["free_bytes"].as_u64().is_some_and(|f| f > 0));
    assert!(
        json["problems"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["fix"].is_string()))
    );
    assert!(json["hf_token_set"].is_boolean());
}

#[test]
fn human_report_lists_devices_and_paths() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = doctor(home.path(), &["--device", "cpu"])
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("selected   cpu:0"), "{text}");
    assert!(text.contains(&home.path().display().to_string()), "{text}");
}

#[test]
fn unwritable_home_blocks_generation() {
    // /proc is read-only even for root, so this holds whoever runs the tests. Every run would
    // fail the same way until the home is changed: exit 2.
    let out = doctor(
        std::path::Path::new("/proc/pallaidium"),
        &["--json", "--device", "cpu"],
    )
    .code(2)
    .get_output()
    .clone();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        json["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["severity"] == "error"
                && p["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains("PALLAIDIUM_HOME"))))
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_bad_input() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = doctor(home.path(), &["--device", "cuda"])
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features cuda"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_device_text_names_the_forms() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = doctor(home.path(), &["--device", "gpu0"])
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cuda:N") && err.contains("metal:N"), "{err}");
}

/// A headless run on the tiny fixture in `home`, or `--history` there.
fn run(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sd1-tiny");
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home)
        .env("HF_HOME", home.join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("PALLAIDIUM_LOG")
        .args(["--headless", "--device", "cpu"]);
    if args.is_empty() {
        cmd.args(["--model", fixture, "--prompt", "fox", "--steps", "1"])
            .args(["--width", "64", "--height", "64"]);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn a_damaged_queue_database_is_exit_2_naming_the_file_to_move_aside() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("queue.sqlite3");
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    let out = doctor(home.path(), &["--device", "cpu"])
        .code(2)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("damaged") && text.contains(&format!("mv {}", db.display())),
        "{text}"
    );
    let json = doctor(home.path(), &["--json", "--device", "cpu"])
        .code(2)
        .get_output()
        .clone();
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["queue_db"]["status"], "unusable");

    // Every run that opens the queue says the same, exit 2, and writes nothing.
    for args in [&[][..], &["--history"][..]] {
        let out = run(home.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("is damaged") && err.contains("move it aside"),
            "{args:?}: {err}"
        );
    }
    assert!(!home.path().join("outputs").exists());
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x42u8; 8192]);

    // The fix named works: moved aside, a new queue is created and the run succeeds.
    std::fs::rename(&db, home.path().join("queue.sqlite3.broken")).unwrap();
    let out = run(home.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    doctor(home.path(), &["--device", "cpu"]).code(predicates::ord::lt(2));
}

#[test]
fn a_home_under_a_regular_file_is_exit_2_for_doctor_and_runs() {
    // Tests run as root, for whom permission bits do not stop writes: a path below a file does.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let home = file.join("home");
    let out = doctor(&home, &["--json", "--device", "cpu"])
        .code(2)
        .get_output()
        .clone();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["paths"]["home"]["writable"], false);
    for args in [&[][..], &["--history"][..]] {
        let out = run(&home, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("PALLAIDIUM_HOME"), "{args:?}: {err}");
    }
}
