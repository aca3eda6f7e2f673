//! More of the `--host` client, for the TUI in client mode: the queue's other actions (retry,
//! move, pause), the server's job list and machine report, and the server-wide event stream,
//! followed through dropped connections and server restarts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::jobs::{JobEvent, JobId, JobRecord, JobSpec, JobState};
use crate::log_ring::LogLine;
use crate::serve::machine::SystemReport;
use crate::serve::remote::{Remote, Stream};

/// The longest pause between reconnections of the server-wide stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Remote {
    fn post(&self, what: &str, path: &str, body: Option<Value>) -> crate::Result<Value> {
        let req = self.request("POST", path);
        let sent = match body {
            Some(body) => req.send_json(body),
            None => req.call(),
        };
        sent.map_err(|e| self.refused(what, e))?
            .into_json()
            .map_err(|e| crate::Error::job_failed(format!("{what}: the server's answer: {e}")))
    }

    fn get(&self, what: &str, path: &str) -> crate::Result<Value> {
        self.request("GET", path)
            .call()
            .map_err(|e| self.refused(what, e))?
            .into_json()
            .map_err(|e| crate::Error::job_failed(format!("{what}: the server's answer: {e}")))
    }

    /// Cancels `job` there; the server's refusal (a finished job) comes back as an error.
    pub fn cancel_job(&self, job: JobId) -> crate::Result<()> {
        let path = format!("/api/v1/jobs/{job}/cancel");
        self.post(&format!("cancelling job {job}"), &path, None)
            .map(drop)
    }

    pub fn retry(&self, job: JobId) -> crate::Result<()> {
        let path = format!("/api/v1/jobs/{job}/retry");
        self.post(&format!("retrying job {job}"), &path, None)
            .map(drop)
    }

    pub fn move_to(&self, job: JobId, index: usize) -> crate::Result<()> {
        let path = format!("/api/v1/jobs/{job}/move");
        self.post(
            &format!("moving job {job}"),
            &path,
            Some(json!({ "index": index })),
        )
        .map(drop)
    }

    pub fn set_paused(&self, paused: bool) -> crate::Result<()> {
        self.post(
            "pausing the queue",
            "/api/v1/queue/pause",
            Some(json!({ "paused": paused })),
        )
        .map(drop)
    }

    /// The newest `limit` jobs there, newest first. Outputs are left out: they are files on
    /// the server (a finished job's come down with its `done` event).
    pub fn history(&self, limit: usize) -> crate::Result<Vec<JobRecord>> {
        let reply = self.get("listing the jobs", &format!("/api/v1/jobs?limit={limit}"))?;
        reply["jobs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(record)
            .collect()
    }

    /// `job`'s newest latent preview (`GET /api/v1/jobs/{id}/preview`): width, height, RGB.
    pub fn preview(&self, job: JobId) -> crate::Result<(u32, u32, Vec<u8>)> {
        let what = format!("fetching job {job}'s preview");
        let resp = self
            .request("GET", &crate::serve::preview::url(job))
            .call()
            .map_err(|e| self.refused(&what, e))?;
        let mut png = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut png)
            .map_err(|e| crate::Error::job_failed(format!("{what}: {e}")))?;
        let image = image::load_from_memory(&png)
            .map_err(|e| crate::Error::job_failed(format!("{what}: not a PNG ({e})")))?
            .to_rgb8();
        Ok((image.width(), image.height(), image.into_raw()))
    }

    /// The server's machine now, its device, and its newest event id.
    pub fn system(&self) -> crate::Result<SystemReport> {
        let reply = self.get("reading the server's machine", "/api/v1/system")?;
        serde_json::from_value(reply).map_err(|e| {
            crate::Error::job_failed(format!(
                "the server at {} sent no system report ({e}); is it an older pallaidium?",
                self.base()
            ))
        })
    }

    /// Follows every job's events from after `last` until `seen` says stop, reconnecting
    /// (and resuming after the last event seen) whenever the connection drops; `dropped`
    /// hears of each drop and says whether to go on. Returns when either stops, or with the
    /// server's refusal (a token).
    pub fn follow_all(
        &self,
        last: Option<String>,
        seen: &mut impl FnMut(&JobEvent) -> bool,
        dropped: &mut impl FnMut(&str) -> bool,
    ) -> crate::Result<()> {
        self.follow_stream("/api/v1/events", last, seen, dropped)
    }

    /// Follows the server's own log lines (`GET /api/v1/logs`: the newest it kept, then live)
    /// as `follow_all` follows events.
    pub fn follow_logs(
        &self,
        seen: &mut impl FnMut(&LogLine) -> bool,
        dropped: &mut impl FnMut(&str) -> bool,
    ) -> crate::Result<()> {
        self.follow_stream("/api/v1/logs", None, seen, dropped)
    }

    fn follow_stream<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        mut last: Option<String>,
        seen: &mut impl FnMut(&T) -> bool,
        dropped: &mut impl FnMut(&str) -> bool,
    ) -> crate::Result<()> {
        let mut pause = self.backoff;
        loop {
            let before = last.clone();
            match self.stream(path, &mut last, seen)? {
                Stream::Ended(_) => return Ok(()),
                Stream::Dropped(why) => {
                    if !dropped(&why) {
                        return Ok(());
                    }
                    pause = if last == before {
                        (pause * 2).min(MAX_BACKOFF)
                    } else {
                        self.backoff
                    };
                    tracing::warn!(%why, path, "stream dropped; reconnecting");
                    std::thread::sleep(pause);
                }
            }
        }
    }
}

/// A job as the API shows it (`views::job`), as the queue's record (no outputs).
fn record(job: &Value) -> crate::Result<JobRecord> {
    let bad = |what: &str| crate::Error::job_failed(format!("the server sent a job {what}: {job}"));
    let state = job["state"]
        .as_str()
        .and_then(JobState::parse)
        .ok_or_else(|| bad("with no known state"))?;
    let spec: JobSpec =
        serde_json::from_value(job["spec"].clone()).map_err(|_| bad("with an unreadable spec"))?;
    Ok(JobRecord {
        id: JobId(job["id"].as_i64().ok_or_else(|| bad("without an id"))?),
        spec,
        state,
        created_ms: job["created_ms"].as_i64().unwrap_or_default(),
        started_ms: job["started_ms"].as_i64(),
        finished_ms: job["finished_ms"].as_i64(),
        outputs: Vec::new(),
        error: job["error"].as_str().map(str::to_owned),
        position: job["position"].as_i64().unwrap_or_default(),
        attempts: job["attempts"]
            .as_i64()
            .and_then(|p| p.try_into().ok())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_job_reads_back_as_its_record() {
        let stored = JobRecord {
            id: JobId(9),
            spec: JobSpec::default(),
            state: JobState::Failed,
            created_ms: 10,
            started_ms: Some(11),
            finished_ms: Some(12),
            outputs: vec!["/srv/out/9.png".into()],
            error: Some("out of memory".into()),
            position: 3,
            attempts: 2,
        };
        let back = record(&crate::serve::views::job(&stored)).unwrap();
        assert_eq!(
            back,
            JobRecord {
                outputs: Vec::new(),
                ..stored
            }
        );
        assert!(record(&json!({"id": 1, "state": "sleeping", "spec": {}})).is_err());
    }
}
