//! The HTTP side of `--host`: a blocking client (ureq) of a `pallaidium serve` — submit a job
//! with its input files uploaded, follow its event stream (reconnecting and resuming from the
//! last event id after a dropped connection), and download its outputs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::jobs::JobEvent;
use crate::jobs::spec::JobOverrides;

/// Reconnections in a row without an event before the client gives up.
const MAX_RECONNECTS: u32 = 30;

pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// Pause before reconnecting (tests shorten it).
    pub backoff: Duration,
}

/// What one connection to an event stream ended with.
pub(crate) enum Stream<T = JobEvent> {
    /// The event the caller stopped at (a job's last one).
    Ended(T),
    /// The connection ended first.
    Dropped(String),
}

impl Remote {
    pub fn new(host: &str, token: Option<String>) -> crate::Result<Self> {
        let base = host.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(crate::Error::bad_input(format!(
                "--host {host}: give the server's URL, e.g. http://gpu-box:7860"
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            // Streams carry a keep-alive comment every 15 s: a minute of silence is a dead link.
            .timeout_read(Duration::from_secs(60))
            .build();
        Ok(Self {
            base,
            token,
            agent,
            backoff: Duration::from_secs(1),
        })
    }

    pub(crate) fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.set("Authorization", &format!("Bearer {token}")),
            None => req,
        }
    }

    /// A refusal with the server's message: 4xx are the user's to fix (exit 2), the rest not.
    pub(crate) fn refused(&self, what: &str, err: ureq::Error) -> crate::Error {
        match err {
            ureq::Error::Status(code, resp) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let message = body["error"]["message"]
                    .as_str()
                    .map_or_else(|| format!("status {code}"), str::to_owned);
                let text = format!("{what}: the server at {} refused: {message}", self.base);
                if (400..500).contains(&code) {
                    crate::Error::bad_input(text)
                } else {
                    crate::Error::job_failed(text)
                }
            }
            other => crate::Error::job_failed(format!(
                "{what}: cannot reach the server at {} ({other})",
                self.base
            )),
        }
    }

    /// The server's URL, as given (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Queues `job` there: its local input files go along as uploads. Returns the job's id.
    pub fn submit(&self, job: &JobOverrides) -> crate::Result<i64> {
        let reply = self.submit_reply(job)?;
        reply["id"].as_i64().ok_or_else(|| {
            crate::Error::job_failed(format!("the server's answer has no job id: {reply}"))
        })
    }

    /// Queues `job` there (input files uploaded); the server's record of the queued job.
    pub fn submit_reply(&self, job: &JobOverrides) -> crate::Result<Value> {
        let mut job = job.clone();
        let mut files = BTreeMap::new();
        for (key, slot) in [
            ("init-image", &mut job.init_image),
            ("mask", &mut job.mask),
            ("caption", &mut job.caption),
            ("image", &mut job.image),
        ] {
            if let Some(path) = slot.take() {
                let bytes = std::fs::read(&path).map_err(|e| crate::Error::io(&path, e))?;
                files.insert(key, base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
        self.request("POST", "/api/v1/jobs")
            .send_json(json!({ "job": job, "files": files }))
            .map_err(|e| self.refused("submitting the job", e))?
            .into_json()
            .map_err(|e| crate::Error::job_failed(format!("the server's answer: {e}")))
    }

    /// Asks the server to cancel `job` (best effort: a batch refused half way).
    pub fn cancel(&self, job: i64) {
        if let Err(err) = self
            .request("POST", &format!("/api/v1/jobs/{job}/cancel"))
            .call()
        {
            tracing::warn!(job, %err, "could not cancel the job on the server");
        }
    }

    /// Follows `job`'s events to its end, calling `seen` with each one once, whatever
    /// connections drop on the way (the job goes on on the server regardless).
    pub fn follow(&self, job: i64, mut seen: impl FnMut(&JobEvent)) -> crate::Result<JobEvent> {
        let mut last: Option<String> = None;
        let mut quiet = 0;
        loop {
            let before = last.clone();
            let path = format!("/api/v1/jobs/{job}/events");
            let mut until_end = |event: &JobEvent| {
                seen(event);
                event.is_terminal()
            };
            match self.stream(&path, &mut last, &mut until_end)? {
                Stream::Ended(end) => return Ok(end),
                Stream::Dropped(why) => {
                    quiet = if last == before { quiet + 1 } else { 1 };
                    if quiet > MAX_RECONNECTS {
                        return Err(crate::Error::job_failed(format!(
                            "lost the server at {} ({why}); job {job} goes on there: GET \
                             /api/v1/jobs/{job}",
                            self.base
                        )));
                    }
                    tracing::warn!(job, %why, "event stream dropped; reconnecting");
                    std::thread::sleep(self.backoff);
                }
            }
        }
    }

    /// One connection to the event stream at `path`, resumed after `last` (updated as events
    /// come); `seen` gets each event and says whether to stop there.
    pub(crate) fn stream<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        last: &mut Option<String>,
        seen: &mut impl FnMut(&T) -> bool,
    ) -> crate::Result<Stream<T>> {
        let mut req = self.request("GET", path);
        if let Some(id) = last.as_deref() {
            req = req.set("Last-Event-ID", id);
        }
        let resp = match req.call() {
            Ok(resp) => resp,
            Err(ureq::Error::Transport(t)) => return Ok(Stream::Dropped(t.to_string())),
            Err(err) => return Err(self.refused("following the job", err)),
        };
        let (mut id, mut data) = (None, String::new());
        for line in BufReader::new(resp.into_reader()).lines() {
            let line = match line {
                Ok(line) => line,
                Err(e) => return Ok(Stream::Dropped(e.to_string())),
            };
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if line.is_empty() && !data.is_empty() {
                let event: T = serde_json::from_str(&data).map_err(|e| {
                    crate::Error::job_failed(format!(
                        "the server sent an unknown event ({e}): {data}"
                    ))
                })?;
                data.clear();
                *last = id.take().or_else(|| last.take());
                if seen(&event) {
                    return Ok(Stream::Ended(event));
                }
            }
        }
        Ok(Stream::Dropped("the stream ended".to_owned()))
    }

    /// Output `index` of `job`: its file name on the server and its bytes.
    pub fn download(&self, job: i64, index: usize) -> crate::Result<(String, Vec<u8>)> {
        let what = format!("downloading output {index} of job {job}");
        let resp = self
            .request("GET", &format!("/api/v1/jobs/{job}/outputs/{index}"))
            .call()
            .map_err(|e| self.refused(&what, e))?;
        let name = resp
            .header("content-disposition")
            .and_then(|d| d.split("filename=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let mut bytes = Vec::new();
        resp.into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| crate::Error::job_failed(format!("{what}: {e}")))?;
        Ok((name, bytes))
    }
}
