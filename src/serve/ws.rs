//! Job events over WebSocket: `GET /api/v1/events/ws` (every job's, or `?job=ID`'s) and
//! `GET /api/v1/jobs/{id}/events/ws` (one job's; closed after its last event). Each text message
//! is the headless `--json` object of an event — the SSE streams' `data:` — with its event id
//! added as `event_id`; a client that lost its connection resumes with `?after=EVENT_ID` (or
//! `Last-Event-ID`). The handshake and the frames are RFC 6455's (`ws_frame`), over the
//! connection hyper hands over after the 101 answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

use crate::jobs::JobId;
use crate::serve::body;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::sse::{Cursor, StreamQuery, Streamed, resume_point};
use crate::serve::state::AppState;
use crate::serve::ws_frame::{self, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// A client that sends nothing back to the server's close within this is cut off.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// `GET /api/v1/events/ws`: every job's events (or `?job=ID`'s), live, from the resume point.
pub async fn all_events(
    State(state): State<AppState>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let query = body::query(query)?;
    let job = query.job.map(JobId);
    if let Some(id) = job {
        state.record(id)?;
    }
    upgrade(&state, request, query.after, job, false)
}

/// `GET /api/v1/jobs/{id}/events/ws`: one job's events; closed after its last one.
pub async fn job_events(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let id = body::job_id(path)?;
    let query = body::query(query)?;
    state.record(id)?;
    upgrade(&state, request, query.after, Some(id), true)
}

/// Whether header `name` lists `token` (comma-separated, any case).
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn upgrade(
    state: &AppState,
    mut request: Request,
    after: Option<String>,
    job: Option<JobId>,
    until_end: bool,
) -> ApiResult<Response> {
    let headers = request.headers();
    if !lists(headers, header::UPGRADE, "websocket")
        || !lists(headers, header::CONNECTION, "upgrade")
    {
        return Err(ApiError::BadRequest(
            "this is a WebSocket endpoint: open it with a WebSocket handshake (Upgrade: \
             websocket), or read the same events as Server-Sent Events at the path without /ws"
                .to_owned(),
        ));
    }
    if !lists(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(ApiError::BadRequest(
            "Sec-WebSocket-Version: this server speaks version 13 (RFC 6455)".to_owned(),
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("the WebSocket handshake has no Sec-WebSocket-Key".to_owned())
        })?;
    let accept = ws_frame::accept_key(key);
    let resume = resume_point(headers, after.as_deref()).map(str::to_owned);
    let cursor = Cursor::new(state, resume.as_deref(), job, until_end);
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                if let Err(err) = session(Upgraded(io), cursor).await {
                    tracing::debug!(%err, "event WebSocket ended with an error");
                }
            }
            Err(err) => tracing::debug!(%err, "the WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The event JSON with its id added: `{"event":...,"job":...,"event_id":"..."}`.
fn message(id: &str, json: &str) -> String {
    match json.strip_suffix('}') {
        Some(open) => format!("{open},\"event_id\":\"{id}\"}}"),
        None => json.to_owned(),
    }
}

/// Sends events until the cursor ends (then closes with 1000) or the client closes.
async fn session<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    mut cursor: Cursor,
) -> io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(io);
    let (pong_tx, mut pongs) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let (closed_tx, mut closed) = oneshot::channel::<()>();
    // The client's frames: a close ends the session, a ping is answered.
    let reading = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match ws_frame::parse_client(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match frame.opcode {
                        OP_CLOSE => break,
                        OP_PING => {
                            let _ = pong_tx.send(frame.payload);
                        }
                        _ => {}
                    }
                    continue;
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::debug!(why, "event WebSocket: a bad frame from the client");
                    break;
                }
            }
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = closed_tx.send(());
    });
    loop {
        tokio::select! {
            next = cursor.next() => match next {
                Some(Streamed::Event { id, json }) => {
                    writer.write_all(&ws_frame::frame(OP_TEXT, message(&id, &json).as_bytes())).await?;
                }
                Some(Streamed::KeepAlive) => writer.write_all(&ws_frame::frame(OP_PING, b"")).await?,
                None => break,
            },
            Some(payload) = pongs.recv() => {
                writer.write_all(&ws_frame::frame(OP_PONG, &payload)).await?;
            }
            _ = &mut closed => {
                // The client closed (or went): answer its close, and stop.
                let _ = writer.write_all(&ws_frame::close(1000)).await;
                let _ = writer.shutdown().await;
                reading.abort();
                return Ok(());
            }
        }
        writer.flush().await?;
    }
    // The stream is over (the job ended, the server stops): close, and wait briefly for the
    // client's close so it reads everything.
    writer.write_all(&ws_frame::close(1000)).await?;
    writer.flush().await?;
    let _ = tokio::time::timeout(CLOSE_WAIT, closed).await;
    reading.abort();
    let _ = writer.shutdown().await;
    Ok(())
}

/// hyper's upgraded connection as tokio IO.
struct Upgraded(hyper::upgrade::Upgraded);

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut hyper_buf = hyper::rt::ReadBuf::new(buf.initialize_unfilled());
        match hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, hyper_buf.unfilled()) {
            Poll::Ready(Ok(())) => {
                let n = hyper_buf.filled().len();
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_the_event_json_with_its_id() {
        let line = r#"{"event":"cancelled","job":2}"#;
        let text = message("17-3", line);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "cancelled");
        assert_eq!(v["job"], 2);
        assert_eq!(v["event_id"], "17-3");
        let event: crate::jobs::JobEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(event, crate::jobs::JobEvent::Cancelled { job: JobId(2) });
    }
}
