//! The network side of a fetch over ureq: the repo listing (sizes and LFS hashes) and one file's
//! download into `blobs/<etag>.part`, resumed with `Range: bytes=N-` and renamed to `blobs/<etag>`
//! when whole, as hf-hub 0.4.3 (whose agent has no read timeout) and huggingface_hub do. Every
//! request has connect and read timeouts and runs through `cancel::run_io`, so a silent server
//! ends in a timeout and a cancel ends the fetch at once. HTTP failures become messages a user
//! can act on.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FetchOptions;
use super::cancel::{FetchCancel, IoCtx, run_io};
use super::net::{self, NetTimeouts, TimedOut};
use super::progress::FetchProgress;
use super::snapshot;
use crate::models::entry::ModelEntry;
use crate::models::hf_cache;
use crate::{Error, Result};
use transfer::transfer;

/// Retries per file after a broken or stalled body (each resumes from the `.part` file).
const RETRIES: usize = 3;

mod transfer;

#[derive(Debug, Clone, Deserialize)]
pub struct Lfs {
    pub sha256: String,
}

/// One file of the repo as `/api/models/{repo}/revision/{rev}?blobs=true` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

impl Sibling {
    /// The SHA-256 the hub has for an LFS file (weights); git files have only a git blob id.
    pub fn sha256(&self) -> Option<&str> {
        self.lfs.as_ref().map(|l| l.sha256.as_str())
    }

