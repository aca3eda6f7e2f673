//! `JobStore`: the operations a queue is made of, whatever holds it. SQLite (`Store`, one
//! machine, the embedded default) and PostgreSQL (`PgStore`, many workers on many machines)
//! implement the same ones, so the runner, the server and the worker never know which it is.

use std::path::Path;
use std::time::Duration;

use super::{JobRecord, Store, StoreResult};
use crate::jobs::run::events::JobId;
use crate::jobs::spec::JobSpec;

/// What a heartbeat learned about the lease of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still ours, extended.
    Held,
    /// Still ours, and someone asked to cancel the job.
    CancelRequested,
    /// No longer ours (it expired and the job went back to the queue): stop working on it.
    Lost,
}

pub trait JobStore: Send {
    /// Persists jobs at the end of the queue, all or none.
    fn enqueue_all(&mut self, specs: &[JobSpec]) -> StoreResult<Vec<JobId>>;
    fn get(&mut self, id: JobId) -> StoreResult<JobRecord>;
    /// Every job, newest first, at most `limit`.
    fn history(&mut self, limit: usize) -> StoreResult<Vec<JobRecord>>;
    /// The ids of the waiting jobs (queued and interrupted), in queue order.
    fn pending_ids(&mut self) -> StoreResult<Vec<JobId>>;
    /// The first waiting job, in queue order, that `wanted` accepts.
    fn first_pending(
        &mut self,
        wanted: &mut dyn FnMut(JobId) -> bool,
    ) -> StoreResult<Option<JobId>>;
    /// Jobs queued, interrupted or running: the work not finished yet.
    fn unfinished(&mut self) -> StoreResult<usize>;

    /// This process takes `id`: queued/interrupted -> running, one more attempt.
    fn claim(&mut self, id: JobId) -> StoreResult<JobRecord>;
    fn mark_done(&mut self, id: JobId) -> StoreResult<()>;
    fn mark_failed(&mut self, id: JobId, error: &str) -> StoreResult<()>;
    fn mark_cancelled(&mut self, id: JobId) -> StoreResult<()>;
    /// A running job stopped without finishing: run it again later.
    fn mark_interrupted(&mut self, id: JobId) -> StoreResult<()>;
    /// Interrupted for a reason outside the job (its output could not be written).
    fn mark_interrupted_by(&mut self, id: JobId, error: &str) -> StoreResult<()>;
    /// Retry: a failed, cancelled or interrupted job goes back to the end of the queue.
    fn requeue(&mut self, id: JobId) -> StoreResult<()>;

    fn update_spec(&mut self, id: JobId, spec: &JobSpec) -> StoreResult<()>;
    /// Notes the final name an output is about to be renamed to (see `record_output`).
    fn set_pending_output(&mut self, id: JobId, path: &Path) -> StoreResult<()>;
    /// Records an output that is in place under its final name.
    fn record_output(&mut self, id: JobId, path: &Path) -> StoreResult<()>;
    /// Puts a waiting job at `index` (0 = next) among the waiting jobs.
    fn move_to(&mut self, id: JobId, index: usize) -> StoreResult<()>;

    /// Whether other processes, on this machine or others, take jobs from this queue (a worker
    /// then claims any waiting job, and polls for new ones, instead of only the jobs it queued).
    fn is_shared(&self) -> bool {
        false
    }

