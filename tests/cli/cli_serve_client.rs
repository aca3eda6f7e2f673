//! Black-box tests of `pallaidium --headless --host URL`: jobs run on a `pallaidium serve`, the
//! client prints the same JSON lines, uploads its input files, downloads the outputs into --out,
//! and follows a job through a server restart (a dropped connection, resumed).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::run::{Run, fixture, json_lines, watchdog};
use crate::serve::{Server, png};

fn client(run: &Run, server: &Server) -> std::process::Command {
    let mut cmd = run.std_command();
    cmd.arg("--host")
        .arg(&server.base)
        .arg("--model")
        .arg(fixture("sd1-tiny"));
    cmd
}

#[test]
fn host_runs_jobs_on_the_server_and_downloads_their_outputs() {
    let server = Server::start_in(Run::new(), &[], &[], Some("client-secret"));
    let run = Run::new();
    let token = run.dir.path().join("token");
    std::fs::write(&token, "client-secret\n").unwrap();
    let init = run.dir.path().join("init.png");
    std::fs::write(&init, png(64)).unwrap();

    let out = client(&run, &server)
        .args([
            "--prompt",
            "a remote cat",
            "--seed",
            "9",
            "--width",
            "64",
            "--height",
            "64",
        ])
        .args(["--steps", "2", "--init-image"])
        .arg(&init)
        .args(["--strength", "0.5", "--token-file"])
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out.stdout);
    assert_eq!(events.first().unwrap()["event"], "queued");
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    let local = std::path::PathBuf::from(done["outputs"][0].as_str().unwrap());
    assert!(local.starts_with(&run.out), "{local:?} is in --out");
    let id = done["job"].as_i64().unwrap();
    let served = server.get(&format!("/api/v1/jobs/{id}/outputs/0"));
    assert_eq!(std::fs::read(&local).unwrap(), served.body);
    let record = server.get(&format!("/api/v1/jobs/{id}")).json();
    assert_eq!(
        record["spec"]["kind"], "img2img",
        "the init image was uploaded"
    );

    // A wrong token is the user's to fix: exit 2 with the server's word.
    std::fs::write(&token, "wrong\n").unwrap();
    let out = client(&run, &server)
        .args(["--prompt", "x", "--token-file"])
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bearer token"));
}

#[test]
fn host_follows_a_job_through_a_server_restart() {
    let server = Server::start(&[], &[]);
    let listen = server.base.trim_start_matches("http://").to_owned();
    let run = Run::new();
    let mut child = client(&run, &server)
        .args([
            "--prompt",
            "through a restart",
            "--width",
            "256",
            "--height",
            "256",
        ])
        .args(["--steps", "3", "--seed", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = watchdog(&child, Duration::from_secs(600));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let progressing = event["event"] == "progress";
        seen.push(event);
        if progressing {
            break;
        }
    }
    // The server goes away mid-job and comes back on the same address.
    let (code, stderr, home) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let _server = Server::start_in(home, &[], &["--listen", &listen], None);
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?}");
    let done = seen.last().unwrap();
    assert_eq!(done["event"], "done", "{seen:?}");
    assert!(std::path::Path::new(done["outputs"][0].as_str().unwrap()).exists());
}
