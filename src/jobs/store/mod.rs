//! The durable queue: every job (spec, state, times, outputs, error) in SQLite under PALLAIDIUM_HOME.
//! WAL mode and a busy timeout let the TUI and a headless run share one database; `PRAGMA
//! user_version` numbers the applied migrations.

pub mod health;
mod migrations;
pub mod ops;
pub mod pg;
pub mod state;

pub use ops::{JobStore, Lease};
pub use pg::{PgOptions, PgStore};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::jobs::run::events::JobId;
use crate::jobs::spec::JobSpec;
use crate::jobs::store::state::JobState;
use crate::platform::process::process_alive;
use migrations::{MIGRATIONS, Step};

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "queue database {path} has schema version {found}, newer than this pallaidium knows ({known}); \
         upgrade pallaidium or point PALLAIDIUM_HOME elsewhere"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("job {0} does not exist (see `pallaidium --headless --history`)")]
    NotFound(JobId),
    #[error("job {id} is {from}; it cannot become {to}")]
    InvalidTransition {
        id: JobId,
        from: JobState,
        to: JobState,
    },
    #[error("job {id}: stored data is corrupt: {message}")]
    Corrupt { id: JobId, message: String },
    #[error("job queue {url}: {source}")]
    Postgres {
        /// The queue's URL without its password.
        url: String,
        #[source]
        source: postgres::Error,
    },
    /// The PostgreSQL queue at `url` cannot be used at all (a bad URL, no server, a refused
    /// login): `fix` says what to do.
    #[error("job queue {url}: {problem}; {fix}")]
    Unreachable {
        url: String,
        problem: String,
        fix: String,
    },
    #[error(
        "job {0}: this worker's lease on it ended (it did not renew it in time) and the job went \
         back to the queue; the result of this run is dropped"
    )]
    LeaseLost(JobId),
}