    /// How often an idle worker looks for new jobs another process queued.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// Claims the first waiting job, whoever queued it; None when nothing waits.
    fn claim_next(&mut self) -> StoreResult<Option<JobRecord>> {
        while let Some(id) = self.first_pending(&mut |_| true)? {
            match self.claim(id) {
                Ok(record) => return Ok(Some(record)),
                // Another process took it between the read and the claim: the next one.
                Err(super::StoreError::InvalidTransition { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// Extends the lease on a running job of this process. A store whose claims live as long
    /// as the claiming process (SQLite: the owner's pid) has nothing to extend.
    fn heartbeat(&mut self, _id: JobId) -> StoreResult<Lease> {
        Ok(Lease::Held)
    }

    /// Asks whoever runs `id` to cancel it; false when this store cannot reach other processes.
    fn request_cancel(&mut self, _id: JobId) -> StoreResult<bool> {
        Ok(false)
    }
}

/// The waiting jobs' new order once `id` moves to `index`, or None when `id` is not waiting.
pub(super) fn reordered(mut order: Vec<JobId>, id: JobId, index: usize) -> Option<Vec<JobId>> {
    let current = order.iter().position(|&j| j == id)?;
    order.remove(current);
    order.insert(index.min(order.len()), id);
    Some(order)
}

impl JobStore for Store {
    fn enqueue_all(&mut self, specs: &[JobSpec]) -> StoreResult<Vec<JobId>> {
        Store::enqueue_all(self, specs)
    }
    fn get(&mut self, id: JobId) -> StoreResult<JobRecord> {
        Store::get(self, id)
    }
    fn history(&mut self, limit: usize) -> StoreResult<Vec<JobRecord>> {
        Store::history(self, limit)
    }
    fn pending_ids(&mut self) -> StoreResult<Vec<JobId>> {
        Store::pending_ids(self)
    }
    fn first_pending(
        &mut self,
        wanted: &mut dyn FnMut(JobId) -> bool,
    ) -> StoreResult<Option<JobId>> {
        Store::first_pending(self, wanted)
    }
    fn unfinished(&mut self) -> StoreResult<usize> {
        Store::unfinished(self)
    }
    fn claim(&mut self, id: JobId) -> StoreResult<JobRecord> {
        Store::claim(self, id)
    }
    fn mark_done(&mut self, id: JobId) -> StoreResult<()> {
        Store::mark_done(self, id)
    }
    fn mark_failed(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        Store::mark_failed(self, id, error)
    }
    fn mark_cancelled(&mut self, id: JobId) -> StoreResult<()> {
        Store::mark_cancelled(self, id)
    }
    fn mark_interrupted(&mut self, id: JobId) -> StoreResult<()> {
        Store::mark_interrupted(self, id)
    }
    fn mark_interrupted_by(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        Store::mark_interrupted_by(self, id, error)
    }
    fn requeue(&mut self, id: JobId) -> StoreResult<()> {
        Store::requeue(self, id)
    }
    fn update_spec(&mut self, id: JobId, spec: &JobSpec) -> StoreResult<()> {
        Store::update_spec(self, id, spec)
    }
    fn set_pending_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        Store::set_pending_output(self, id, path)
    }
    fn record_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        Store::record_output(self, id, path)
    }
    fn move_to(&mut self, id: JobId, index: usize) -> StoreResult<()> {
        Store::move_to(self, id, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_moves_one_job_and_keeps_the_rest_in_order() {
        let ids: Vec<JobId> = (1..=4).map(JobId).collect();
        let moved = reordered(ids.clone(), JobId(3), 0).unwrap();
        assert_eq!(moved, vec![JobId(3), JobId(1), JobId(2), JobId(4)]);
        let last = reordered(ids.clone(), JobId(1), 99).unwrap();
        assert_eq!(last, vec![JobId(2), JobId(3), JobId(4), JobId(1)]);
        assert_eq!(reordered(ids, JobId(9), 0), None);
    }

    #[test]
    fn the_sqlite_store_claims_the_first_waiting_job_of_anyone() {
        let mut store = Store::open_in_memory().unwrap();
        let spec = JobSpec {
            prompt: "a".into(),
            ..JobSpec::default()
        };
        let ids = store.enqueue_all(&[spec.clone(), spec]).unwrap();
        let dyn_store: &mut dyn JobStore = &mut store;
        assert_eq!(dyn_store.unfinished().unwrap(), 2);
        let first = dyn_store.claim_next().unwrap().unwrap();
        assert_eq!(first.id, ids[0]);
        assert_eq!(dyn_store.heartbeat(first.id).unwrap(), Lease::Held);
        assert_eq!(dyn_store.claim_next().unwrap().unwrap().id, ids[1]);
        assert!(dyn_store.claim_next().unwrap().is_none());
        assert_eq!(dyn_store.unfinished().unwrap(), 2, "both run");
        dyn_store.mark_done(ids[0]).unwrap();
        assert_eq!(dyn_store.unfinished().unwrap(), 1);
    }
}
