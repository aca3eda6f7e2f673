//! The schema's steps, applied in order; `user_version` = how many have run. Append, never edit.

use rusqlite::{Transaction, params};

use crate::jobs::spec::JobSpec;

/// One step: SQL, or a rewrite of rows in Rust.
pub(super) enum Step {
    Sql(&'static str),
    Rows(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

pub(super) const MIGRATIONS: &[Step] = &[
    // 1: the jobs table.
    Step::Sql(
        "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        spec TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('queued','running','done','failed','cancelled','interrupted')),
        created_ms INTEGER NOT NULL,
        started_ms INTEGER,
        finished_ms INTEGER,
        outputs TEXT NOT NULL DEFAULT '[]',
        pending_output TEXT,
        error TEXT,
        position INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner_pid INTEGER
    );
    CREATE INDEX jobs_state_position ON jobs (state, position);",
    ),
    // 2: specs in the family shape (`JobSpec::params`) instead of every field side by side.
    Step::Rows(specs_to_family_params),
];

/// Rewrites each flat spec in today's shape. A row that does not parse is left as it is (it is
/// reported as corrupt when read, naming the job), so one bad row cannot block the upgrade.
fn specs_to_family_params(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String)> = tx
        .prepare("SELECT id, spec FROM jobs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE jobs SET spec = ?1 WHERE id = ?2")?;
    for (id, text) in rows {
        let converted =
            serde_json::from_str::<JobSpec>(&text).and_then(|spec| serde_json::to_string(&spec));
        match converted {
            Ok(json) => {
                update.execute(params![json, id])?;
            }
            Err(e) => tracing::warn!(job = id, "spec left as it was: it does not parse ({e})"),
        }
    }
    Ok(())
}
