//! The event WebSocket of `pallaidium serve`, through a real WebSocket client (tungstenite):
//! every message is the SSE stream's event JSON with its id added as `event_id`; a client that
//! disconnects and comes back with `?after=ID` gets exactly what it missed, nothing twice; a
//! job's socket closes after its last event; a plain GET is refused with a JSON 400.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::serve::Server;

fn connect(server: &Server, path: &str) -> WebSocket<TcpStream> {
    let url = server.url(path).replacen("http://", "ws://", 1);
    let request = url.as_str().into_client_request().unwrap();
    let host = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let (socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// Reads text messages as JSON until `stop` says so or the server closes; the second value
/// says whether it closed.
fn read_until(
    socket: &mut WebSocket<TcpStream>,
    stop: impl Fn(&Value) -> bool,
) -> (Vec<Value>, bool) {
    let mut seen = Vec::new();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                let done = stop(&value);
                seen.push(value);
                if done {
                    return (seen, false);
                }
            }
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {
                return (seen, true);
            }
            Ok(_) => {}
            Err(e) => panic!("the socket failed after {} message(s): {e}", seen.len()),
        }
    }
}

fn is_done(job: i64) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "done" && v["job"] == job
}

#[test]
fn websocket_events_resume_after_a_disconnect_and_match_the_sse_stream() {
    let server = Server::start(&[], &[]);
    server
        .post_json("/api/v1/queue/pause", &json!({ "paused": true }))
        .expect(200);
    let a = server.submit(json!({ "prompt": "first", "seed": 1 }));
    let b = server.submit(json!({ "prompt": "second", "seed": 2 }));

    // From the start of the log: both jobs' queued events, then the client goes away.
    let mut socket = connect(&server, "/api/v1/events/ws");
    let (first, closed) = read_until(&mut socket, |v| v["job"] == b);
    assert!(!closed);
    assert_eq!(
        first
            .iter()
            .map(|v| (v["event"].clone(), v["job"].clone()))
            .collect::<Vec<_>>(),
        [(json!("queued"), json!(a)), (json!("queued"), json!(b))]
    );
    let last_id = first[1]["event_id"].as_str().unwrap().to_owned();
    drop(socket);

    // The jobs run while nobody listens.
    server
        .post_json("/api/v1/queue/pause", &json!({ "paused": false }))
        .expect(200);
    let start = Instant::now();
    while server.get(&format!("/api/v1/jobs/{b}")).expect(200)["state"] != "done" {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {b} never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back with ?after=: exactly what was missed, in order, as the SSE stream has it.
    let mut socket = connect(&server, &format!("/api/v1/events/ws?after={last_id}"));
    let (missed, closed) = read_until(&mut socket, is_done(b));
    assert!(!closed);
    socket.close(None).unwrap();
    let sse = server.events_until("/api/v1/events", Some(&last_id), |e, _| {
        e.data["event"] == "done" && e.data["job"] == b
    });
    assert_eq!(missed.len(), sse.len(), "{missed:?}");
    for (ws, sse) in missed.iter().zip(&sse) {
        assert_eq!(ws["event_id"].as_str(), Some(sse.id.as_str()));
        let mut plain = ws.clone();
        plain.as_object_mut().unwrap().remove("event_id");
        assert_eq!(plain, sse.data, "the same JSON as the SSE data");
    }
    assert!(
        missed.iter().all(|v| v["event"] != "queued"),
        "nothing seen before comes twice: {missed:?}"
    );
    assert!(missed.iter().any(is_done(a)) && missed.iter().any(is_done(b)));

    // One job's socket: all its events, then the server closes it.
    let mut socket = connect(&server, &format!("/api/v1/jobs/{a}/events/ws"));
    let (events, closed) = read_until(&mut socket, |_| false);
    assert!(closed, "the job's socket closes after its end");
    assert_eq!(events.first().unwrap()["event"], "queued");
    assert!(is_done(a)(events.last().unwrap()), "{events:?}");
    assert!(events.iter().all(|v| v["job"] == a));

    // Not a handshake: the API's JSON refusal.
    let plain = server.get("/api/v1/events/ws");
    assert_eq!(plain.status, 400);
    assert!(plain.message().contains("WebSocket"), "{}", plain.message());
    let missing = server.get("/api/v1/jobs/999/events/ws");
    assert_eq!(missing.status, 404);
}
