//! The PostgreSQL schema, created by whichever process connects first. Workers starting
//! together serialise on an advisory lock, so none sees a half-created schema.

use super::PgStore;
use crate::jobs::store::{StoreError, StoreResult};

/// The version this build writes; a newer one in the database is refused.
const VERSION: i32 = 1;
/// The advisory lock the schema is created under (any constant shared by every build).
const SCHEMA_LOCK: i64 = 0x7061_6c6c_6169;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS pallaidium_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pallaidium_jobs (
    id BIGSERIAL PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('queued','running','done','failed','cancelled','interrupted')),
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    outputs TEXT NOT NULL DEFAULT '[]',
    pending_output TEXT,
    error TEXT,
    position BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS pallaidium_jobs_waiting ON pallaidium_jobs (state, position, id);
CREATE TABLE IF NOT EXISTS pallaidium_runs (
    job BIGINT NOT NULL REFERENCES pallaidium_jobs (id),
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    outcome TEXT,
    PRIMARY KEY (job, attempt)
);
CREATE TABLE IF NOT EXISTS pallaidium_events (
    seq BIGSERIAL PRIMARY KEY,
    job BIGINT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
";

impl PgStore {
    pub(super) fn migrate(&mut self) -> StoreResult<()> {
        let wrap = self.wrap();
        let url = self.url.clone();
        let mut tx = self.client.transaction().map_err(&wrap)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(&wrap)?;
        tx.batch_execute(CREATE).map_err(&wrap)?;
        let found: Option<i32> = tx
            .query_opt("SELECT MAX(version) FROM pallaidium_schema", &[])
            .map_err(&wrap)?
            .and_then(|r| r.get(0));
        match found {
            Some(v) if v > VERSION => {
                return Err(StoreError::Unreachable {
                    url,
                    problem: format!(
                        "the queue has schema version {v}, newer than this pallaidium knows \
                         ({VERSION})"
                    ),
                    fix: "upgrade pallaidium on this machine".to_owned(),
                });
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO pallaidium_schema (version) VALUES ($1)",
                    &[&VERSION],
                )
                .map_err(&wrap)?;
            }
        }
        tx.commit().map_err(&wrap)
    }
}
