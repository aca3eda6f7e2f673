//! `EventLog`: the runner's events as the server keeps them, numbered, so an SSE client that
//! lost its connection resumes where it was (`Last-Event-ID`). Held in memory, the newest
//! `capacity` of them; ids carry the server's start time, so an id from an earlier server is
//! recognised and the client gets everything retained instead of a wrong gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::jobs::{JobEvent, JobEvents, JobId};
use crate::serve::stream_ids::StreamIds;

/// The jobs whose newest latent preview the server keeps (`GET /api/v1/jobs/{id}/preview`).
const MAX_PREVIEWS: usize = 16;

/// One event as logged: its number, its job, the event and its JSON line.
#[derive(Debug, Clone)]
pub struct Logged {
    pub seq: u64,
    pub event: Arc<JobEvent>,
    /// The headless `--json` line of the event.
    pub json: Arc<str>,
}

/// A job's newest latent preview: width, height, RGB pixels.
pub type Preview = (u32, u32, Arc<Vec<u8>>);

#[derive(Default)]
struct Inner {
    events: VecDeque<Logged>,
    last: u64,
    closed: bool,
    /// The newest preview of the latest jobs that made one, oldest job first; the logged
    /// `preview` events themselves keep no pixels.
    previews: VecDeque<(JobId, Preview)>,
}

pub struct EventLog {
    /// Event ids: the server's start, then the event's number.
    ids: StreamIds,
    capacity: usize,
    inner: Mutex<Inner>,
    /// The newest event's number, watched by every waiting stream.
    latest: watch::Sender<u64>,
}

impl EventLog {
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

    /// Logs `event`; returns its number. A closed log takes nothing more: the shutdown's stop of
    /// the running job is no cancel to show anyone.
    pub fn push(&self, mut event: JobEvent) -> u64 {
        let json: Arc<str> = json_line(&event).into();
        let seq = {
            let mut inner = self.lock();
            if inner.closed {
                return inner.last;
            }
            if let JobEvent::Preview {
                job,
                width,
                height,
                pixels,
            } = &mut event
            {
                let preview = (*width, *height, Arc::new(std::mem::take(pixels)));
                inner.previews.retain(|(j, _)| *j != *job);
                inner.previews.push_back((*job, preview));
                while inner.previews.len() > MAX_PREVIEWS {
                    inner.previews.pop_front();
                }
            }
            inner.last += 1;
            let seq = inner.last;
            inner.events.push_back(Logged {
                seq,
                event: Arc::new(event),
                json,
            });
            while inner.events.len() > self.capacity {
                inner.events.pop_front();
            }
            seq
        };
        self.latest.send_replace(seq);
        seq
    }

    /// `job`'s newest latent preview, while it is among the latest jobs that made one.
    pub fn preview(&self, job: JobId) -> Option<Preview> {
        self.lock()
            .previews
            .iter()
            .rev()
            .find(|(j, _)| *j == job)
            .map(|(_, preview)| preview.clone())
    }

    /// The newest event's number (0: none yet).
    pub fn last(&self) -> u64 {
        self.lock().last
    }

    /// Events after number `after` (of `job` only, if given), and whether the log is closed.
    pub fn since(&self, after: u64, job: Option<JobId>) -> (Vec<Logged>, bool) {
        let inner = self.lock();
        let events = inner
            .events
            .iter()
            .filter(|l| l.seq > after && job.is_none_or(|j| l.event.job() == j))
            .cloned()
            .collect();
        (events, inner.closed)
    }

    /// Wakes whoever waits for events: changes when one is logged or the log closes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// No more events: every stream ends after what it has not sent yet (server shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.latest.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The SSE id of event `seq`.
    pub fn event_id(&self, seq: u64) -> String {
        self.ids.id(seq)
    }

    /// Where a stream resumes from a client's `Last-Event-ID`: after that event when the id is
    /// this server's; from the start of what is retained when it is another's or unreadable.
    pub fn resume_after(&self, id: &str) -> u64 {
        self.ids.resume_after(id)
    }

