//! The queue in PostgreSQL, shared by many workers on many machines (`--queue postgres://...`).
//! The same rows as SQLite's, plus each running job's lease: who holds it (`lease_owner`, one
//! name per worker process) and until when (`lease_until`, renewed by heartbeats). A job whose
//! lease ends goes back to the queue, so a worker that died loses nothing; every change a
//! worker makes to a job it runs is fenced by its lease (owner and attempt), so a worker that
//! lost its lease cannot finish the job a second time. `pallaidium_runs` keeps one row per
//! claim (who ran which attempt, and how it ended); `pallaidium_events` the event stream.

mod claims;
mod events;
mod schema;
pub mod test_env;

use std::collections::HashMap;
use std::time::Duration;

use postgres::{Client, NoTls, Row};

use super::rows::RawRow;
use super::{JobRecord, StoreError, StoreResult};
use crate::jobs::run::events::JobId;

pub use events::StoredEvent;

/// The columns every read decodes, in `RawRow`'s order.
const COLUMNS: &str = "id, spec, state, created_ms, started_ms, finished_ms, outputs, error, \
                       position, attempts";

/// How long a claim lasts without a heartbeat, and how often idle workers look for jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgOptions {
    pub lease: Duration,
    pub poll: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
        }
    }
}

pub struct PgStore {
    client: Client,
    /// The URL without its password, for messages.
    url: String,
    options: PgOptions,
    /// This process's name in `lease_owner`: host, pid and start time.
    worker: String,
    /// The attempt of each job this process holds a lease on (the fence of its changes).
    claims: HashMap<JobId, i64>,
}

impl PgStore {
    /// Connects and creates the tables if they are missing. A URL that does not parse, a
    /// server that does not answer or a refused login is `StoreError::Unreachable` (exit 2).
    pub fn connect(url: &str, options: PgOptions) -> StoreResult<Self> {
        let config: postgres::Config = url.parse().map_err(|e| StoreError::Unreachable {
            url: redact(url),
            problem: format!("not a PostgreSQL URL ({e})"),
            fix: "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE".to_owned(),
        })?;
        let shown = shown_url(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let client = config.connect(NoTls).map_err(|e| StoreError::Unreachable {
            url: shown.clone(),
            problem: format!("cannot connect ({e})"),
            fix: "check that the server runs, that the host, port, user, password and \
                      database in the URL are right, and that this machine may connect"
                .to_owned(),
        })?;
        let mut store = Self {
            client,
            url: shown,
            options,
            worker: worker_name(),
            claims: HashMap::new(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The URL as shown in messages (no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This process's name in the leases it takes.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn wrap(&self) -> impl Fn(postgres::Error) -> StoreError + use<> {
        let url = self.url.clone();
        move |source| StoreError::Postgres {
            url: url.clone(),
            source,
        }
    }

    fn rows(
        &mut self,
        query: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let wrap = self.wrap();
        self.client.query(query, params).map_err(wrap)
    }

    fn select(
        &mut self,
        query: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<JobRecord>> {
        self.rows(query, params)?
            .iter()
            .map(|row| raw_row(row).decode())
            .collect()
    }

    fn pending_query(&mut self) -> StoreResult<Vec<JobId>> {
        Ok(self
            .rows(
                "SELECT id FROM pallaidium_jobs WHERE state IN ('queued', 'interrupted')
                 ORDER BY position, id",
                &[],
            )?
            .iter()
            .map(|r| JobId(r.get(0)))
            .collect())
    }
}

fn raw_row(r: &Row) -> RawRow {
    RawRow {
        id: r.get(0),
        spec: r.get(1),
        state: r.get(2),
        created_ms: r.get(3),
        started_ms: r.get(4),
        finished_ms: r.get(5),
        outputs: r.get(6),
        error: r.get(7),
        position: r.get(8),
        attempts: r.get(9),
    }
}

/// `postgres://user@host:port/db`: what a message may show of a connection.
fn shown_url(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// A URL that did not parse, with anything between `://` and `@` (the password) hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// `host:pid:start`: unique per worker process, readable in the table.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        crate::jobs::store::now_ms()
    )
}

#[cfg(test)]
mod tests;
