//! Black-box tests of `GET /api/v1/logs` on a real `pallaidium serve` on loopback: the server's
//! own log lines as SSE (time, level, target, message), resumed after a line id, refused
//! without the token, ended by the server's stop — and the token never among them.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::time::Duration;

use serde_json::json;

use crate::run::Run;
use crate::serve::Server;

const SECRET: &str = "tok-logs-5b1d0e77-never-shown";

#[test]
fn the_log_stream_sends_the_servers_lines_resumes_and_never_the_token() {
    let server = Server::start_in(Run::new(), &[], &[], Some(SECRET));
    assert_eq!(server.get_with_token("/api/v1/logs", None).status, 401);
    assert_eq!(
        server.get_with_token("/api/v1/logs", Some("wrong")).status,
        403
    );
    // A job, so the log has the runner's lines too.
    let id = server.submit(json!({"prompt": "a logged lighthouse", "seed": 3}));
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    assert_eq!(events.last().unwrap().data["event"], "done", "{events:?}");

    let first = server.events_until("/api/v1/logs", None, |line, _| {
        line.data["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("serving"))
    });
    let serving = first.last().unwrap();
    assert_eq!(serving.data["level"], "INFO");
    assert_eq!(serving.data["target"], "pallaidium::serve");
    assert!(serving.data["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        first.len() >= 2,
        "the lines before it (system, ...) come first: {first:?}"
    );

    // Resumed after the first line: exactly what came after it, same ids.
    let resumed = server.events("/api/v1/logs", Some(&first[0].id), first.len() - 1);
    assert_eq!(
        resumed.iter().map(|l| &l.id).collect::<Vec<_>>(),
        first[1..].iter().map(|l| &l.id).collect::<Vec<_>>()
    );
    assert_eq!(resumed[0].data, first[1].data);
    let by_query = server.events(
        &format!("/api/v1/logs?after={}", first[first.len() - 2].id),
        None,
        1,
    );
    assert_eq!(by_query[0].id, serving.id);

    // The whole stream until the server stops (it ends then): no token anywhere.
    let url = server.url("/api/v1/logs");
    let reader = std::thread::spawn(move || {
        let resp = ureq::AgentBuilder::new()
            .timeout_read(Duration::from_secs(120))
            .build()
            .get(&url)
            .set("Authorization", &format!("Bearer {SECRET}"))
            .call()
            .unwrap();
        let mut text = String::new();
        resp.into_reader().read_to_string(&mut text).unwrap();
        text
    });
    // The reader is connected once a request with the token has reached the server after it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/api/v1/health").status, 200);
    let (code, _stderr, _run) = server.terminate();
    assert_eq!(code, Some(0));
    let all = reader.join().unwrap();
    assert!(
        all.contains(r#""message":"serving"#),
        "a new stream starts from the kept lines: {all}"
    );
    assert!(
        all.contains("SIGTERM"),
        "the stop is logged and streamed: {all}"
    );
    assert!(
        !all.contains(SECRET),
        "the token leaked into the log stream"
    );
}
