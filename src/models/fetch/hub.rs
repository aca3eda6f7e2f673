//! The network side of a fetch: the repo listing (sizes and LFS hashes) and one file's download,
//! through hf-hub's blocking client; HTTP failures become messages a user can act on.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

use super::FetchOptions;
use super::progress::{FetchProgress, HubProgress};
use crate::models::entry::ModelEntry;
use crate::models::hf_cache;
use crate::{Error, Result};

/// Retries per file (hf-hub resumes from the `.part` file each time).
const RETRIES: usize = 3;

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

pub struct HubClient {
    repo: ApiRepo,
    entry: ModelEntry,
    endpoint: String,
    cache_dir: PathBuf,
    has_token: bool,
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
        // huggingface_hub strips trailing slashes from HF_ENDPOINT; hf-hub would request `//api/...`.
        let endpoint = opts
            .endpoint
            .as_deref()
            .map(|e| e.trim().trim_end_matches('/'))
            .filter(|e| !e.is_empty())
            .unwrap_or("https://huggingface.co")
            .to_owned();
        let api = ApiBuilder::from_cache(Cache::new(opts.cache_dir.clone()))
            .with_token(opts.token.clone())
            .with_endpoint(endpoint.clone())
            .with_progress(false)
            .with_retries(RETRIES)
            .build()
            .map_err(|e| {
                Error::job_failed(format!("cannot set up the Hugging Face client: {e}"))
            })?;
        let repo = api.repo(Repo::with_revision(
            entry.repo.clone(),
            RepoType::Model,
            entry.revision.clone(),
        ));
        Ok(Self {
            repo,
            entry: entry.clone(),
            endpoint,
            cache_dir: opts.cache_dir.clone(),
            has_token: opts.token.is_some(),
        })
    }

    /// The repo's files with sizes and hashes at the entry's revision.
    pub fn listing(&self) -> Result<Listing> {
        let response = match self.repo.info_request().query("blobs", "true").call() {
            Ok(r) => r,
            Err(e) => {
                let text = e.to_string();
                let status = e.into_response().map(|r| r.status());
                return Err(self.http_error(status, &text, "the file list"));
            }
        };
        let body = response.into_string().map_err(|e| {
            Error::job_failed(format!("reading the file list of {}: {e}", self.entry.repo))
        })?;
        serde_json::from_str(&body).map_err(|e| {
            Error::job_failed(format!(
                "{} answered an unexpected file list for {}: {e}",
                self.endpoint, self.entry.repo
            ))
        })
    }

    fn part_path(&self, sib: &Sibling) -> Option<PathBuf> {
        let etag = sib.etag()?;
        Some(
            hf_cache::repo_folder(&self.cache_dir, &self.entry.repo)
                .join("blobs")
                .join(format!("{etag}.part")),
        )
    }

    /// Bytes of `sib` an earlier, interrupted download left in its `.part` file.
    pub fn partial_bytes(&self, sib: &Sibling) -> u64 {
        self.part_path(sib)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Downloads one file into the cache (resuming a `.part`), returning its snapshot path.
    pub fn download(&self, sib: &Sibling, progress: &mut dyn FetchProgress) -> Result<PathBuf> {
        // hf-hub asks for `bytes=<len>-`; a complete or oversized .part would be answered 416.
        if let (Some(part), Some(size)) = (self.part_path(sib), sib.size)
            && self.partial_bytes(sib) >= size
        {
            let _ = std::fs::remove_file(part);
        }
        let adapter = HubProgress::new(progress);
        match self.repo.download_with_progress(&sib.rfilename, adapter) {
            Ok(path) => Ok(path),
            Err(ApiError::RequestError(e)) => {
                let text = e.to_string();
                let status = (*e).into_response().map(|r| r.status());
                Err(self.http_error(status, &text, &sib.rfilename))
            }
            Err(ApiError::TooManyRetries(inner)) => Err(Error::job_failed(format!(
                "downloading {} from {} failed after {RETRIES} retries: {inner}; run the fetch again to resume",
                sib.rfilename, self.entry.repo
            ))),
            Err(e) => Err(Error::job_failed(format!(
                "downloading {} from {}: {e}; run the fetch again to resume",
                sib.rfilename, self.entry.repo
            ))),
        }
    }

    fn http_error(&self, status: Option<u16>, text: &str, what: &str) -> Error {
        let e = &self.entry;
        match status {
            Some(401 | 403) => Error::bad_input(format!(
                "the Hugging Face hub refused access to {} ({what}, HTTP {}): {}accept the licence at {} \
                 with the account your token belongs to, then fetch again",
                e.repo,
                status.unwrap_or_default(),
                if self.has_token {
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
                if self.has_token {
                    ""
                } else {
                    "; a gated or private repo also answers 404 without a token"
                }
            )),
            Some(code) => Error::job_failed(format!(
                "{} answered HTTP {code} for {what} of {}: {text}",
                self.endpoint, e.repo
            )),
            None => Error::job_failed(format!(
                "cannot reach {} for {what} of {}: {text}; check the network or proxy (HTTPS_PROXY), \
                 or use --offline to run from the cache",
                self.endpoint, e.repo
            )),
        }
    }
}

/// Removes a snapshot link and the blob it points to (after a failed check).
pub fn discard(snapshot_file: &Path) {
    if let Ok(blob) = std::fs::canonicalize(snapshot_file) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(snapshot_file);
}
