//! Job events as Server-Sent Events: each `data:` is the JSON object headless `--json` prints,
//! each `id:` the log's number for it, so a client that reconnects with `Last-Event-ID` (or
//! `?after=ID`) gets exactly what it missed. A job's own stream ends after its last event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;

use crate::jobs::JobId;
use crate::serve::body;
use crate::serve::error::ApiResult;
use crate::serve::events::{EventLog, Logged};
use crate::serve::state::AppState;

/// How often a job's stream checks whether the job ended before this server logged its end.
const ENDED_CHECK: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies and clients from taking a quiet stream for dead.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only this job's events.
    pub job: Option<i64>,
    /// Resume after this event id (for clients that cannot set `Last-Event-ID`).
    pub after: Option<String>,
}

/// `GET /api/v1/events`: every job's events (or `?job=ID`'s), live, from the resume point.
pub async fn all_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let query = body::query(query)?;
    let job = query.job.map(JobId);
    if let Some(id) = job {
        state.record(id)?;
    }
    Ok(stream(&state, &headers, query.after.as_deref(), job, false))
}

/// `GET /api/v1/jobs/{id}/events`: one job's events; the stream ends after its last one.
pub async fn job_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let id = body::job_id(path)?;
    let query = body::query(query)?;
    state.record(id)?;
    Ok(stream(
        &state,
        &headers,
        query.after.as_deref(),
        Some(id),
        true,
    ))
}

fn stream(
    state: &AppState,
    headers: &HeaderMap,
    after: Option<&str>,
    job: Option<JobId>,
    until_end: bool,
) -> Response {
    let cursor = Cursor::new(state, resume_point(headers, after), job, until_end);
    let body = Body::from_stream(futures::stream::unfold(cursor, |mut cursor| async move {
        let text = match cursor.next().await? {
            Streamed::Event { id, json } => frame(&id, &json),
            Streamed::KeepAlive => ":\n\n".to_owned(),
        };
        Some((Ok::<_, Infallible>(text), cursor))
    }));
    event_stream(body)
}

/// `body` answered as a Server-Sent Events stream.
pub fn event_stream(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The event id a stream resumes after: `Last-Event-ID`, else `?after=`.
pub fn resume_point<'a>(headers: &'a HeaderMap, after: Option<&'a str>) -> Option<&'a str> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(after)
}

/// What a stream sends next.
#[derive(Debug, Clone, PartialEq)]
pub enum Streamed {
    /// An event: its id, and its headless `--json` line.
    Event { id: String, json: Arc<str> },
    /// Nothing happened for a while: a keep-alive keeps proxies from closing the stream.
    KeepAlive,
}

/// Where a client is in the event log: what it has been sent, what it waits for.
pub struct Cursor {
    log: Arc<EventLog>,
    changes: watch::Receiver<u64>,
    state: AppState,
    after: u64,
    job: Option<JobId>,
    until_end: bool,
    pending: VecDeque<Logged>,
    finished: bool,
    last_sent: Instant,
}

/// One event in the SSE wire format: its id, its JSON, a blank line.
pub fn frame(id: &str, json: &str) -> String {
    format!("id: {id}\ndata: {json}\n\n")
}

impl Cursor {
    /// A cursor after event id `resume` (from the start of what is retained when `None` or
    /// another server's), over `job`'s events or all; `until_end` ends it after the job's end.
    pub fn new(
        state: &AppState,
        resume: Option<&str>,
        job: Option<JobId>,
        until_end: bool,
    ) -> Self {
        Self {
            changes: state.events.watch(),
            log: Arc::clone(&state.events),
            state: state.clone(),
            after: resume.map_or(0, |id| state.events.resume_after(id)),
            job,
            until_end,
            pending: VecDeque::new(),
            finished: false,
            last_sent: Instant::now(),
        }
    }

    /// The next thing to send; `None` once the stream is over (the job ended, the server
    /// stops). Cancel-safe: an event is taken only when it is returned.
    pub async fn next(&mut self) -> Option<Streamed> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.after = item.seq;
                // A job's stream ends at its end, unless it was queued again after it (retry).
                if self.until_end && item.event.is_terminal() && self.pending.is_empty() {
                    let (later, _) = self.log.since(self.after, self.job);
                    self.finished = later.is_empty();
                    self.pending.extend(later);
                }
                self.last_sent = Instant::now();
                return Some(Streamed::Event {
                    id: self.log.event_id(item.seq),
                    json: item.json,
                });
            }
            if self.finished {
                return None;
            }
            // Marked seen before reading, so an event logged after the read wakes the wait.
            self.changes.borrow_and_update();
            let (events, closed) = self.log.since(self.after, self.job);
            if !events.is_empty() {
                self.pending.extend(events);
                continue;
            }
            if closed {
                return None;
            }
            if self.last_sent.elapsed() >= KEEP_ALIVE {
                self.last_sent = Instant::now();
                return Some(Streamed::KeepAlive);
            }
            let wait = if self.until_end {
                ENDED_CHECK
            } else {
                KEEP_ALIVE
            };
            match tokio::time::timeout(wait, self.changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) if self.until_end => {
                    // A job that ended before this server's log began never logs its end here.
                    let ended = self.job.and_then(|id| self.state.record(id).ok());
                    if ended.is_some_and(|r| r.state.is_finished()) {
                        self.finished = true;
                        let (rest, _) = self.log.since(self.after, self.job);
                        self.pending.extend(rest);
                    }
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_sse_format() {
        assert_eq!(
            frame("17-3", r#"{"event":"cancelled","job":2}"#),
            "id: 17-3\ndata: {\"event\":\"cancelled\",\"job\":2}\n\n"
        );
    }
}
