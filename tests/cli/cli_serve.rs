//! Black-box tests of `pallaidium serve`'s native API through a real HTTP client: a job from
//! submit to downloaded output, every job route, the OpenAPI document against the routes, auth
//! refusals, limits and the CLI's validation, SSE resumed after a disconnect, and SIGTERM
//! re-queueing the running job for the next start.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::run::{Run, fixture};
use crate::serve::{Server, b64, png};

fn names(events: &[crate::serve::SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.data["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_job_goes_from_submit_to_downloaded_output_through_every_job_route() {
    let server = Server::start(&[], &[]);
    let health = server.get("/api/v1/health");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, json!("ok"))
    );

    let reply = server.post_json(
        "/api/v1/jobs",
        &json!({"job": {"prompt": "a cat", "seed": 7}}),
    );
    reply.expect(201);
    let job = reply.json();
    let id = job["id"].as_i64().unwrap();
    assert_eq!(
        reply.location.as_deref(),
        Some(format!("/api/v1/jobs/{id}").as_str())
    );
    assert_eq!(job["spec"]["seed"], 7);
    assert_eq!(
        job["spec"]["params"]["image"]["width"], 64,
        "the server's job flags are defaults"
    );

    // One job's stream ends after its last event; the objects are headless --json's.
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    let names = names(&events);
    assert_eq!(
        names.first().map(String::as_str),
        Some("queued"),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "progress").count(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.data["job"] == id && !e.id.is_empty())
    );
    let done = &events.last().unwrap().data;
    let written = std::path::PathBuf::from(done["outputs"][0].as_str().unwrap());
    assert!(written.starts_with(&server.run.out));

    // The output, by job id and index, is the file written.
    let output = server.get(&format!("/api/v1/jobs/{id}/outputs/0"));
    assert_eq!(output.status, 200);
    assert_eq!(output.content_type, "image/png");
    assert_eq!(output.body, std::fs::read(&written).unwrap());
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{id}/outputs/1")).status,
        404
    );
    assert_eq!(server.get("/api/v1/jobs/999/outputs/0").status, 404);
    assert_eq!(server.get("/api/v1/jobs/nope").status, 404);

    let one = server.get(&format!("/api/v1/jobs/{id}")).json();
    assert_eq!(one["state"], "done");
    assert_eq!(
        one["outputs"][0]["url"],
        format!("/api/v1/jobs/{id}/outputs/0")
    );
    let list = server.get("/api/v1/jobs?limit=5&state=done").json();
    assert!(
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id)
    );
    assert!(
        server.get("/api/v1/jobs?state=queued").json()["jobs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(server.get("/api/v1/jobs?state=bogus").status, 400);

    // A done job can be neither cancelled nor retried.
    let cancel = server.post(&format!("/api/v1/jobs/{id}/cancel"), b"");
    assert_eq!(cancel.status, 409, "{}", cancel.message());
    assert_eq!(
        server.post(&format!("/api/v1/jobs/{id}/retry"), b"").status,
        409
    );
    let moved = server.post_json(&format!("/api/v1/jobs/{id}/move"), &json!({"index": 0}));
    assert_eq!(moved.status, 409);
    assert_eq!(server.post("/api/v1/jobs/4242/cancel", b"").status, 404);

    let models = server.get("/api/v1/models").json();
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "sd15")
    );
    let doctor = server.get("/api/v1/doctor").json();
    assert_eq!(doctor["selected_device"]["kind"], "cpu");
    assert_eq!(server.get("/api/v1/nothing-here").status, 404);
}

#[test]
fn waiting_jobs_are_cancelled_moved_and_retried() {
    // A job big enough to keep the worker busy while the others wait.
    let server = Server::start(&[], &[]);
    let busy = server.submit(json!({"prompt": "busy", "width": 256, "height": 256, "steps": 3}));
    let a = server.submit(json!({"prompt": "a"}));
    let b = server.submit(json!({"prompt": "b"}));
    let moved = server.post_json(&format!("/api/v1/jobs/{b}/move"), &json!({"index": 0}));
    assert_eq!(moved.status, 200, "{}", moved.message());
    let waiting: Vec<i64> = server.get("/api/v1/jobs?state=queued").json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert!(waiting.contains(&a) && waiting.contains(&b), "{waiting:?}");
    assert!(
        server.get(&format!("/api/v1/jobs/{b}")).json()["position"].as_i64()
            < server.get(&format!("/api/v1/jobs/{a}")).json()["position"].as_i64()
    );
    let cancelled = server.post(&format!("/api/v1/jobs/{a}/cancel"), b"").json();
    assert_eq!(cancelled["outcome"], "cancelled");
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{a}")).json()["state"],
        "cancelled"
    );
    let retried = server.post(&format!("/api/v1/jobs/{a}/retry"), b"");
    assert_eq!(retried.status, 200, "{}", retried.message());
    assert_eq!(retried.json()["state"], "queued");
    for id in [busy, a, b] {
        let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
        assert_eq!(
            names(&events).last().map(String::as_str),
            Some("done"),
            "job {id}: {:?}",
            names(&events)
        );
    }
}