    /// The blob name hf-hub stores the file under: the LFS hash, else the git blob id.
    pub fn etag(&self) -> Option<&str> {
        self.sha256().or(self.blob_id.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Listing {
    pub sha: String,
    pub siblings: Vec<Sibling>,
}

impl Listing {
    pub fn file(&self, rfilename: &str) -> Option<&Sibling> {
        self.siblings.iter().find(|s| s.rfilename == rfilename)
    }

    /// The files a registry name stands for: itself, or every file a `*` pattern matches.
    pub fn files_matching(&self, name: &str) -> Vec<&Sibling> {
        if crate::models::file_pattern::is_pattern(name) {
            self.siblings
                .iter()
                .filter(|s| crate::models::file_pattern::matches(name, &s.rfilename))
                .collect()
        } else {
            self.file(name).into_iter().collect()
        }
    }
}

/// How a request ended, on the I/O thread (mapped to messages on the caller's side).
enum CallError {
    Status(u16, String),
    Transport(ureq::Transport),
    /// The body broke off `RETRIES + 1` times; the last error.
    Body(std::io::Error),
    /// The caller gave up (cancelled); nothing more was written.
    Stopped,
}

pub struct HubClient {
    agent: ureq::Agent,
    entry: ModelEntry,
    endpoint: String,
    cache_dir: PathBuf,
    token: Option<String>,
    timeouts: NetTimeouts,
}

impl HubClient {
    /// A client for the entry's repo at its revision. A gated repo without a token is refused
    /// here, before any request, naming the licence page.
    pub fn new(entry: &ModelEntry, opts: &FetchOptions) -> Result<Self> {
        if entry.gated && opts.token.is_none() {
            return Err(Error::bad_input(format!(
                "model `{}` ({}) is gated: accept its licence at {} while logged in to Hugging Face, \
                 then set HF_TOKEN (or run `huggingface-cli login`) and fetch again",
                entry.id, entry.repo, entry.license_url
            )));
        }
        // huggingface_hub strips trailing slashes from HF_ENDPOINT; a bare join would request `//api/...`.
        let endpoint = opts
            .endpoint
            .as_deref()
            .map(|e| e.trim().trim_end_matches('/'))
            .filter(|e| !e.is_empty())
            .unwrap_or("https://huggingface.co")
            .to_owned();
        Ok(Self {
            agent: opts.timeouts.agent(),
            entry: entry.clone(),
            endpoint,
            cache_dir: opts.cache_dir.clone(),
            token: opts.token.clone(),
            timeouts: opts.timeouts,
        })
    }

    fn get(&self, url: &str) -> ureq::Request {
        authorized(self.agent.get(url), self.token.as_deref())
    }

    /// The revision as a URL path segment (a branch like `refs/pr/1` keeps its slashes escaped).
    fn url_revision(&self) -> String {
        self.entry.revision.replace('/', "%2F")
    }

    /// The repo's files with sizes and hashes at the entry's revision.
    pub fn listing(&self, cancel: &FetchCancel) -> Result<Listing> {
        let url = format!(
            "{}/api/models/{}/revision/{}",
            self.endpoint,
            self.entry.repo,
            self.url_revision()
        );
        let request = self.get(&url).query("blobs", "true");
        let body = run_io(cancel, &mut |_| {}, move |_: &IoCtx<_>| {
            Ok(match request.call() {
                Ok(r) => r.into_string().map_err(CallError::Body),
                Err(ureq::Error::Status(code, r)) => {
                    Err(CallError::Status(code, r.into_string().unwrap_or_default()))
                }
                Err(ureq::Error::Transport(t)) => Err(CallError::Transport(t)),
            })
        })?
        .map_err(|e| self.call_error(e, "the file list"))?;
        serde_json::from_str(&body).map_err(|e| {
            Error::job_failed(format!(
                "{} answered an unexpected file list for {}: {e}",
                self.endpoint, self.entry.repo
            ))
        })
    }

    fn blob_path(&self, etag: &str) -> PathBuf {
        hf_cache::repo_folder(&self.cache_dir, &self.entry.repo)
            .join("blobs")
            .join(etag)
    }

    fn part_path(&self, sib: &Sibling) -> Option<PathBuf> {
        Some(self.blob_path(&format!("{}.part", sib.etag()?)))
    }

    /// Bytes of `sib` an earlier, interrupted download left in its `.part` file.
    pub fn partial_bytes(&self, sib: &Sibling) -> u64 {
        self.part_path(sib)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Downloads one file into `blobs/` (resuming a `.part`) and links it into the snapshot of
    /// `commit`, returning the snapshot path. On cancel or failure an empty `.part` is removed;
    /// one holding bytes stays, so the next fetch resumes it.
    pub fn download(
        &self,
        sib: &Sibling,
        commit: &str,
        cancel: &FetchCancel,
        progress: &mut dyn FetchProgress,
    ) -> Result<PathBuf> {
        let etag = sib.etag().ok_or_else(|| {
            Error::job_failed(format!(
                "the hub's file list has no blob id for {} in {}; cannot place it in the cache",
                sib.rfilename, self.entry.repo
            ))
        })?;
        let (blob, part) = (
            self.blob_path(etag),
            self.blob_path(&format!("{etag}.part")),
        );
        if let Some(dir) = part.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| Error::io(&part, e))?;
        crate::platform::process::lock_exclusive(&file).map_err(|_| {
            Error::job_failed(format!(
                "another download of {} is in progress ({}); wait for it to finish, then run again",
                sib.rfilename,
                part.display()
            ))
        })?;
        let size = sib.size.unwrap_or(0);
        // A complete or oversized .part would be answered 416: start it afresh.
        if sib.size.is_some_and(|s| self.partial_bytes(sib) >= s) {
            file.set_len(0).map_err(|e| Error::io(&part, e))?;
        }
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            self.entry.repo,
            self.url_revision(),
            sib.rfilename
        );
        let (agent, token, part_for_io) = (self.agent.clone(), self.token.clone(), part.clone());
        progress.start(&sib.rfilename, size);
        let outcome = run_io(cancel, &mut |done| progress.advance(done), move |ctx| {
            transfer(ctx, &agent, &url, token.as_deref(), file, &part_for_io)
        });
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.call_error(e, &sib.rfilename)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            remove_if_empty(&part);
            return Err(e);
        }
        std::fs::rename(&part, &blob).map_err(|e| Error::io(&blob, e))?;
        progress.finish(&sib.rfilename);
        let repo_dir = hf_cache::repo_folder(&self.cache_dir, &self.entry.repo);
        if !snapshot::link_cached_blob(&repo_dir, commit, sib)? {
            discard_blob(&blob);
            return Err(Error::job_failed(format!(
                "the download of {} from {} has the wrong size (the hub lists {size} bytes); \
                 the file was removed: run the fetch again",
                sib.rfilename, self.entry.repo
            )));
        }
        Ok(repo_dir.join("snapshots").join(commit).join(&sib.rfilename))
    }

    fn call_error(&self, e: CallError, what: &str) -> Error {
        match e {
            CallError::Status(code, text) => self.http_error(Some(code), &text, what),
            CallError::Transport(t) => match net::timed_out(&t) {
                Some(which) => net::timeout_error(which, &self.timeouts, &self.endpoint, what),
                None => self.http_error(None, &t.to_string(), what),
            },
            CallError::Body(e) if net::io_timed_out(&e) => {
                net::timeout_error(TimedOut::Read, &self.timeouts, &self.endpoint, what)
            }
            CallError::Body(e) => Error::job_failed(format!(
                "downloading {what} from {} ({}) failed after {RETRIES} retries: {e}; \
                 run the fetch again to resume",
                self.entry.repo, self.endpoint
            )),
            CallError::Stopped => Error::Cancelled,
        }
    }

    fn http_error(&self, status: Option<u16>, text: &str, what: &str) -> Error {
        let e = &self.entry;
        let has_token = self.token.is_some();
        match status {
            Some(401 | 403) => Error::bad_input(format!(
                "the Hugging Face hub refused access to {} ({what}, HTTP {}): {}accept the licence at {} \
                 with the account your token belongs to, then fetch again",
                e.repo,
                status.unwrap_or_default(),
                if has_token {
                    ""
                } else {
                    "no token is set (HF_TOKEN or `huggingface-cli login`); "
                },
                e.license_url
            )),
            Some(404) => Error::bad_input(format!(
                "{} at revision {} was not found on {} ({what}); check the registry entry `{}` ({}){}",
                e.repo,
                e.revision,
                self.endpoint,
                e.id,
                e.source,
                if has_token {
                    ""
                } else {
                    "; a gated or private repo also answers 404 without a token"
                }
            )),
            Some(code) => Error::job_failed(format!(
                "{} answered HTTP {code} for {what} of {}: {}",
                self.endpoint,
                e.repo,
                text.chars().take(300).collect::<String>()
            )),
            None => Error::job_failed(format!(
                "cannot reach {} for {what} of {}: {text}; check the network or proxy (HTTPS_PROXY), \
                 or use --offline to run from the cache",
                self.endpoint, e.repo
            )),
        }
    }
}

fn authorized(request: ureq::Request, token: Option<&str>) -> ureq::Request {
    match token {
        Some(t) => request.set("Authorization", &format!("Bearer {t}")),
        None => request,
    }
}

/// A `.part` with no bytes is no use for resuming: leave nothing behind.
fn remove_if_empty(part: &Path) {
    if std::fs::metadata(part).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(part);
    }
}

fn discard_blob(blob: &Path) {
    let _ = std::fs::remove_file(blob);
}

/// Removes a snapshot link and the blob it points to (after a failed check).
pub fn discard(snapshot_file: &Path) {
    if let Ok(blob) = std::fs::canonicalize(snapshot_file) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(snapshot_file);
}
