//! A minimal HTTP/1.1 imitation of the hub for one repo: a thread per connection, read timeouts,
//! stopped and joined when dropped.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pallaidium::models::fetch::sha256::Sha256;

#[derive(Debug, Clone)]
pub struct RepoFile {
    pub rfilename: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
    pub sha256: String,
    /// Stands in for the git blob id (40 hex digits); the hub's ETag for git files.
    pub blob_id: String,
}

impl RepoFile {
    pub fn new(rfilename: &str, bytes: Vec<u8>) -> Self {
        let mut h = Sha256::default();
        h.update(&bytes);
        let sha256 = h.finish_hex();
        let mut g = Sha256::default();
        g.update(format!("blob {}\0", bytes.len()).as_bytes());
        g.update(&bytes);
        Self {
            rfilename: rfilename.to_owned(),
            lfs: rfilename.ends_with(".safetensors") || rfilename.ends_with(".bin"),
            blob_id: g.finish_hex()[..40].to_owned(),
            sha256,
            bytes,
        }
    }

    /// The blob name in the cache: the LFS SHA-256, else the git blob id.
    pub fn etag(&self) -> &str {
        if self.lfs {
            &self.sha256
        } else {
            &self.blob_id
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Deny {
    pub status: u16,
    /// Also refuse the file listing (otherwise only downloads are refused).
    pub listing: bool,
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

#[derive(Default)]
struct State {
    /// What `main` points at now.
    commit: String,
    log: Vec<Seen>,
    corrupt: Option<String>,
    truncate_once: Option<String>,
    /// Send this file's headers and this many body bytes, then nothing more (a stalled server).
    stall: Option<(String, usize)>,
    deny: Option<Deny>,
}

struct Shared {
    repo: String,
    files: Vec<RepoFile>,
    addr: SocketAddr,
    state: Mutex<State>,
    stop: AtomicBool,
}

pub struct MockHub {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MockHub {
    pub fn start(repo: &str, commit: &str, files: Vec<RepoFile>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Arc::new(Shared {
            repo: repo.to_owned(),
            files,
            addr: listener.local_addr().unwrap(),
            state: Mutex::new(State {
                commit: commit.to_owned(),
                ..State::default()
            }),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = Arc::clone(&s);
                conns.push(std::thread::spawn(move || serve(&s, stream)));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Self {
            shared,
            accept: Some(accept),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn file(&self, rfilename: &str) -> &RepoFile {
        self.shared
            .files
            .iter()
            .find(|f| f.rfilename == rfilename)
            .unwrap()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    pub fn corrupt(&self, rfilename: Option<&str>) {
        self.state().corrupt = rfilename.map(str::to_owned);
    }

    pub fn truncate_once(&self, rfilename: Option<&str>) {
        self.state().truncate_once = rfilename.map(str::to_owned);
    }

    pub fn stall(&self, rfilename: Option<&str>, after_bytes: usize) {
        self.state().stall = rfilename.map(|f| (f.to_owned(), after_bytes));
    }

    pub fn deny(&self, deny: Option<Deny>) {
        self.state().deny = deny;
    }

    /// A new commit on `main` (same files).
    pub fn move_main(&self, commit: &str) {
        self.state().commit = commit.to_owned();
    }

    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Every request path, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state().log.iter().map(|s| s.path.clone()).collect()
    }

    pub fn auth_headers(&self) -> Vec<String> {
        self.state()
            .log
            .iter()
            .filter_map(|s| s.auth.clone())
            .collect()
    }

    pub fn ranges_for(&self, path: &str) -> Vec<String> {
        self.state()
            .log
            .iter()
            .filter(|s| s.path == path)
            .filter_map(|s| s.range.clone())
            .collect()
    }

    /// Files whose content was requested (a resolve other than hf-hub's `bytes=0-0` probe).
    pub fn downloaded(&self) -> BTreeSet<String> {
        let prefix = format!("/{}/resolve/{}/", self.shared.repo, "main");
        self.state()
            .log
            .iter()
            .filter(|s| s.range.as_deref() != Some("bytes=0-0"))
            .filter_map(|s| s.path.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (a dropped connection).
    cut_at: Option<usize>,
    /// Send only this many body bytes, then hold the connection silent until the hub stops.
    stall_at: Option<usize>,
}

impl Response {
    fn new(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            cut_at: None,
            stall_at: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

fn serve(s: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    // Keep-alive: ureq reuses connections.
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut range = None;
        let mut auth = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(value.trim().to_owned()),
                    "authorization" => auth = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let response = respond(s, &path, range.as_deref());
        s.state.lock().unwrap().log.push(Seen { path, range, auth });
        if response.stall_at.is_some() {
            let _ = write_response(&mut stream, &response);
            while !s.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        if write_response(&mut stream, &response).is_err() || response.cut_at.is_some() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} Mock\r\n", r.status);
    for (k, v) in &r.headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", r.body.len());
    stream.write_all(head.as_bytes())?;
    let end = r
        .cut_at
        .or(r.stall_at)
        .unwrap_or(r.body.len())
        .min(r.body.len());
    stream.write_all(&r.body[..end])?;
    stream.flush()
}

fn respond(s: &Shared, path: &str, range: Option<&str>) -> Response {
    let mut state = s.state.lock().unwrap();
    let api = format!("/api/models/{}/revision/", s.repo);
    let resolve = format!("/{}/resolve/", s.repo);
    let is_listing = path.starts_with(&api);
    if let Some(d) = state.deny.filter(|d| d.listing || !is_listing) {
        let msg = format!("Access to model {} is restricted.", s.repo);
        return Response::new(d.status, format!("{{\"error\":\"{msg}\"}}").into_bytes())
            .header("X-Error-Code", "GatedRepo")
            .header("Content-Type", "application/json");
    }
    if let Some(rev) = path.strip_prefix(&api) {
        if rev != "main" && rev != state.commit {
            return Response::new(404, b"{\"error\":\"Invalid rev id\"}".to_vec());
        }
        return Response::new(200, listing(s, &state.commit).into_bytes())
            .header("Content-Type", "application/json");
    }
    if let Some(rest) = path.strip_prefix(&resolve) {
        let Some((rev, name)) = rest.split_once('/') else {
            return Response::new(404, Vec::new());
        };
        let Some(f) = s.files.iter().find(|f| f.rfilename == name) else {
            return Response::new(404, b"Entry not found".to_vec())
                .header("X-Error-Code", "EntryNotFound");
        };
        if rev != "main" && rev != state.commit {
            return Response::new(404, b"Revision not found".to_vec());
        }
        let commit = state.commit.clone();
        let common = |r: Response| {
            r.header("ETag", format!("\"{}\"", f.blob_id))
                .header("X-Repo-Commit", commit.clone())
        };
        if f.lfs {
            // The hub sends LFS files to its CDN with the SHA-256 as X-Linked-Etag.
            return common(Response::new(302, Vec::new()))
                .header("Location", format!("http://{}/cdn/{}", s.addr, f.sha256))
                .header("X-Linked-Etag", format!("\"{}\"", f.sha256))
                .header("X-Linked-Size", f.bytes.len().to_string());
        }
        return common(ranged(&f.bytes, range));
    }
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let Some(f) = s.files.iter().find(|f| f.sha256 == sha) else {
            return Response::new(404, Vec::new());
        };
        let mut bytes = f.bytes.clone();
        if state.corrupt.as_deref() == Some(f.rfilename.as_str()) {
            // Same length, wrong content in the weights (past the safetensors header).
            let n = bytes.len();
            for b in &mut bytes[n / 2..] {
                *b ^= 0x5a;
            }
        }
        let mut r = ranged(&bytes, range);
        if let Some((_, n)) = state
            .stall
            .as_ref()
            .filter(|(name, _)| *name == f.rfilename)
        {
            r.stall_at = Some(*n);
        }
        let whole = range.is_none_or(|r| r == "bytes=0-");
        if whole && state.truncate_once.as_deref() == Some(f.rfilename.as_str()) {
            state.truncate_once = None;
            r.cut_at = Some(bytes.len() / 2);
        }
        return r.header("ETag", format!("\"{}\"", f.sha256));
    }
    Response::new(404, Vec::new())
}

/// A 206 for `bytes=a-` / `bytes=a-b`, 416 past the end, else the whole body.
fn ranged(bytes: &[u8], range: Option<&str>) -> Response {
    let len = bytes.len();
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Response::new(200, bytes.to_vec());
    };
    let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
    let start: usize = a.parse().unwrap_or(0);
    let end = b
        .parse::<usize>()
        .map_or(len.saturating_sub(1), |e| e.min(len - 1));
    if start >= len || start > end {
        return Response::new(416, Vec::new()).header("Content-Range", format!("bytes */{len}"));
    }
    Response::new(206, bytes[start..=end].to_vec())
        .header("Content-Range", format!("bytes {start}-{end}/{len}"))
}

fn listing(s: &Shared, commit: &str) -> String {
    let siblings: Vec<serde_json::Value> = s
        .files
        .iter()
        .map(|f| {
            let mut v = serde_json::json!({
                "rfilename": f.rfilename,
                "size": f.bytes.len(),
                "blobId": f.blob_id,
            });
            if f.lfs {
                v["lfs"] = serde_json::json!({
                    "sha256": f.sha256,
                    "size": f.bytes.len(),
                    "pointerSize": 134,
                });
            }
            v
        })
        .collect();
    serde_json::json!({
        "id": s.repo,
        "sha": commit,
        "siblings": siblings,
    })
    .to_string()
}
