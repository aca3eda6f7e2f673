//! `serve --queue postgres://...`: the server's event log fed from the shared queue. This
//! server's own runner only queues and cancels (its events are stored like a worker's); the
//! workers' events come back from the queue in the order they were stored, so an SSE stream
//! shows a job that runs on another machine as it would one that runs here.

use std::time::Duration;

use crate::jobs::JobEvents;
use crate::jobs::store::PgStore;
use crate::serve::events::EventLog;

/// How often the queue is read for new events.
const POLL: Duration = Duration::from_millis(200);
/// The most events read at once.
const BATCH: i64 = 1_000;

/// Stores what `watching` (this server's runner) emits and logs every event stored from now
/// on, until the log closes (the server stops). Blocking: run it on its own thread.
pub fn pump(mut queue: PgStore, mut watching: JobEvents, log: &EventLog) {
    let mut after = match queue.last_event() {
        Ok(seq) => seq,
        Err(err) => {
            tracing::error!(%err, "cannot read the shared queue's events; streams stay empty");
            return;
        }
    };
    while !log.is_closed() {
        if let Err(err) = queue.forward(&mut watching) {
            tracing::error!(%err, "could not store this server's events in the shared queue");
        }
        match queue.events_after(after, BATCH) {
            Ok(events) => {
                let full = events.len() as i64 == BATCH;
                for stored in events {
                    after = stored.seq;
                    log.push(stored.event);
                }
                if full {
                    continue;
                }
            }
            Err(err) => tracing::error!(%err, "could not read the shared queue's events"),
        }
        std::thread::sleep(POLL);
    }
}
