//! The queue a runner works through: the store holds every job and its order; this holds which
//! of them this runner owns, whether it is paused, and the running job's cancel token.

use std::collections::BTreeSet;

use crate::engines::CancelToken;

use crate::jobs::run::events::JobId;
use crate::jobs::spec::JobSpec;
use crate::jobs::store::state::JobState;
use crate::jobs::store::{JobRecord, JobStore, StoreResult};

/// The job a worker is running now.
#[derive(Debug, Clone)]
pub struct Running {
    pub id: JobId,
    pub cancel: CancelToken,
    /// Stopped because the process is going away (Ctrl-C, SIGTERM): the job is put back as
    /// `interrupted` for `--resume`, not `cancelled`.
    pub shutdown: bool,
    /// The user cancelled it: it ends `cancelled` even if a shutdown follows (the TUI's "cancel
    /// them and quit").
    pub user_cancelled: bool,
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was waiting; it is cancelled now.
    Dequeued,
    /// It is running; it stops within one step.
    Signalled,
    /// Not this runner's, or already finished.
    NotPending,
}

/// Which jobs a runner takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// The jobs it queued or adopted (the TUI, headless runs, `serve` on SQLite).
    Own,
    /// Any waiting job of a shared queue, at most `limit` of them (`pallaidium worker`).
    Any { limit: Option<usize> },
    /// None: it only queues and watches; workers elsewhere run them (`serve --queue`).
    Nothing,
}

pub struct Queue {
    store: Box<dyn JobStore>,
    takes: Takes,
    /// How many jobs this runner has claimed.
    claimed: usize,
    owned: BTreeSet<JobId>,
    paused: bool,
    /// Why the queue stopped by itself (an output could not be written): nothing starts until
    /// it is unpaused or a job is retried, so a full disk does not fail every remaining job.
    halted: Option<String>,
    stopping: bool,
    running: Option<Running>,
}

impl Queue {
    /// A queue that runs the jobs it is given (`Takes::Own`).
    pub fn new(store: impl JobStore + 'static) -> Self {
        Self::taking(Box::new(store), Takes::Own)
    }

    pub fn taking(store: Box<dyn JobStore>, takes: Takes) -> Self {
        Self {
            store,
            takes,
            claimed: 0,
            owned: BTreeSet::new(),
            paused: false,
            halted: None,
            stopping: false,
            running: None,
        }
    }

    pub fn store_mut(&mut self) -> &mut dyn JobStore {
        self.store.as_mut()
    }

