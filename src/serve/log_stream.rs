//! `GET /api/v1/logs`: the server's own log lines as Server-Sent Events — the newest ones it
//! kept, then each new one as it is logged. Each `data:` is a `LogLine` (time, level, target,
//! message), each `id:` its number, so a client reconnecting with `Last-Event-ID` (or
//! `?after=ID`) gets exactly what it missed. Secrets never get into the lines (`log_ring`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::watch;

use crate::log_ring::LogRing;
use crate::serve::body;
use crate::serve::error::ApiResult;
use crate::serve::events::EventLog;
use crate::serve::sse::{KEEP_ALIVE, event_stream, frame, resume_point};
use crate::serve::state::AppState;

/// How often a waiting stream checks whether the server stops (the log's own changes do not
/// say so).
const STOP_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Resume after this line id (for clients that cannot set `Last-Event-ID`).
    pub after: Option<String>,
}

struct Follow {
    ring: Arc<LogRing>,
    events: Arc<EventLog>,
    changes: watch::Receiver<u64>,
    after: u64,
    pending: VecDeque<(u64, Arc<str>)>,
    quiet: Duration,
    finished: bool,
}

impl Follow {
    /// The next SSE frame; `None` once the server stops.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some((seq, json)) = self.pending.pop_front() {
                self.after = seq;
                self.quiet = Duration::ZERO;
                return Some(frame(&self.ring.line_id(seq), &json));
            }
            if self.finished {
                return None;
            }
            self.changes.borrow_and_update();
            // The lines logged up to the stop (its own line included) still go out.
            self.finished = self.events.is_closed();
            self.pending.extend(self.ring.since(self.after));
            if self.finished || !self.pending.is_empty() {
                continue;
            }
            if self.quiet >= KEEP_ALIVE {
                self.quiet = Duration::ZERO;
                return Some(":\n\n".to_owned());
            }
            match tokio::time::timeout(STOP_CHECK, self.changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => self.quiet += STOP_CHECK,
            }
        }
    }
}

/// `GET /api/v1/logs`: the server's log lines, from the resume point, live.
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let query = body::query(query)?;
    let ring = Arc::clone(&state.logs);
    let after =
        resume_point(&headers, query.after.as_deref()).map_or(0, |id| ring.resume_after(id));
    let follow = Follow {
        changes: ring.watch(),
        ring,
        events: Arc::clone(&state.events),
        after,
        pending: VecDeque::new(),
        quiet: Duration::ZERO,
        finished: false,
    };
    let body = Body::from_stream(futures::stream::unfold(follow, |mut follow| async move {
        let text = follow.next().await?;
        Some((Ok::<_, Infallible>(text), follow))
    }));
    Ok(event_stream(body))
}