#[test]
fn the_openapi_document_is_the_committed_one_and_lists_every_route() {
    let server = Server::start(&[], &[]);
    let served = server.get("/api/v1/openapi.json");
    assert_eq!(served.status, 200);
    assert_eq!(served.content_type, "application/json");
    let committed = std::fs::read(fixture("../../src/serve/openapi.json")).unwrap();
    assert_eq!(served.body, committed);
    let doc = served.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = pallaidium::serve::router::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Each route answers (none falls through to "no such route").
    for (method, path) in &routed {
        let concrete = path.replace("{id}", "1").replace("{index}", "0");
        // Streams (events, logs) never end by themselves: their own tests read them.
        if method == "get" && !concrete.contains("events") && !concrete.ends_with("/logs") {
            let reply = server.get(&concrete);
            assert!(
                reply.status == 200
                    || reply.json()["error"]["message"]
                        != "no such route; see /api/v1/openapi.json",
                "{method} {path}: {}",
                reply.status
            );
        }
    }
}

#[test]
fn tokens_are_required_compared_and_never_shown() {
    let secret = "tok-3f9a8c1e-never-logged";
    let server = Server::start_in(Run::new(), &[], &[], Some(secret));
    let open = server.get_with_token("/api/v1/health", None);
    assert_eq!(open.status, 200, "health needs no token");
    let none = server.get_with_token("/api/v1/jobs", None);
    assert_eq!(none.status, 401);
    assert_eq!(none.www_authenticate.as_deref(), Some("Bearer"));
    assert_eq!(
        server
            .get_with_token("/api/v1/jobs", Some("tok-wrong"))
            .status,
        403
    );
    assert_eq!(server.get_with_token("/v1/models", Some("")).status, 401);
    assert_eq!(
        server.get_with_token("/sdapi/v1/options", Some("x")).status,
        403
    );
    assert_eq!(
        server.get_with_token("/api/v1/jobs", Some(secret)).status,
        200
    );
    let logs = server.run.home.join("logs");
    let (code, stderr, _run) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(secret));
    for file in std::fs::read_dir(&logs).unwrap().flatten() {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert!(
            !text.contains(secret),
            "{} shows the token",
            file.path().display()
        );
    }

    // Reachable from other machines without a token: refused before listening.
    let run = Run::new();
    let out = assert_cmd::Command::cargo_bin("pallaidium")
        .unwrap()
        .env("PALLAIDIUM_HOME", &run.home)
        .args(["serve", "--device", "cpu", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
}

#[test]
fn limits_and_validation_answer_as_the_cli_does() {
    let server = Server::start(&[], &["--max-body", "64KiB"]);
    // Over the body limit: 413, whether announced or streamed.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        raw,
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let big = json!({"job": {"prompt": "x"}, "files": {"init-image": "A".repeat(100_000)}});
    assert_eq!(server.post_json("/api/v1/jobs", &big).status, 413);

    // The CLI's own message for a model that does not exist.
    let reply = server.post_json(
        "/api/v1/jobs",
        &json!({"job": {"model": "no-such-model", "prompt": "x"}}),
    );
    assert_eq!(reply.status, 422);
    let cli = Run::new()
        .command()
        .args(["--model", "no-such-model", "--prompt", "x"])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    let cli_message = String::from_utf8_lossy(&cli.stderr);
    assert!(
        cli_message.contains(&reply.message()),
        "CLI: {cli_message}\nAPI: {}",
        reply.message()
    );

    let refused = |body: Value, status: u16, needle: &str| {
        let reply = server.post_json("/api/v1/jobs", &body);
        assert_eq!(
            reply.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            reply.message().contains(needle),
            "{body}: {}",
            reply.message()
        );
    };
    refused(json!({"job": {"prompt": "x", "steps": 0}}), 422, "steps");
    refused(json!({"job": {"prompt": "x", "width": 65}}), 422, "width");
    refused(json!({"job": {"prompt": "x", "bogus": 1}}), 422, "bogus");
    refused(
        json!({"job": {"prompt": "x", "scheduler": "nope"}}),
        422,
        "scheduler",
    );
    refused(
        json!({"job": {"prompt": "p".repeat(8001)}}),
        422,
        "8001 characters",
    );
    refused(
        json!({"job": {"prompt": "x", "init-image": "/etc/hosts"}}),
        422,
        "files.init-image",
    );
    refused(
        json!({"job": {"prompt": "x"}, "files": {"mask": "%%%"}}),
        400,
        "base64",
    );
    refused(
        json!({"job": {"prompt": "x"}, "files": {"mask": b64(b"not an image")}}),
        422,
        "not an image",
    );
    refused(
        json!({"job": {"prompt": "x"}, "files": {"audio": b64(&png(8))}}),
        422,
        "files.audio",
    );
    refused(json!({"prompt": "x"}), 422, "unknown field");
    let not_json = server.post("/api/v1/jobs", b"{\"job\":");
    assert_eq!(not_json.status, 400);
    assert_eq!(server.post("/api/v1/jobs", b"").status, 400);
    assert!(
        server.get("/api/v1/jobs").json()["jobs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing queued"
    );

    // An uploaded init image makes an img2img job.
    let reply = server.post_json(
        "/api/v1/jobs",
        &json!({"job": {"prompt": "x", "strength": 0.5}, "files": {"init-image": b64(&png(64))}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.message());
    assert_eq!(reply.json()["spec"]["kind"], "img2img");
}

#[test]
fn event_streams_resume_after_a_disconnect() {
    let server = Server::start(&[], &[]);
    let id = server.submit(json!({"prompt": "resume me", "steps": 6, "seed": 3}));
    let path = format!("/api/v1/jobs/{id}/events");
    let first = server.events(&path, None, 3);
    assert_eq!(first.len(), 3);
    // The connection is gone; the job is not. Resume after the last event seen.
    let rest = server.events(&path, Some(&first[2].id), 1000);
    assert_eq!(names(&rest).last().map(String::as_str), Some("done"));
    let whole = server.events(&path, None, 1000);
    let joined: Vec<String> = first.iter().chain(&rest).map(|e| e.id.clone()).collect();
    let all: Vec<String> = whole.iter().map(|e| e.id.clone()).collect();
    assert_eq!(joined, all, "nothing lost, nothing twice");
    assert_eq!(
        first
            .iter()
            .chain(&rest)
            .map(|e| e.data.clone())
            .collect::<Vec<_>>(),
        whole.iter().map(|e| e.data.clone()).collect::<Vec<_>>()
    );
    // The all-jobs stream takes ?after= too, and an id of another server replays everything.
    let after = server.events(
        &format!("/api/v1/events?job={id}&after={}", all[all.len() - 2]),
        None,
        1,
    );
    assert_eq!(after[0].id, all[all.len() - 1]);
    let foreign = server.events(&path, Some("1-999"), 1000);
    assert_eq!(foreign.len(), whole.len());
    assert_eq!(server.get("/api/v1/jobs/777/events").status, 404);
}

#[test]
fn sigterm_requeues_the_running_job_and_the_next_start_finishes_it() {
    let server = Server::start(&[], &[]);
    // Big enough that a step takes a while in a debug build.
    let id = server.submit(json!({"prompt": "long", "width": 256, "height": 256, "steps": 3}));
    let path = format!("/api/v1/jobs/{id}/events");
    let seen = server.events_until(&path, None, |e, _| e.data["event"] == "progress");
    assert_eq!(seen.last().unwrap().data["step"], 1, "{:?}", names(&seen));
    let waiting = server.submit(json!({"prompt": "next"}));
    let (code, stderr, run) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let state_of = |job: i64| {
        let history = run.history();
        let row = history.iter().find(|r| r["job"] == job).cloned();
        row.map(|r| r["state"].clone())
    };
    assert_eq!(state_of(id), Some(json!("interrupted")));
    assert_eq!(state_of(waiting), Some(json!("queued")));

    // The next server takes the queue on: the interrupted job and the waiting one finish.
    let server = Server::start_in(run, &[], &[], None);
    for job in [id, waiting] {
        let events = server.events(&format!("/api/v1/jobs/{job}/events"), None, 1000);
        assert_eq!(
            names(&events).last().map(String::as_str),
            Some("done"),
            "job {job}"
        );
    }
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{id}")).json()["state"],
        "done"
    );
}
