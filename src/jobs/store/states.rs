//! A job's state changes: the transitions its state allows (one guarded UPDATE each, so two
//! processes cannot both claim a job) and what each one records.

use rusqlite::params;

use super::{JobRecord, Store, StoreError, StoreResult, now_ms};
use crate::jobs::run::events::JobId;
use crate::jobs::store::state::JobState;

/// The states that may become `to`, as an SQL list (`'queued','interrupted'`): every store's
/// transitions are one UPDATE guarded by it.
pub(super) fn sources_of(to: JobState) -> String {
    JobState::ALL
        .iter()
        .filter(|s| s.can_become(to))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

impl Store {
    /// Moves `id` to `from` -> `to` if its state allows; the error names the state it was in.
    fn transition(&mut self, id: JobId, to: JobState, extra_sets: &str) -> StoreResult<()> {
        let in_list = sources_of(to);
        let sets = if extra_sets.is_empty() {
            String::new()
        } else {
            format!(", {extra_sets}")
        };
        let changed = self.sql(|c| {
            c.execute(
                &format!("UPDATE jobs SET state = ?2{sets} WHERE id = ?1 AND state IN ({in_list})"),
                params![id.0, to.as_str()],
            )
        })?;
        if changed == 1 {
            return Ok(());
        }
        let from = self.get(id)?.state;
        Err(StoreError::InvalidTransition { id, from, to })
    }

    /// A worker takes the job: queued/interrupted -> running, one more attempt.
    pub fn claim(&mut self, id: JobId) -> StoreResult<JobRecord> {
        let pid = i64::from(std::process::id());
        let now = now_ms();
        self.transition(
            id,
            JobState::Running,
            &format!(
                "started_ms = {now}, finished_ms = NULL, error = NULL,
                 attempts = attempts + 1, owner_pid = {pid}"
            ),
        )?;
        self.get(id)
    }

    pub fn mark_done(&mut self, id: JobId) -> StoreResult<()> {
        let now = now_ms();
        self.transition(
            id,
            JobState::Done,
            &format!("finished_ms = {now}, owner_pid = NULL"),
        )
    }

    pub fn mark_failed(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        self.transition(id, JobState::Failed, "owner_pid = NULL")?;
        let now = now_ms();
        self.sql(|c| {
            c.execute(
                "UPDATE jobs SET error = ?2, finished_ms = ?3 WHERE id = ?1",
                params![id.0, error, now],
            )
        })?;
        Ok(())
    }

    pub fn mark_cancelled(&mut self, id: JobId) -> StoreResult<()> {
        let now = now_ms();
        self.transition(
            id,
            JobState::Cancelled,
            &format!("finished_ms = {now}, owner_pid = NULL"),
        )
    }

    /// A running job stopped without finishing (its process is going away): run it again later.
    pub fn mark_interrupted(&mut self, id: JobId) -> StoreResult<()> {
        self.transition(id, JobState::Interrupted, "owner_pid = NULL")
    }

    /// A running job could not finish for a reason outside it (its output could not be
    /// written): it waits, interrupted, with the reason, to run again once that is fixed.
    pub fn mark_interrupted_by(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        self.mark_interrupted(id)?;
        self.sql(|c| {
            c.execute(
                "UPDATE jobs SET error = ?2 WHERE id = ?1",
                params![id.0, error],
            )
        })?;
        Ok(())
    }

    /// Retry: a failed, cancelled or interrupted job goes back to the end of the queue.
    /// Outputs already written stay recorded, so they are not produced again.
    pub fn requeue(&mut self, id: JobId) -> StoreResult<()> {
        self.transition(
            id,
            JobState::Queued,
            "error = NULL, finished_ms = NULL, owner_pid = NULL,
             position = (SELECT COALESCE(MAX(position), 0) + 1 FROM jobs)",
        )
    }
}
