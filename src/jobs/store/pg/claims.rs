//! The queue's operations in PostgreSQL. Claims take the first waiting row with `FOR UPDATE
//! SKIP LOCKED` (workers claiming together never wait for or take the same row) after putting
//! back jobs whose lease ended; a running job's changes are fenced by this process's lease.

use std::path::{Path, PathBuf};

use super::{COLUMNS, PgStore};
use crate::jobs::run::events::JobId;
use crate::jobs::spec::JobSpec;
use crate::jobs::store::ops::{JobStore, Lease, reordered};
use crate::jobs::store::state::JobState;
use crate::jobs::store::states::sources_of;
use crate::jobs::store::{JobRecord, StoreError, StoreResult, now_ms};

/// What a transition does to the `error` column.
enum ErrorText<'a> {
    Keep,
    Set(&'a str),
    Clear,
}

impl PgStore {
    /// Running jobs whose lease ended go back to the queue as interrupted (at their place).
    fn expire_leases(&mut self) -> StoreResult<()> {
        let expired = self.rows(
            "UPDATE pallaidium_jobs SET state = 'interrupted', lease_owner = NULL,
                 lease_until = NULL
             WHERE state = 'running' AND lease_until < now()
             RETURNING id",
            &[],
        )?;
        for row in expired {
            let id: i64 = row.get(0);
            tracing::warn!(
                job = id,
                "its worker's lease ended (the worker died or stalled): back in the queue"
            );
            self.rows(
                "UPDATE pallaidium_runs SET outcome = 'lease expired', ended_ms = $2
                 WHERE job = $1 AND outcome IS NULL",
                &[&id, &now_ms()],
            )?;
        }
        Ok(())
    }