    /// Waits for `job`'s last event (done, failed or cancelled) logged after number `after`;
    /// `None` when the log closes first.
    pub async fn wait_for_end(&self, job: JobId, after: u64) -> Option<Arc<JobEvent>> {
        let mut changes = self.watch();
        let mut cursor = after;
        loop {
            changes.borrow_and_update();
            let (events, closed) = self.since(cursor, Some(job));
            if let Some(end) = events.iter().find(|l| l.event.is_terminal()) {
                return Some(Arc::clone(&end.event));
            }
            cursor = events.last().map_or(cursor, |l| l.seq);
            if closed || changes.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// The event's headless `--json` line; a `preview` also carries the URL of its PNG.
fn json_line(event: &JobEvent) -> String {
    let line = event.to_json_line();
    match event {
        JobEvent::Preview { job, .. } => match serde_json::from_str(&line) {
            Ok(serde_json::Value::Object(mut fields)) => {
                let url = crate::serve::preview::url(*job);
                fields.insert("url".to_owned(), serde_json::Value::String(url));
                serde_json::Value::Object(fields).to_string()
            }
            _ => line,
        },
        _ => line,
    }
}

/// Copies every runner event into the log until the runner ends.
pub async fn pump(mut events: JobEvents, log: Arc<EventLog>) {
    while let Some(event) = events.recv().await {
        log.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(job: i64) -> JobEvent {
        JobEvent::Queued {
            job: JobId(job),
            position: 0,
        }
    }

    #[test]
    fn events_are_numbered_filtered_and_the_oldest_dropped() {
        let log = EventLog::new(3);
        for job in 1..=4 {
            log.push(queued(job));
        }
        let (all, closed) = log.since(0, None);
        assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(!closed);
        let (one, _) = log.since(0, Some(JobId(3)));
        assert_eq!(one.len(), 1);
        assert_eq!(&*one[0].json, r#"{"event":"queued","job":3,"position":0}"#);
        assert_eq!(log.since(3, None).0.len(), 1);
    }

    #[test]
    fn ids_resume_on_this_server_only() {
        let log = EventLog::new(10);
        let id = log.event_id(7);
        assert_eq!(log.resume_after(&id), 7);
        assert_eq!(log.resume_after("12-7"), 0, "another server's id");
        assert_eq!(log.resume_after("nonsense"), 0);
    }

    #[test]
    fn only_the_newest_preview_of_the_latest_jobs_keeps_its_pixels() {
        let log = EventLog::new(1000);
        let preview = |job: i64, shade: u8| JobEvent::Preview {
            job: JobId(job),
            width: 1,
            height: 1,
            pixels: vec![shade; 3],
        };
        log.push(preview(1, 10));
        log.push(preview(1, 20));
        let (_, _, pixels) = log.preview(JobId(1)).unwrap();
        assert_eq!(*pixels, vec![20; 3]);
        for job in 2..=MAX_PREVIEWS as i64 {
            log.push(preview(job, 1));
        }
        assert!(log.preview(JobId(1)).is_some(), "still among the latest");
        log.push(preview(100, 1));
        assert!(
            log.preview(JobId(1)).is_none(),
            "the oldest job's is dropped"
        );
        assert!(log.preview(JobId(2)).is_some());
        let (logged, _) = log.since(0, None);
        assert!(
            logged.iter().all(
                |l| matches!(&*l.event, JobEvent::Preview { pixels, .. } if pixels.is_empty())
            ),
            "the log itself keeps no pixels"
        );
    }

    #[tokio::test]
    async fn waiting_for_a_job_ends_with_its_last_event_or_the_close() {
        let log = Arc::new(EventLog::new(100));
        let writer = Arc::clone(&log);
        let waiter = tokio::spawn({
            let log = Arc::clone(&log);
            async move { log.wait_for_end(JobId(2), 0).await }
        });
        tokio::task::yield_now().await;
        writer.push(queued(2));
        writer.push(JobEvent::Cancelled { job: JobId(1) });
        writer.push(JobEvent::Cancelled { job: JobId(2) });
        let end = waiter.await.unwrap().unwrap();
        assert_eq!(*end, JobEvent::Cancelled { job: JobId(2) });

        let waiter = tokio::spawn({
            let log = Arc::clone(&log);
            async move { log.wait_for_end(JobId(5), 0).await }
        });
        tokio::task::yield_now().await;
        log.close();
        assert!(waiter.await.unwrap().is_none());
        log.push(JobEvent::Cancelled { job: JobId(5) });
        assert!(
            log.since(3, None).0.is_empty(),
            "nothing is logged once closed"
        );
    }
}