impl From<StoreError> for crate::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) | StoreError::InvalidTransition { .. } => {
                crate::Error::bad_input(err.to_string())
            }
            StoreError::TooNew { .. } | StoreError::Unreachable { .. } => {
                crate::Error::bad_input(err.to_string())
            }
            // A damaged file or a home it cannot live in fails every run: name the fix (exit 2).
            StoreError::Sqlite {
                ref path,
                ref source,
            } => match crate::jobs::store::health::unusable(path, source) {
                Some(fix) => crate::Error::bad_input(fix),
                None => crate::Error::job_failed(err.to_string()),
            },
            _ => crate::Error::job_failed(err.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One row of the queue, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Files renamed into place, in the order they were written.
    pub outputs: Vec<PathBuf>,
    pub error: Option<String>,
    pub position: i64,
    pub attempts: u32,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `op` again while SQLite says the database is busy, for up to the busy timeout.
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database, applies migrations, and recovers rows left
    /// `running` by a process that no longer exists: they become `interrupted`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            // A missing folder surfaces as the sqlite error below, with the path in it.
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path.to_path_buf(), true)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> StoreResult<Self> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path, false)
    }

    fn init(conn: Connection, path: PathBuf, wal: bool) -> StoreResult<Self> {
        let mut store = Self { conn, path };
        store.sql(|c| c.busy_timeout(BUSY_TIMEOUT))?;
        if wal {
            // Switching to WAL needs the file to itself and SQLite answers "locked" at once
            // instead of calling the busy handler, so processes starting together retry here.
            store.sql(|c| retry_busy(|| c.pragma_update(None, "journal_mode", "WAL")))?;
            store.sql(|c| c.pragma_update(None, "synchronous", "NORMAL"))?;
        }
        store.migrate()?;
        store.recover()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        f(&self.conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    pub fn schema_version(&self) -> StoreResult<i64> {
        self.sql(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
    }

    fn migrate(&mut self) -> StoreResult<()> {
        let known = MIGRATIONS.len() as i64;
        if self.schema_version()? == known {
            return Ok(());
        }
        // The version is read again under a write lock taken up front (BEGIN IMMEDIATE): two
        // processes starting on a fresh database would otherwise both see version 0 and the
        // second would fail with "table jobs already exists". The busy timeout makes it wait.
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.begin_write().map_err(wrap)?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(wrap)?;
        if found > known {
            return Err(StoreError::TooNew {
                path: path.clone(),
                found,
                known,
            });
        }
        for (index, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            match step {
                Step::Sql(sql) => tx.execute_batch(sql),
                Step::Rows(rewrite) => rewrite(&tx),
            }
            .map_err(wrap)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)
                .map_err(wrap)?;
            tracing::debug!(version = index + 1, "queue database migrated");
        }
        // Every step and its version number commit together, or none does.
        tx.commit().map_err(wrap)
    }

    /// A transaction that writes: the write lock is taken at BEGIN (waiting up to the busy
    /// timeout), so it cannot fail half-way when another process wrote since it first read.
    fn begin_write(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    /// Rows `running` under a dead process become `interrupted`; a pending output that made it
    /// into place before the crash is recorded, so it is never produced twice.
    fn recover(&mut self) -> StoreResult<()> {
        let running: Vec<(i64, Option<i64>)> = self.sql(|c| {
            let mut stmt = c.prepare("SELECT id, owner_pid FROM jobs WHERE state = 'running'")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })?;
        for (id, pid) in running {
            if pid.is_some_and(process_alive) {
                continue;
            }
            tracing::warn!(
                job = id,
                "job was running when its process died; marked interrupted"
            );
            self.sql(|c| {
                c.execute(
                    "UPDATE jobs SET state = 'interrupted', owner_pid = NULL
                     WHERE id = ?1 AND state = 'running'",
                    [id],
                )
            })?;
        }
        let pending: Vec<(i64, String)> = self.sql(|c| {
            let mut stmt = c.prepare(
                "SELECT id, pending_output FROM jobs
                 WHERE pending_output IS NOT NULL AND state != 'running'",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })?;
        for (id, path) in pending {
            let path = PathBuf::from(path);
            if path.is_file() {
                self.record_output(JobId(id), &path)?;
            } else {
                self.sql(|c| {
                    c.execute("UPDATE jobs SET pending_output = NULL WHERE id = ?1", [id])
                })?;
            }
        }
        Ok(())
    }

    /// Persists one job at the end of the queue.
    pub fn enqueue(&mut self, spec: &JobSpec) -> StoreResult<JobId> {
        Ok(self.enqueue_all(std::slice::from_ref(spec))?[0])
    }

    /// Persists jobs at the end of the queue, all or none.
    pub fn enqueue_all(&mut self, specs: &[JobSpec]) -> StoreResult<Vec<JobId>> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.begin_write().map_err(wrap)?;
        let mut ids = Vec::with_capacity(specs.len());
        {
            let first: i64 = tx
                .query_row("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs", [], |r| {
                    r.get(0)
                })
                .map_err(wrap)?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO jobs (spec, state, created_ms, position)
                     VALUES (?1, 'queued', ?2, ?3)",
                )
                .map_err(wrap)?;
            for (offset, spec) in (0i64..).zip(specs) {
                let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt {
                    id: JobId(0),
                    message: e.to_string(),
                })?;
                insert
                    .execute(params![json, now_ms(), first + offset])
                    .map_err(wrap)?;
                ids.push(JobId(tx.last_insert_rowid()));
            }
        }
        tx.commit().map_err(wrap)?;
        Ok(ids)
    }

    pub fn get(&self, id: JobId) -> StoreResult<JobRecord> {
        let row = self.sql(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id.0],
                raw_row,
            )
            .optional()
        })?;
        row.ok_or(StoreError::NotFound(id))?.decode()
    }

    /// Every job, newest first (the history), at most `limit`.
    pub fn history(&self, limit: usize) -> StoreResult<Vec<JobRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select(&format!(
            "SELECT {COLUMNS} FROM jobs ORDER BY id DESC LIMIT {limit}"
        ))
    }

    /// Jobs waiting to run (queued and interrupted), in queue order.
    pub fn pending(&self) -> StoreResult<Vec<JobRecord>> {
        self.select(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'interrupted')
             ORDER BY position, id"
        ))
    }

    /// The ids of the waiting jobs, in queue order (no row decoded: cheap for large queues).
    pub fn pending_ids(&self) -> StoreResult<Vec<JobId>> {
        self.sql(|c| {
            let mut stmt = c.prepare(
                "SELECT id FROM jobs WHERE state IN ('queued', 'interrupted')
                 ORDER BY position, id",
            )?;
            stmt.query_map([], |r| r.get(0).map(JobId))?.collect()
        })
    }

    /// The first waiting job, in queue order, that `wanted` accepts (stops reading there).
    pub fn first_pending(
        &self,
        mut wanted: impl FnMut(JobId) -> bool,
    ) -> StoreResult<Option<JobId>> {
        self.sql(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM jobs WHERE state IN ('queued', 'interrupted')
                 ORDER BY position, id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id = JobId(row.get(0)?);
                if wanted(id) {
                    return Ok(Some(id));
                }
            }
            Ok(None)
        })
    }

    /// Jobs queued, interrupted or running.
    pub fn unfinished(&self) -> StoreResult<usize> {
        let n: i64 = self.sql(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'interrupted', 'running')",
                [],
                |r| r.get(0),
            )
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn select(&self, query: &str) -> StoreResult<Vec<JobRecord>> {
        let raws: Vec<RawRow> = self.sql(|c| {
            let mut stmt = c.prepare(query)?;
            stmt.query_map([], raw_row)?.collect()
        })?;
        raws.into_iter().map(RawRow::decode).collect()
    }
}

mod rows;

mod edits;

mod states;

use rows::{COLUMNS, RawRow, raw_row};

#[cfg(test)]
mod tests;
