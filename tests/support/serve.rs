//! A `pallaidium serve` on a free loopback port in a temporary home, with the tiny SD1 fixture as
//! its default model (64x64, 2 steps), and a real HTTP client (ureq) to call it: requests, SSE
//! streams, the process's stderr and its end.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::run::{Run, Watchdog, fixture, watchdog};

pub struct Server {
    pub run: Run,
    pub child: Child,
    pub base: String,
    pub token: Option<String>,
    pub stderr: Arc<Mutex<String>>,
    agent: ureq::Agent,
    _watchdog: Watchdog,
}

/// The answer to one request: status, body, and the headers tests look at.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
    pub location: Option<String>,
    pub www_authenticate: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The JSON of an answer that must have `status` (the body shows when it has not).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// The error message of a refusal.
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// One SSE event: its id and its data as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub data: Value,
}

impl Server {
    /// `pallaidium [before] serve --device cpu --listen 127.0.0.1:0 [after]`, the fixture as the
    /// default model before the other flags.
    pub fn start(before: &[&str], after: &[&str]) -> Self {
        Self::start_in(Run::new(), before, after, None)
    }

    pub fn start_in(run: Run, before: &[&str], after: &[&str], token: Option<&str>) -> Self {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pallaidium"));
        cmd.env("PALLAIDIUM_HOME", &run.home)
            .env("HF_HOME", run.home.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("PALLAIDIUM_LOG")
            .env_remove("PALLAIDIUM_TEST_FAULT")
            .arg("--model")
            .arg(fixture("sd1-tiny"))
            .args(["--width", "64", "--height", "64", "--steps", "2"])
            .args(before)
            .args(["serve", "--device", "cpu", "--out"])
            .arg(&run.out)
            .args(after)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !after.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if let Some(token) = token {
            let path = run.dir.path().join("token");
            std::fs::write(&path, format!("{token}\n")).unwrap();
            cmd.arg("--token-file").arg(path);
        }
        let mut child = cmd.spawn().unwrap();
        let guard = watchdog(&child, Duration::from_secs(600));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            stderr.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        let base =
            base.unwrap_or_else(|| panic!("the server did not start: {}", stderr.lock().unwrap()));
        // Keep reading stderr so the server never blocks on a full pipe.
        let keep = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(300))
            .build();
        Self {
            run,
            child,
            base,
            token: token.map(str::to_owned),
            stderr,
            agent,
            _watchdog: guard,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: &str, path: &str, token: Option<&str>) -> ureq::Request {
        let mut req = self.agent.request(method, &self.url(path));
        if let Some(t) = token.or(self.token.as_deref()) {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req
    }

    fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("no answer: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("content-type").unwrap_or_default().to_owned();
        let location = resp.header("location").map(str::to_owned);
        let www_authenticate = resp.header("www-authenticate").map(str::to_owned);
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).unwrap();
        Reply {
            status,
            body,
            content_type,
            location,
            www_authenticate,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        Self::reply(self.request("GET", path, None).call())
    }

    pub fn get_with_token(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.agent.request("GET", &self.url(path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        Self::reply(req.call())
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        Self::reply(
            self.request("POST", path, None)
                .set("Content-Type", "application/json")
                .send_bytes(body),
        )
    }

    pub fn post_with_type(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        Self::reply(
            self.request("POST", path, None)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, body.to_string().as_bytes())
    }

    /// Queues `job` (a job-file object) through the native API; returns its id.
    pub fn submit(&self, job: Value) -> i64 {
        let reply = self.post_json("/api/v1/jobs", &serde_json::json!({ "job": job }));
        assert_eq!(
            reply.status,
            201,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["id"].as_i64().unwrap()
    }

    /// Reads up to `limit` events of an SSE stream (all, when it ends first).
    pub fn events(&self, path: &str, last_event_id: Option<&str>, limit: usize) -> Vec<SseEvent> {
        self.events_until(path, last_event_id, |_, seen| seen >= limit)
    }

    /// Reads an SSE stream until `stop(last event, events so far)` or its end, then closes it.
    pub fn events_until(
        &self,
        path: &str,
        last_event_id: Option<&str>,
        stop: impl Fn(&SseEvent, usize) -> bool,
    ) -> Vec<SseEvent> {
        let mut req = self.request("GET", path, None);
        if let Some(id) = last_event_id {
            req = req.set("Last-Event-ID", id);
        }
        let resp = req.call().unwrap();
        assert_eq!(resp.header("content-type"), Some("text/event-stream"));
        let mut lines = BufReader::new(resp.into_reader()).lines();
        let mut events: Vec<SseEvent> = Vec::new();
        let (mut id, mut data) = (String::new(), String::new());
        while events.last().is_none_or(|e| !stop(e, events.len())) {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            } else if line.is_empty() && !data.is_empty() {
                let value = serde_json::from_str(&data).unwrap();
                events.push(SseEvent {
                    id: std::mem::take(&mut id),
                    data: value,
                });
                data.clear();
            }
        }
        // Dropping the reader here closes the connection mid-stream when `stop` cut it short.
        events
    }

    /// Sends SIGTERM and waits for the exit code; returns it, stderr and the home (to start
    /// another server on).
    pub fn terminate(mut self) -> (Option<i32>, String, Run) {
        // SAFETY: signalling our own child process.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        let run = std::mem::replace(&mut self.run, Run::new());
        (status.code(), stderr, run)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PNG of `side` x `side` pixels, for uploads.
pub fn png(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([x as u8 * 3, y as u8 * 3, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