    /// Takes `id` (or, with None, the first waiting job nobody else is taking) for this process.
    fn take(&mut self, id: Option<JobId>) -> StoreResult<Option<JobRecord>> {
        self.expire_leases()?;
        let wrap = self.wrap();
        let lease_s = self.options.lease.as_secs_f64();
        let (worker, now) = (self.worker.clone(), now_ms());
        let target = match id {
            Some(_) => "$4",
            None => {
                "(SELECT id FROM pallaidium_jobs WHERE state IN ('queued', 'interrupted')
                  ORDER BY position, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            }
        };
        let claim = format!(
            "UPDATE pallaidium_jobs SET state = 'running', started_ms = $2, finished_ms = NULL,
                 error = NULL, attempts = attempts + 1, lease_owner = $1,
                 lease_until = now() + make_interval(secs => $3), cancel_requested = FALSE
             WHERE id = {target} AND state IN ({})
             RETURNING id, attempts, pending_output",
            sources_of(JobState::Running)
        );
        let job = id.map_or(0, |j| j.0);
        let mut tx = self.client.transaction().map_err(&wrap)?;
        let claimed = if id.is_some() {
            tx.query_opt(&claim, &[&worker, &now, &lease_s, &job])
        } else {
            tx.query_opt(&claim, &[&worker, &now, &lease_s])
        }
        .map_err(&wrap)?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let (job, attempt, pending): (i64, i64, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        tx.execute(
            "INSERT INTO pallaidium_runs (job, attempt, worker, started_ms) VALUES ($1, $2, $3, $4)",
            &[&job, &attempt, &worker, &now],
        )
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        let id = JobId(job);
        self.claims.insert(id, attempt);
        // An output the previous holder renamed into place before it died counts as produced
        // (outputs are on a directory every worker shares); one that never appeared is forgotten.
        if let Some(path) = pending.map(PathBuf::from) {
            if path.is_file() {
                self.record_output(id, &path)?;
            } else {
                self.rows(
                    "UPDATE pallaidium_jobs SET pending_output = NULL WHERE id = $1",
                    &[&job],
                )?;
            }
        }
        self.get(id).map(Some)
    }

    /// One guarded UPDATE: `id` becomes `to` if its state allows, and, when this process holds
    /// its lease, only if it still does. `sets` are further assignments.
    fn transition(
        &mut self,
        id: JobId,
        to: JobState,
        sets: &str,
        error: ErrorText<'_>,
    ) -> StoreResult<()> {
        let fence = self.claims.get(&id).copied();
        let (replace, text) = match error {
            ErrorText::Keep => (false, None),
            ErrorText::Set(e) => (true, Some(e)),
            ErrorText::Clear => (true, None),
        };
        let query = format!(
            "UPDATE pallaidium_jobs SET state = $2, lease_owner = NULL, lease_until = NULL,
                 cancel_requested = FALSE,
                 error = CASE WHEN $5 THEN $6::text ELSE error END{sets}
             WHERE id = $1 AND state IN ({})
               AND ($4::bigint IS NULL OR (lease_owner = $3 AND attempts = $4))
             RETURNING id",
            sources_of(to)
        );
        let worker = self.worker.clone();
        let changed = self.rows(
            &query,
            &[&id.0, &to.as_str(), &worker, &fence, &replace, &text],
        )?;
        if changed.is_empty() {
            // A lost lease keeps its fence: nothing this process does to the job counts again.
            if fence.is_some() && self.get(id)?.state == JobState::Running {
                return Err(StoreError::LeaseLost(id));
            }
            let from = self.get(id)?.state;
            return Err(StoreError::InvalidTransition { id, from, to });
        }
        if let Some(attempt) = fence
            && to != JobState::Running
        {
            self.claims.remove(&id);
            self.rows(
                "UPDATE pallaidium_runs SET outcome = $3, ended_ms = $4
                 WHERE job = $1 AND attempt = $2",
                &[&id.0, &attempt, &to.as_str(), &now_ms()],
            )?;
        }
        Ok(())
    }

    /// An edit of a job's row by the worker running it: refused once its lease is gone.
    fn edit(
        &mut self,
        id: JobId,
        sets: &str,
        value: &(dyn postgres::types::ToSql + Sync),
    ) -> StoreResult<()> {
        let fence = self.claims.get(&id).copied();
        let worker = self.worker.clone();
        let changed = self.rows(
            &format!(
                "UPDATE pallaidium_jobs SET {sets} WHERE id = $1
                   AND ($3::bigint IS NULL OR (state = 'running' AND lease_owner = $4
                                              AND attempts = $3))
                 RETURNING id"
            ),
            &[&id.0, value, &fence, &worker],
        )?;
        match (changed.is_empty(), fence) {
            (false, _) => Ok(()),
            (true, Some(_)) => Err(StoreError::LeaseLost(id)),
            (true, None) => Err(StoreError::NotFound(id)),
        }
    }
}

impl JobStore for PgStore {
    fn enqueue_all(&mut self, specs: &[JobSpec]) -> StoreResult<Vec<JobId>> {
        let wrap = self.wrap();
        let jsons = specs
            .iter()
            .map(|spec| {
                serde_json::to_string(spec).map_err(|e| StoreError::Corrupt {
                    id: JobId(0),
                    message: e.to_string(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut tx = self.client.transaction().map_err(&wrap)?;
        let first: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM pallaidium_jobs",
                &[],
            )
            .map_err(&wrap)?
            .get(0);
        let insert = tx
            .prepare(
                "INSERT INTO pallaidium_jobs (spec, state, created_ms, position)
                 VALUES ($1, 'queued', $2, $3) RETURNING id",
            )
            .map_err(&wrap)?;
        let mut ids = Vec::with_capacity(specs.len());
        for (offset, json) in (0i64..).zip(&jsons) {
            let row = tx
                .query_one(&insert, &[json, &now_ms(), &(first + offset)])
                .map_err(&wrap)?;
            ids.push(JobId(row.get(0)));
        }
        tx.commit().map_err(&wrap)?;
        Ok(ids)
    }

    fn get(&mut self, id: JobId) -> StoreResult<JobRecord> {
        self.select(
            &format!("SELECT {COLUMNS} FROM pallaidium_jobs WHERE id = $1"),
            &[&id.0],
        )?
        .pop()
        .ok_or(StoreError::NotFound(id))
    }

    fn history(&mut self, limit: usize) -> StoreResult<Vec<JobRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select(
            &format!("SELECT {COLUMNS} FROM pallaidium_jobs ORDER BY id DESC LIMIT $1"),
            &[&limit],
        )
    }

    fn pending_ids(&mut self) -> StoreResult<Vec<JobId>> {
        self.pending_query()
    }

    fn first_pending(
        &mut self,
        wanted: &mut dyn FnMut(JobId) -> bool,
    ) -> StoreResult<Option<JobId>> {
        Ok(self.pending_query()?.into_iter().find(|&id| wanted(id)))
    }

    fn unfinished(&mut self) -> StoreResult<usize> {
        let n: i64 = self
            .rows(
                "SELECT COUNT(*) FROM pallaidium_jobs
                 WHERE state IN ('queued', 'interrupted', 'running')",
                &[],
            )?
            .first()
            .map_or(0, |r| r.get(0));
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn claim(&mut self, id: JobId) -> StoreResult<JobRecord> {
        match self.take(Some(id))? {
            Some(record) => Ok(record),
            None => {
                let from = self.get(id)?.state;
                Err(StoreError::InvalidTransition {
                    id,
                    from,
                    to: JobState::Running,
                })
            }
        }
    }

    fn claim_next(&mut self) -> StoreResult<Option<JobRecord>> {
        self.take(None)
    }

    fn mark_done(&mut self, id: JobId) -> StoreResult<()> {
        let sets = format!(", finished_ms = {}", now_ms());
        self.transition(id, JobState::Done, &sets, ErrorText::Keep)
    }

    fn mark_failed(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        let sets = format!(", finished_ms = {}", now_ms());
        self.transition(id, JobState::Failed, &sets, ErrorText::Set(error))
    }

    fn mark_cancelled(&mut self, id: JobId) -> StoreResult<()> {
        let sets = format!(", finished_ms = {}", now_ms());
        self.transition(id, JobState::Cancelled, &sets, ErrorText::Keep)
    }

    fn mark_interrupted(&mut self, id: JobId) -> StoreResult<()> {
        self.transition(id, JobState::Interrupted, "", ErrorText::Keep)
    }

    fn mark_interrupted_by(&mut self, id: JobId, error: &str) -> StoreResult<()> {
        self.transition(id, JobState::Interrupted, "", ErrorText::Set(error))
    }

    fn requeue(&mut self, id: JobId) -> StoreResult<()> {
        self.transition(
            id,
            JobState::Queued,
            ", finished_ms = NULL,
               position = (SELECT COALESCE(MAX(position), 0) + 1 FROM pallaidium_jobs)",
            ErrorText::Clear,
        )
    }

    fn update_spec(&mut self, id: JobId, spec: &JobSpec) -> StoreResult<()> {
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt {
            id,
            message: e.to_string(),
        })?;
        self.edit(id, "spec = $2", &json)
    }

    fn set_pending_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        let text = path.to_string_lossy().into_owned();
        self.edit(id, "pending_output = $2", &text)
    }

    fn record_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        let mut outputs = self.get(id)?.outputs;
        if !outputs.iter().any(|p| p == path) {
            outputs.push(path.to_path_buf());
        }
        let json = serde_json::to_string(&outputs).map_err(|e| StoreError::Corrupt {
            id,
            message: e.to_string(),
        })?;
        self.edit(id, "outputs = $2, pending_output = NULL", &json)
    }

    fn move_to(&mut self, id: JobId, index: usize) -> StoreResult<()> {
        let Some(order) = reordered(self.pending_query()?, id, index) else {
            let from = self.get(id)?.state;
            return Err(StoreError::InvalidTransition {
                id,
                from,
                to: JobState::Queued,
            });
        };
        let wrap = self.wrap();
        let ids: Vec<i64> = order.iter().map(|j| j.0).collect();
        // One statement: the waiting jobs take consecutive places from the first one's, in
        // the new order (a job claimed meanwhile keeps its row as it is).
        self.client
            .execute(
                "UPDATE pallaidium_jobs AS j SET position = base.first + o.ord - 1
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS o(id, ord),
                      (SELECT COALESCE(MIN(position), 1) AS first FROM pallaidium_jobs
                       WHERE state IN ('queued', 'interrupted')) AS base
                 WHERE j.id = o.id AND j.state IN ('queued', 'interrupted')",
                &[&ids],
            )
            .map_err(wrap)?;
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn poll_interval(&self) -> Option<std::time::Duration> {
        Some(self.options.poll)
    }

    fn heartbeat(&mut self, id: JobId) -> StoreResult<Lease> {
        let Some(attempt) = self.claims.get(&id).copied() else {
            return Ok(Lease::Lost);
        };
        let worker = self.worker.clone();
        let lease_s = self.options.lease.as_secs_f64();
        let renewed = self.rows(
            "UPDATE pallaidium_jobs SET lease_until = now() + make_interval(secs => $4)
             WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
             RETURNING cancel_requested",
            &[&id.0, &worker, &attempt, &lease_s],
        )?;
        Ok(match renewed.first().map(|r| r.get::<_, bool>(0)) {
            None => Lease::Lost,
            Some(true) => Lease::CancelRequested,
            Some(false) => Lease::Held,
        })
    }

    fn request_cancel(&mut self, id: JobId) -> StoreResult<bool> {
        let asked = self.rows(
            "UPDATE pallaidium_jobs SET cancel_requested = TRUE
             WHERE id = $1 AND state = 'running' RETURNING id",
            &[&id.0],
        )?;
        Ok(!asked.is_empty())
    }
}
