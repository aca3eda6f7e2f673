//! Black-box: a hub that accepts the connection and never answers (a listener on loopback that
//! reads nothing and writes nothing). The read timeout ends the fetch with a message naming the
//! endpoint and the timeout (exit 1: the input was fine, the network was not, nothing was
//! queued), and SIGTERM / SIGINT end a pending download at once with exit 130, leaving nothing in
//! the cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::silent_hub;

use silent_hub::SilentHub;

/// A headless job on a registry model that is not in the (empty) cache: it is fetched first.
const HEADLESS_SD15: [&str; 7] = [
    "--headless",
    "--device",
    "cpu",
    "--model",
    "sd15",
    "--prompt",
    "fox",
];
const FETCH_SD15: [&str; 4] = ["fetch", "sd15", "--dtype", "f16"];

fn command(home: &Path, hub: &SilentHub) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pallaidium"));
    for var in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "PALLAIDIUM_LOG",
        "PALLAIDIUM_CONNECT_TIMEOUT",
        "PALLAIDIUM_READ_TIMEOUT",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home.join("hf"))
        .env("PALLAIDIUM_HOME", home.join("pal"))
        .env("HF_ENDPOINT", hub.endpoint())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the child with a bound far below the read timeout in force, so only a cancel (or
/// the short timeout under test) can end it in time; a hang fails the test instead of blocking it.
fn wait_bounded(mut child: Child, bound: Duration) -> std::process::Output {
    let deadline = Instant::now() + bound;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {bound:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cache_files(home: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![home.join("hf")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_silent_hub_ends_in_a_read_timeout_naming_endpoint_and_setting() {
    let hub = SilentHub::start();
    let home = tempfile::tempdir().unwrap();
    for args in [&FETCH_SD15[..], &HEADLESS_SD15[..]] {
        let child = command(home.path(), &hub)
            .env("PALLAIDIUM_READ_TIMEOUT", "1")
            .args(args)
            .spawn()
            .unwrap();
        let out = wait_bounded(child, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("got no answer from {} within 1 s", hub.endpoint()))
                && err.contains("PALLAIDIUM_READ_TIMEOUT"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(cache_files(home.path()), Vec::<String>::new());
}

#[test]
fn a_bad_timeout_setting_is_bad_input() {
    let hub = SilentHub::start();
    let home = tempfile::tempdir().unwrap();
    let out = command(home.path(), &hub)
        .env("PALLAIDIUM_CONNECT_TIMEOUT", "-3")
        .args(FETCH_SD15)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PALLAIDIUM_CONNECT_TIMEOUT"), "{err}");
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Starts `args` against a silent hub, sends `sig` once the request is pending, and returns what
/// the run printed; the cache must be left empty.
fn signalled(args: &[&str], sig: i32) -> std::process::Output {
    let hub = SilentHub::start();
    let home = tempfile::tempdir().unwrap();
    let child = command(home.path(), &hub)
        // Far longer than the bound below: only the cancel can end the run in time.
        .env("PALLAIDIUM_READ_TIMEOUT", "600")
        .args(args)
        .spawn()
        .unwrap();
    hub.wait_for_connection();
    signal(&child, sig);
    let out = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(cache_files(home.path()), Vec::<String>::new());
    out
}

#[test]
fn sigterm_during_a_pending_headless_download_exits_130_leaving_no_file() {
    let out = signalled(&HEADLESS_SD15, libc::SIGTERM);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
}

#[test]
fn ctrl_c_during_a_pending_fetch_exits_130() {
    let out = signalled(&FETCH_SD15, libc::SIGINT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
}
