//! Where job events fan out: every watcher has its own unbounded queue, so none can fall behind
//! and miss an event (a bounded broadcast dropped thousands of `queued` events of a large
//! `--jobs` file before the first was read). Events are sent under one lock, so every watcher
//! sees them in the same order they were emitted.

use std::sync::Mutex;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::jobs::run::events::JobEvent;

/// A watcher's end: `recv().await` or `blocking_recv()`; `None` once the runner is gone.
pub type JobEvents = UnboundedReceiver<JobEvent>;

#[derive(Default)]
pub struct EventHub {
    /// None once closed: later subscribers get a queue that ends at once.
    watchers: Mutex<Option<Vec<UnboundedSender<JobEvent>>>>,
}

impl EventHub {
    pub fn new() -> Self {
        Self {
            watchers: Mutex::new(Some(Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<UnboundedSender<JobEvent>>>> {
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new watcher, seeing every event emitted from now on. It must be read (or dropped):
    /// its queue grows until it is.
    pub fn subscribe(&self) -> JobEvents {
        let (tx, rx) = unbounded_channel();
        if let Some(watchers) = self.lock().as_mut() {
            watchers.push(tx);
        }
        rx
    }

    /// Sends `event` to every watcher; watchers that went away are forgotten.
    pub fn emit(&self, event: JobEvent) {
        if let Some(watchers) = self.lock().as_mut() {
            watchers.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }

    /// No more events will come (the worker has ended): every watcher's queue ends after what
    /// it holds, so nobody waits forever for a job that will not finish.
    pub fn close(&self) {
        self.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::run::events::JobId;

    #[test]
    fn every_watcher_gets_every_event_in_order_however_many() {
        let hub = EventHub::new();
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        for i in 0..50_000 {
            hub.emit(JobEvent::Queued {
                job: JobId(i),
                position: 0,
            });
        }
        drop(b.blocking_recv());
        hub.close();
        let mut seen = 0;
        while let Some(event) = a.blocking_recv() {
            assert_eq!(event.job(), JobId(seen));
            seen += 1;
        }
        assert_eq!(seen, 50_000);
        let mut rest = 0;
        while b.blocking_recv().is_some() {
            rest += 1;
        }
        assert_eq!(rest, 49_999);
        assert!(hub.subscribe().blocking_recv().is_none(), "closed");
    }

    #[test]
    fn a_dropped_watcher_is_forgotten() {
        let hub = EventHub::new();
        drop(hub.subscribe());
        let mut kept = hub.subscribe();
        hub.emit(JobEvent::Cancelled { job: JobId(1) });
        assert_eq!(hub.lock().as_ref().map(Vec::len), Some(1));
        assert_eq!(
            kept.blocking_recv(),
            Some(JobEvent::Cancelled { job: JobId(1) })
        );
    }
}
