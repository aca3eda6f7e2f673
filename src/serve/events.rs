//! `EventLog`: the runner's events as the server keeps them, numbered, so an SSE client that
//! lost its connection resumes where it was (`Last-Event-ID`). Held in memory, the newest
//! `capacity` of them; ids carry the server's start time, so an id from an earlier server is
//! recognised and the client gets everything retained instead of a wrong gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::jobs::{JobEvent, JobEvents, JobId};

/// One event as logged: its number, its job, the event and its JSON line.
#[derive(Debug, Clone)]
pub struct Logged {
    pub seq: u64,
    pub event: Arc<JobEvent>,
    /// The headless `--json` line of the event.
    pub json: Arc<str>,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Logged>,
    last: u64,
    closed: bool,
}

pub struct EventLog {
    /// The server's start (unix ms): the first part of every event id.
    boot: u64,
    capacity: usize,
    inner: Mutex<Inner>,
    /// The newest event's number, watched by every waiting stream.
    latest: watch::Sender<u64>,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        let boot = u64::try_from(crate::jobs::store::now_ms()).unwrap_or(0);
        Self {
            boot,
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
    pub fn push(&self, event: JobEvent) -> u64 {
        let json: Arc<str> = event.to_json_line().into();
        let seq = {
            let mut inner = self.lock();
            if inner.closed {
                return inner.last;
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
        format!("{}-{seq}", self.boot)
    }

    /// Where a stream resumes from a client's `Last-Event-ID`: after that event when the id is
    /// this server's; from the start of what is retained when it is another's or unreadable.
    pub fn resume_after(&self, id: &str) -> u64 {
        id.trim()
            .split_once('-')
            .filter(|(boot, _)| boot.parse() == Ok(self.boot))
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or(0)
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
