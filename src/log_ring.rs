//! `LogRing`: the newest log lines of this process, kept in memory for `serve`'s
//! `GET /api/v1/logs` (a client's TUI shows them in its log pane). A tracing layer
//! (`LogRing::layer`) feeds it; lines are numbered like the job events (`BOOT-SEQ` ids) so a
//! client that lost its connection resumes where it was. Secrets registered with `redact`
//! (the bearer token) and passwords in URLs (`postgres://user:PASSWORD@host`) never get in.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::serve::stream_ids::StreamIds;

/// One log line as `GET /api/v1/logs` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub time: String,
    /// ERROR, WARN, INFO, DEBUG or TRACE.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message, then its fields as `key=value`.
    pub message: String,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<(u64, Arc<str>)>,
    last: u64,
    secrets: Vec<String>,
}

pub struct LogRing {
    /// Line ids: the process's start, then the line's number.
    ids: StreamIds,
    capacity: usize,
    inner: Mutex<Inner>,
    latest: watch::Sender<u64>,
}

/// Shows the ring's size only: never its lines or the secrets it masks.
impl std::fmt::Debug for LogRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRing")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: StreamIds::default(),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            latest: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tracing layer that feeds this ring.
    pub fn layer(self: &Arc<Self>) -> RingLayer {
        RingLayer(Arc::clone(self))
    }

    /// `secret` is replaced by `***` in every line from now on (an empty one is ignored).
    pub fn redact(&self, secret: &str) {
        let secret = secret.trim();
        if !secret.is_empty() {
            self.lock().secrets.push(secret.to_owned());
        }
    }

    /// Keeps `line` (its secrets masked); returns its number.
    pub fn push(&self, mut line: LogLine) -> u64 {
        let seq = {
            let mut inner = self.lock();
            line.message = mask(&line.message, &inner.secrets);
            let Ok(json) = serde_json::to_string(&line) else {
                return inner.last;
            };
            inner.last += 1;
            let seq = inner.last;
            inner.lines.push_back((seq, json.into()));
            while inner.lines.len() > self.capacity {
                inner.lines.pop_front();
            }
            seq
        };
        self.latest.send_replace(seq);
        seq
    }

    /// The lines after number `after` still kept, oldest first, with their numbers.
    pub fn since(&self, after: u64) -> Vec<(u64, Arc<str>)> {
        self.lock()
            .lines
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect()
    }

    /// Changes whenever a line is kept.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// The SSE id of line `seq`.
    pub fn line_id(&self, seq: u64) -> String {
        self.ids.id(seq)
    }

    /// Where a stream resumes from a client's id: after that line when the id is this
    /// process's; from the oldest line kept when it is another's or unreadable.
    pub fn resume_after(&self, id: &str) -> u64 {
        self.ids.resume_after(id)
    }
}

/// `text` with every secret and every password in a URL's user part replaced by `***`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        masked.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .and_then(|a| authority[..a].find(':').map(|c| (c, a)))
        {
            Some((colon, at)) => {
                masked.push_str(&authority[..=colon]);
                masked.push_str("***");
                masked.push_str(&authority[at..]);
            }
            None => masked.push_str(authority),
        }
        rest = &tail[end..];
    }
    masked.push_str(rest);
    masked
}

/// Feeds a `LogRing` from tracing: installed by `logging::init` when the caller hands it one.
pub struct RingLayer(Arc<LogRing>);

/// Whether a line goes into the ring: everything at INFO and above, and this crate's debug and
/// trace lines. Other crates' (hyper, h2, tokio) debug and trace lines stay out: the HTTP
/// server logs each write at those levels, so sending a line would log another, forever.
fn kept(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::INFO || meta.target().starts_with("pallaidium")
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !kept(meta) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let mut message = text.message;
        if !text.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&text.fields);
        }
        self.0.push(LogLine {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level: meta.level().to_string(),
            target: meta.target().to_owned(),
            message,
        });
    }
}

/// An event's message and its other fields (`key=value`, space-separated).
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field, &format!("{value:?}"));
        }
    }
}

impl Text {
    fn field(&mut self, field: &Field, value: &str) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            time: "t".into(),
            level: "INFO".into(),
            target: "x".into(),
            message: message.into(),
        }
    }

    #[test]
    fn lines_are_numbered_bounded_and_resumed_on_this_process_only() {
        let ring = LogRing::new(2);
        for n in 1..=3 {
            ring.push(line(&format!("line {n}")));
        }
        let kept = ring.since(0);
        assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 3]);
        assert!(
            kept[1].1.contains("\"message\":\"line 3\""),
            "{}",
            kept[1].1
        );
        assert_eq!(ring.since(2).len(), 1);
        assert_eq!(ring.resume_after(&ring.line_id(2)), 2);
        assert_eq!(ring.resume_after("1-2"), 0, "another process's id");
    }

    #[test]
    fn the_layer_keeps_info_and_this_crates_debug_lines_only() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let ring = Arc::new(LogRing::new(10));
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "hyper::proto", bytes = 5, "kept");
            tracing::debug!(target: "hyper::proto", "flushed");
            tracing::debug!(target: "pallaidium::serve", "mine");
            tracing::warn!(target: "pallaidium::serve", signal = "SIGTERM", "stopping");
        });
        let kept: Vec<LogLine> = ring
            .since(0)
            .iter()
            .map(|(_, json)| serde_json::from_str(json).unwrap())
            .collect();
        let messages: Vec<&str> = kept.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(
            messages,
            ["kept bytes=5", "mine", "stopping signal=SIGTERM"]
        );
        assert_eq!(kept[2].level, "WARN");
        assert_eq!(kept[0].target, "hyper::proto");
    }

    #[test]
    fn secrets_and_url_passwords_are_masked() {
        let ring = LogRing::new(10);
        ring.redact("tok-123\n");
        ring.push(line(
            "bearer tok-123 at postgres://me:hunter2@db:5432/q and http://a/b",
        ));
        let kept = ring.since(0);
        let text = &kept[0].1;
        assert!(
            !text.contains("tok-123") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("postgres://me:***@db:5432/q"), "{text}");
        assert!(text.contains("http://a/b"), "{text}");
        assert_eq!(mask("no url here", &[]), "no url here");
    }
}
