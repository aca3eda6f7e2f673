//! Whether the queue database can be used, and what to do when it cannot. A damaged file ("file
//! is not a database") or a home where it cannot be created fails every run the same way, so both
//! are bad input (exit 2) whose message names the fix; doctor checks the same before any run.

use std::path::Path;

use rusqlite::ErrorCode;

/// What is wrong with the database, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

/// The message for an SQLite error that no retry can cure (a damaged file, a folder that cannot
/// hold it), or None for one that may pass (busy, full disk, a failed statement).
pub fn unusable(path: &Path, err: &rusqlite::Error) -> Option<String> {
    classify(path, err).map(|u| u.to_string())
}

fn classify(path: &Path, err: &rusqlite::Error) -> Option<Unusable> {
    match err.sqlite_error_code()? {
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => Some(damaged(path, err)),
        ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
            Some(cannot_open(path, err))
        }
        _ => None,
    }
}

fn damaged(path: &Path, why: &dyn std::fmt::Display) -> Unusable {
    let p = path.display();
    Unusable {
        problem: format!("the queue database {p} is damaged ({why})"),
        fix: format!(
            "move it aside (`mv {p} {p}.broken`, and its {p}-wal and {p}-shm files if present) \
             and run again: a new, empty queue is created (the old job history stays in the moved file)"
        ),
    }
}

fn cannot_open(path: &Path, why: &dyn std::fmt::Display) -> Unusable {
    let folder = path.parent().unwrap_or(path).display();
    Unusable {
        problem: format!("cannot open the queue database {} ({why})", path.display()),
        fix: format!(
            "its folder {folder} must exist (or be creatable) and be writable: point \
             PALLAIDIUM_HOME at a folder you can write"
        ),
    }
}

/// Doctor's check: an existing database opens read-only and passes SQLite's quick_check. A
/// missing one is fine (the first run creates it).
pub fn check(path: &Path) -> Result<(), Unusable> {
    if !path.exists() {
        return Ok(());
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let explain = |e: rusqlite::Error| classify(path, &e).unwrap_or_else(|| damaged(path, &e));
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(explain)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(explain)?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(damaged(path, &format!("quick_check: {verdict}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_named_with_the_move_aside_fix() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("queue.sqlite3");
        assert!(check(&db).is_ok(), "a missing database is created later");
        std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
        let msg = check(&db).unwrap_err().to_string();
        assert!(msg.contains("damaged") && msg.contains("mv "), "{msg}");
        assert!(msg.contains(&db.display().to_string()), "{msg}");
    }

    #[test]
    fn a_sound_database_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.sqlite3");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        assert_eq!(check(&db), Ok(()));
    }
}
