//! Edits of one job's row besides its state: its spec, its outputs (noted before they appear,
//! recorded once in place) and its place among the waiting jobs.

use std::path::Path;

use rusqlite::params;

use super::{JobSpec, Store, StoreError, StoreResult};
use crate::jobs::run::events::JobId;
use crate::jobs::store::state::JobState;

impl Store {
    /// Replaces a job's spec (e.g. to record the resolved seed).
    pub fn update_spec(&mut self, id: JobId, spec: &JobSpec) -> StoreResult<()> {
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt {
            id,
            message: e.to_string(),
        })?;
        let changed = self.sql(|c| {
            c.execute(
                "UPDATE jobs SET spec = ?2 WHERE id = ?1",
                params![id.0, json],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    /// Notes the final name an output is about to be renamed to, so a crash between the rename
    /// and `record_output` still counts the file as produced (see `recover`).
    pub fn set_pending_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        let text = path.to_string_lossy().into_owned();
        self.sql(|c| {
            c.execute(
                "UPDATE jobs SET pending_output = ?2 WHERE id = ?1",
                params![id.0, text],
            )
        })?;
        Ok(())
    }

    /// Records an output that is in place under its final name.
    pub fn record_output(&mut self, id: JobId, path: &Path) -> StoreResult<()> {
        let mut outputs = self.get(id)?.outputs;
        if !outputs.iter().any(|p| p == path) {
            outputs.push(path.to_path_buf());
        }
        let json = serde_json::to_string(&outputs).map_err(|e| StoreError::Corrupt {
            id,
            message: e.to_string(),
        })?;
        self.sql(|c| {
            c.execute(
                "UPDATE jobs SET outputs = ?2, pending_output = NULL WHERE id = ?1",
                params![id.0, json],
            )
        })?;
        Ok(())
    }

    /// Puts a waiting job at `index` (0 = next) among the waiting jobs.
    pub fn move_to(&mut self, id: JobId, index: usize) -> StoreResult<()> {
        let Some(order) = super::ops::reordered(self.pending_ids()?, id, index) else {
            let from = self.get(id)?.state;
            return Err(StoreError::InvalidTransition {
                id,
                from,
                to: JobState::Queued,
            });
        };
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.begin_write().map_err(wrap)?;
        let base: i64 = tx
            .query_row("SELECT COALESCE(MIN(position), 1) FROM jobs WHERE state IN ('queued','interrupted')", [], |r| r.get(0))
            .map_err(wrap)?;
        for (offset, job) in order.iter().enumerate() {
            tx.execute(
                "UPDATE jobs SET position = ?2 WHERE id = ?1",
                params![job.0, base + offset as i64],
            )
            .map_err(wrap)?;
        }
        tx.commit().map_err(wrap)?;
        Ok(())
    }
}
