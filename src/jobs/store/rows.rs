//! Reading job rows: the column list, the raw row, and decoding its JSON columns into a
//! `JobRecord` (errors name the job); and whether the process that claimed a job is alive.

use rusqlite::Row;

use super::{JobRecord, StoreError, StoreResult};
use crate::jobs::run::events::JobId;
use crate::jobs::store::state::JobState;

pub(super) const COLUMNS: &str = "id, spec, state, created_ms, started_ms, finished_ms, outputs, error, \
                       position, attempts";

/// A row before its JSON columns are decoded (so decode errors name the job).
pub(super) struct RawRow {
    pub(super) id: i64,
    pub(super) spec: String,
    pub(super) state: String,
    pub(super) created_ms: i64,
    pub(super) started_ms: Option<i64>,
    pub(super) finished_ms: Option<i64>,
    pub(super) outputs: String,
    pub(super) error: Option<String>,
    pub(super) position: i64,
    pub(super) attempts: i64,
}

pub(super) fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        spec: r.get(1)?,
        state: r.get(2)?,
        created_ms: r.get(3)?,
        started_ms: r.get(4)?,
        finished_ms: r.get(5)?,
        outputs: r.get(6)?,
        error: r.get(7)?,
        position: r.get(8)?,
        attempts: r.get(9)?,
    })
}

impl RawRow {
    pub(super) fn decode(self) -> StoreResult<JobRecord> {
        let id = JobId(self.id);
        let corrupt = |message: String| StoreError::Corrupt { id, message };
        Ok(JobRecord {
            id,
            spec: serde_json::from_str(&self.spec).map_err(|e| corrupt(format!("spec: {e}")))?,
            state: JobState::parse(&self.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?,
            created_ms: self.created_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            outputs: serde_json::from_str(&self.outputs)
                .map_err(|e| corrupt(format!("outputs: {e}")))?,
            error: self.error,
            position: self.position,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
        })
    }
}
