//! Network transfers that end at once when cancelled: the blocking I/O runs on its own thread and
//! the caller waits in short slices, watching the caller's token and SIGINT/SIGTERM. A read that
//! waits on a silent server cannot be interrupted, so on cancel the thread is told to stop and
//! left to end by itself (at its next read or its read timeout); the caller returns `Cancelled`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::engines::CancelToken;
use crate::{Error, Result};

/// How often a waiting caller looks at the cancel flags.
const POLL: Duration = Duration::from_millis(50);

/// Cancels a fetch: the caller's token (the TUI's quit), or SIGINT/SIGTERM while it lives. The
/// signals are watched here because a download may run on a thread whose caller's own signal
/// loop is blocked waiting for it (headless submits on its only runtime thread).
pub struct FetchCancel {
    token: CancelToken,
    signalled: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl FetchCancel {
    pub fn watch(token: &CancelToken) -> Self {
        let signalled = Arc::new(AtomicBool::new(false));
        let ids = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
            .into_iter()
            .filter_map(|sig| signal_hook::flag::register(sig, Arc::clone(&signalled)).ok())
            .collect();
        Self {
            token: token.clone(),
            signalled,
            ids,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled() || self.signalled.load(Ordering::SeqCst)
    }
}

impl Drop for FetchCancel {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

enum Msg<T> {
    Advance(u64),
    Done(Result<T>),
}

/// What the I/O thread sees: whether to stop, and where to report bytes done.
pub struct IoCtx<T> {
    stop: Arc<AtomicBool>,
    tx: Sender<Msg<T>>,
}

impl<T> IoCtx<T> {
    /// The caller gave up: write nothing more, return.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// `done` bytes of the current file are on disk.
    pub fn advance(&self, done: u64) {
        let _ = self.tx.send(Msg::Advance(done));
    }

    /// Sleeps up to `d`, waking early when stopped; returns whether it was stopped.
    pub fn pause(&self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            if self.stopped() {
                return true;
            }
            std::thread::sleep(POLL.min(end.saturating_duration_since(std::time::Instant::now())));
        }
        self.stopped()
    }
}

/// Runs `work` on its own thread and returns its result, forwarding its progress to `advance`;
/// when `cancel` fires first, returns `Error::Cancelled` within about 50 ms.
pub fn run_io<T, F>(cancel: &FetchCancel, advance: &mut dyn FnMut(u64), work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&IoCtx<T>) -> Result<T> + Send + 'static,
{
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let ctx = IoCtx {
        stop: Arc::clone(&stop),
        tx,
    };
    std::thread::Builder::new()
        .name("pallaidium-fetch".into())
        .spawn(move || {
            let result = work(&ctx);
            let _ = ctx.tx.send(Msg::Done(result));
        })
        .map_err(|e| Error::job_failed(format!("cannot start the download thread: {e}")))?;
    loop {
        if cancel.is_cancelled() {
            stop.store(true, Ordering::SeqCst);
            return Err(Error::Cancelled);
        }
        match rx.recv_timeout(POLL) {
            Ok(Msg::Advance(done)) => advance(done),
            Ok(Msg::Done(result)) => return result,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::job_failed(
                    "the download thread ended without a result (it panicked); see the log",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_blocked_transfer_is_abandoned_at_once_on_cancel_and_told_to_stop() {
        let token = CancelToken::new();
        let cancel = FetchCancel::watch(&token);
        let (saw_stop_tx, saw_stop) = mpsc::channel();
        let t = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            t.cancel();
        });
        let started = Instant::now();
        let result: Result<()> = run_io(&cancel, &mut |_| {}, move |ctx| {
            // Stands in for a read on a silent server: blocked far longer than the test runs.
            let stopped = ctx.pause(Duration::from_secs(600));
            let _ = saw_stop_tx.send(stopped);
            Ok(())
        });
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(saw_stop.recv_timeout(Duration::from_secs(5)), Ok(true));
    }

    #[test]
    fn progress_is_forwarded_and_the_result_returned() {
        let cancel = FetchCancel::watch(&CancelToken::new());
        let mut seen = Vec::new();
        let result = run_io(&cancel, &mut |d| seen.push(d), |ctx| {
            ctx.advance(10);
            ctx.advance(20);
            Ok(7)
        });
        assert_eq!(result.unwrap(), 7);
        assert_eq!(seen, [10, 20]);
    }

    #[test]
    fn an_already_cancelled_fetch_starts_nothing() {
        let token = CancelToken::new();
        token.cancel();
        let cancel = FetchCancel::watch(&token);
        let result: Result<()> = run_io(&cancel, &mut |_| {}, |_| panic!("must not run"));
        assert!(matches!(result, Err(Error::Cancelled)));
    }
}
