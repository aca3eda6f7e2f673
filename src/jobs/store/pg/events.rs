//! The event stream in PostgreSQL: every process on the queue appends its runner's events (the
//! headless JSON lines), and a server reads them in order to stream jobs that run elsewhere.

use tokio::sync::mpsc::error::TryRecvError;

use super::PgStore;
use crate::jobs::run::event_hub::JobEvents;
use crate::jobs::run::events::{JobEvent, JobId};
use crate::jobs::store::ops::JobStore;
use crate::jobs::store::state::JobState;
use crate::jobs::store::{StoreError, StoreResult, now_ms};

/// One stored event and its place in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: JobEvent,
}

impl PgStore {
    /// Appends `events`, in order, in one transaction.
    pub fn append_events(&mut self, events: &[JobEvent]) -> StoreResult<()> {
        let wrap = self.wrap();
        let mut tx = self.client.transaction().map_err(&wrap)?;
        let insert = tx
            .prepare("INSERT INTO pallaidium_events (job, body, at_ms) VALUES ($1, $2, $3)")
            .map_err(&wrap)?;
        for event in events {
            tx.execute(&insert, &[&event.job().0, &event.to_json_line(), &now_ms()])
                .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)
    }

    /// Appends what a runner emitted since the last call; returns false once the runner is gone
    /// (its queue ended). A `cancelled` event of a job that is not cancelled (a worker stopping
    /// gave it back to the queue) is no news for anyone watching it: it is left out.
    pub fn forward(&mut self, events: &mut JobEvents) -> StoreResult<bool> {
        let mut batch = Vec::new();
        let open = loop {
            match events.try_recv() {
                Ok(JobEvent::Cancelled { job }) if self.get(job)?.state != JobState::Cancelled => {}
                Ok(event) => batch.push(event),
                Err(TryRecvError::Empty) => break true,
                Err(TryRecvError::Disconnected) => break false,
            }
        };
        if !batch.is_empty() {
            self.append_events(&batch)?;
        }
        Ok(open)
    }

    /// The number of the newest stored event (0: none yet).
    pub fn last_event(&mut self) -> StoreResult<i64> {
        Ok(self
            .rows("SELECT COALESCE(MAX(seq), 0) FROM pallaidium_events", &[])?
            .first()
            .map_or(0, |r| r.get(0)))
    }

    /// Up to `limit` events after number `after`, oldest first.
    ///
    /// A sequence number is taken when a writer inserts, but becomes visible when it commits:
    /// a reader that jumped past a number still uncommitted would never see that event. So
    /// events stop before the first gap younger than a few seconds (an old gap is a rolled
    /// back insert and is passed).
    pub fn events_after(&mut self, after: i64, limit: i64) -> StoreResult<Vec<StoredEvent>> {
        let rows = self.rows(
            "SELECT seq, job, body, at_ms FROM pallaidium_events WHERE seq > $1
             ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )?;
        let fresh = now_ms() - 5_000;
        let mut expected = after + 1;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let (seq, job, body, at_ms): (i64, i64, String, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if seq != expected && at_ms > fresh {
                break;
            }
            expected = seq + 1;
            let event = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                id: JobId(job),
                message: format!("event {seq}: {e}"),
            })?;
            events.push(StoredEvent { seq, event });
        }
        Ok(events)
    }
}