    /// Whether this runner waits on a queue other processes fill: its idle worker polls.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        match self.takes {
            Takes::Any { .. } => self.store.poll_interval(),
            Takes::Own | Takes::Nothing => None,
        }
    }

    /// How many jobs this runner has claimed, and whether it may claim more.
    pub fn claims(&self) -> (usize, bool) {
        let more = match self.takes {
            Takes::Any { limit } => limit.is_none_or(|n| self.claimed < n),
            Takes::Own => true,
            Takes::Nothing => false,
        };
        (self.claimed, more)
    }

    /// Whether `id` is one this runner would run or may cancel while it waits.
    fn waits_here(&self, id: JobId) -> bool {
        self.takes != Takes::Own || self.owned.contains(&id)
    }

    /// Persists jobs (all or none) and takes them on; returns each id and its queue position.
    pub fn push(&mut self, specs: &[JobSpec]) -> StoreResult<Vec<(JobId, usize)>> {
        let ids = self.store.enqueue_all(specs)?;
        self.owned.extend(ids.iter().copied());
        let place: std::collections::HashMap<JobId, usize> = self
            .order()?
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        Ok(ids
            .into_iter()
            .map(|id| (id, place.get(&id).copied().unwrap_or(0)))
            .collect())
    }

    /// Takes on every queued and interrupted job in the store (`--resume`).
    pub fn adopt_pending(&mut self) -> StoreResult<Vec<JobId>> {
        if self.takes != Takes::Own {
            // A shared queue's waiting jobs are everyone's: nothing to adopt.
            return Ok(Vec::new());
        }
        let ids = self.store.pending_ids()?;
        self.owned.extend(ids.iter().copied());
        Ok(ids)
    }

    /// This runner's waiting jobs, in queue order.
    pub fn order(&mut self) -> StoreResult<Vec<JobId>> {
        Ok(self
            .store
            .pending_ids()?
            .into_iter()
            .filter(|&id| self.waits_here(id))
            .collect())
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            self.halted = None;
        }
    }

    /// Starts nothing more until unpaused or a retry, saying why.
    pub fn halt(&mut self, reason: String) {
        self.halted = Some(reason);
    }

    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// No more jobs will start; the store keeps the waiting ones queued.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// The next job to run, claimed in the store, unless paused, stopping or busy.
    /// Jobs another process claimed meanwhile are skipped.
    pub fn take_next(&mut self) -> StoreResult<Option<(JobRecord, CancelToken)>> {
        if self.paused || self.halted.is_some() || self.stopping || self.running.is_some() {
            return Ok(None);
        }
        match self.takes {
            Takes::Own => {}
            Takes::Nothing => return Ok(None),
            Takes::Any { .. } => {
                if !self.claims().1 {
                    return Ok(None);
                }
                let Some(record) = self.store.claim_next()? else {
                    return Ok(None);
                };
                self.claimed += 1;
                return Ok(Some(self.start(record)));
            }
        }
        // One job at a time from the front: a batch of thousands is not re-read per job.
        while let Some(id) = {
            let owned = &self.owned;
            self.store.first_pending(&mut |id| owned.contains(&id))?
        } {
            self.owned.remove(&id);
            match self.store.claim(id) {
                Ok(record) => {
                    self.claimed += 1;
                    return Ok(Some(self.start(record)));
                }
                Err(err) => tracing::warn!(job = %id, %err, "skipping a job another run took"),
            }
        }
        Ok(None)
    }

    fn start(&mut self, record: JobRecord) -> (JobRecord, CancelToken) {
        let cancel = CancelToken::new();
        self.running = Some(Running {
            id: record.id,
            cancel: cancel.clone(),
            shutdown: false,
            user_cancelled: false,
        });
        (record, cancel)
    }

    /// The running job ended (the worker records how); returns whether it was stopped by a
    /// shutdown rather than cancelled by the user.
    pub fn finish_running(&mut self, id: JobId) -> bool {
        match self.running.take() {
            Some(r) if r.id == id => r.shutdown && !r.user_cancelled,
            other => {
                self.running = other;
                false
            }
        }
    }

    pub fn cancel(&mut self, id: JobId) -> StoreResult<CancelOutcome> {
        if let Some(running) = self.running.as_mut().filter(|r| r.id == id) {
            running.user_cancelled = true;
            running.cancel.cancel();
            return Ok(CancelOutcome::Signalled);
        }
        if self.takes == Takes::Own {
            if !self.owned.remove(&id) {
                return Ok(CancelOutcome::NotPending);
            }
            self.store.mark_cancelled(id)?;
            return Ok(CancelOutcome::Dequeued);
        }
        // A shared queue: a waiting job is cancelled here, a running one by its worker.
        match self.store.get(id)?.state {
            JobState::Queued | JobState::Interrupted => {
                self.store.mark_cancelled(id)?;
                Ok(CancelOutcome::Dequeued)
            }
            JobState::Running if self.store.request_cancel(id)? => Ok(CancelOutcome::Signalled),
            _ => Ok(CancelOutcome::NotPending),
        }
    }

    /// Ctrl-C / SIGTERM: start nothing more (waiting jobs stay queued in the store) and stop the
    /// running job, which goes back as interrupted. Returns the running job's id, if any.
    pub fn stop(&mut self) -> Option<JobId> {
        self.stopping = true;
        self.owned.clear();
        self.running.as_mut().map(|running| {
            running.shutdown = true;
            running.cancel.cancel();
            running.id
        })
    }

    /// The running job's lease is gone (another worker may run it now): stop it as a shutdown
    /// stops a job, without stopping the queue.
    pub fn abandon(&mut self, id: JobId) {
        if let Some(running) = self.running.as_mut().filter(|r| r.id == id) {
            running.shutdown = true;
            running.cancel.cancel();
        }
    }

    /// Puts a waiting job at `index` among the waiting jobs.
    pub fn move_to(&mut self, id: JobId, index: usize) -> StoreResult<()> {
        self.store.move_to(id, index)
    }

    /// A failed, cancelled or interrupted job goes back to the end of the queue.
    pub fn retry(&mut self, id: JobId) -> StoreResult<usize> {
        self.store.requeue(id)?;
        self.owned.insert(id);
        self.halted = None;
        let order = self.order()?;
        Ok(order.iter().position(|&j| j == id).unwrap_or(0))
    }

    /// Whether this runner still has work: a job running or waiting.
    pub fn has_work(&self) -> bool {
        self.running.is_some() || !self.owned.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::store::Store;
    use crate::jobs::store::state::JobState;

    fn queue_with(prompts: &[&str]) -> (Queue, Vec<JobId>) {
        let mut queue = Queue::new(Store::open_in_memory().unwrap());
        let specs: Vec<JobSpec> = prompts
            .iter()
            .map(|p| JobSpec {
                prompt: (*p).into(),
                ..JobSpec::default()
            })
            .collect();
        let ids = queue
            .push(&specs)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        (queue, ids)
    }

    fn run_next(queue: &mut Queue) -> Option<String> {
        let (record, _) = queue.take_next().unwrap()?;
        queue.store_mut().mark_done(record.id).unwrap();
        queue.finish_running(record.id);
        Some(record.spec.prompt)
    }

    #[test]
    fn jobs_run_in_order_one_at_a_time() {
        let (mut queue, ids) = queue_with(&["a", "b", "c"]);
        let (first, _) = queue.take_next().unwrap().unwrap();
        assert_eq!(first.spec.prompt, "a");
        assert!(
            queue.take_next().unwrap().is_none(),
            "one running job at a time"
        );
        queue.store_mut().mark_done(ids[0]).unwrap();
        queue.finish_running(ids[0]);
        queue.move_to(ids[2], 0).unwrap();
        assert_eq!(run_next(&mut queue).as_deref(), Some("c"));
        assert_eq!(run_next(&mut queue).as_deref(), Some("b"));
        assert_eq!(run_next(&mut queue), None);
        assert!(!queue.has_work());
    }

    #[test]
    fn pause_holds_the_queue() {
        let (mut queue, _) = queue_with(&["a"]);
        queue.set_paused(true);
        assert!(queue.take_next().unwrap().is_none());
        queue.set_paused(false);
        assert_eq!(run_next(&mut queue).as_deref(), Some("a"));
    }

    #[test]
    fn cancel_a_waiting_or_running_job() {
        let (mut queue, ids) = queue_with(&["a", "b"]);
        let (_, token) = queue.take_next().unwrap().unwrap();
        assert_eq!(queue.cancel(ids[1]).unwrap(), CancelOutcome::Dequeued);
        assert_eq!(
            queue.store_mut().get(ids[1]).unwrap().state,
            JobState::Cancelled
        );
        assert_eq!(queue.cancel(ids[0]).unwrap(), CancelOutcome::Signalled);
        assert!(token.is_cancelled());
        assert_eq!(queue.cancel(ids[1]).unwrap(), CancelOutcome::NotPending);
        queue.store_mut().mark_cancelled(ids[0]).unwrap();
        assert!(!queue.finish_running(ids[0]));
        assert_eq!(run_next(&mut queue), None);
    }

    #[test]
    fn retry_puts_a_failed_job_back_at_the_end() {
        let (mut queue, ids) = queue_with(&["a", "b"]);
        let (record, _) = queue.take_next().unwrap().unwrap();
        queue.store_mut().mark_failed(record.id, "boom").unwrap();
        queue.finish_running(record.id);
        assert_eq!(queue.retry(ids[0]).unwrap(), 1);
        assert_eq!(run_next(&mut queue).as_deref(), Some("b"));
        assert_eq!(run_next(&mut queue).as_deref(), Some("a"));
        assert_eq!(queue.store_mut().get(ids[0]).unwrap().attempts, 2);
        assert!(queue.retry(ids[0]).is_err(), "a done job cannot be retried");
    }

    #[test]
    fn stop_keeps_waiting_jobs_queued_and_interrupts_the_running_one() {
        let (mut queue, ids) = queue_with(&["a", "b"]);
        let (_, token) = queue.take_next().unwrap().unwrap();
        assert_eq!(queue.stop(), Some(ids[0]));
        assert!(token.is_cancelled());
        assert!(queue.finish_running(ids[0]), "stopped by shutdown");
        assert!(queue.take_next().unwrap().is_none());
        assert_eq!(
            queue.store_mut().get(ids[1]).unwrap().state,
            JobState::Queued
        );
    }

    #[test]
    fn a_halt_holds_the_queue_until_unpaused_or_retried() {
        let (mut queue, ids) = queue_with(&["a", "b", "c"]);
        let (record, _) = queue.take_next().unwrap().unwrap();
        queue.store_mut().mark_interrupted(record.id).unwrap();
        queue.finish_running(record.id);
        queue.halt("disk full".into());
        assert_eq!(queue.halted(), Some("disk full"));
        assert!(queue.take_next().unwrap().is_none());
        queue.set_paused(false);
        assert_eq!(run_next(&mut queue).as_deref(), Some("b"));
        queue.halt("disk full".into());
        queue.retry(ids[0]).unwrap();
        assert_eq!(run_next(&mut queue).as_deref(), Some("c"));
        assert_eq!(run_next(&mut queue).as_deref(), Some("a"));
    }

    #[test]
    fn cancel_then_stop_leaves_jobs_cancelled_not_interrupted() {
        let (mut queue, ids) = queue_with(&["a", "b"]);
        let (_, token) = queue.take_next().unwrap().unwrap();
        assert_eq!(queue.cancel(ids[0]).unwrap(), CancelOutcome::Signalled);
        assert_eq!(queue.cancel(ids[1]).unwrap(), CancelOutcome::Dequeued);
        assert_eq!(queue.stop(), Some(ids[0]));
        assert!(token.is_cancelled());
        assert!(
            !queue.finish_running(ids[0]),
            "the user's cancel wins over the shutdown that follows it"
        );
    }

    #[test]
    fn resume_adopts_queued_and_interrupted_jobs() {
        let (mut queue, ids) = queue_with(&["a", "b"]);
        let (record, _) = queue.take_next().unwrap().unwrap();
        queue.store_mut().mark_interrupted(record.id).unwrap();
        queue.finish_running(record.id);
        let mut fresh = Queue::new(Store::open_in_memory().unwrap());
        assert!(fresh.adopt_pending().unwrap().is_empty());
        let adopted = queue.adopt_pending().unwrap();
        assert_eq!(adopted, ids);
        assert_eq!(run_next(&mut queue).as_deref(), Some("a"));
    }
}
