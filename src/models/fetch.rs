//! Downloading a registry model into the Hugging Face cache, in the layout Python's huggingface_hub
//! (and hf-hub) write (`refs/`, `blobs/<etag>`, `snapshots/<commit>/<path>` as relative links), so
//! diffusers and pallaidium share downloads both ways.
//!
//! - a download goes to `blobs/<etag>.part`, asking for `Range: bytes=<len>-`, so an interrupted
//!   download resumes on the next run; files the cache already holds are skipped;
//! - every request has connect and read timeouts (`net`), and a cancel (Ctrl-C, SIGTERM, the
//!   TUI's quit) ends a fetch at once (`cancel`);
//! - after downloading we compare each LFS blob's SHA-256 with the hub's hash (the etag of an LFS
//!   file is that hash) and every file's size, and read safetensors headers;
//! - `--offline` / HF_HUB_OFFLINE never builds a client.

pub mod cancel;
pub mod hub;
pub mod net;
mod on_demand;
pub mod progress;
pub mod sha256;
pub mod snapshot;

pub use on_demand::fetch_model;

use std::path::{Path, PathBuf};

use super::entry::ModelEntry;
use super::hf_cache;
use super::safetensors_header;
use crate::device::memory::format_bytes;
use crate::{Error, Result};

pub use progress::{FetchProgress, StderrBar};

/// Disk left free after a download, so the cache never fills the disk to the last byte.
const DISK_MARGIN: u64 = 512 << 20;

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub cache_dir: PathBuf,
    /// HF_TOKEN, or the token file's contents; never logged.
    pub token: Option<String>,
    pub offline: bool,
    /// HF_ENDPOINT (a mirror), else huggingface.co.
    pub endpoint: Option<String>,
    pub timeouts: net::NetTimeouts,
    /// Ends the fetch at once (the TUI's quit); SIGINT and SIGTERM do too while it runs.
    pub cancel: crate::engines::CancelToken,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FetchReport {
    pub repo: String,
    pub revision: String,
    pub snapshot: PathBuf,
    pub downloaded: Vec<String>,
    pub already_cached: Vec<String>,
    pub downloaded_bytes: u64,
}

/// `--offline`, or HF_HUB_OFFLINE set to a true value as huggingface_hub reads it (1, true, yes, on).
pub fn offline_requested(flag: bool) -> bool {
    flag || std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| is_true(&v))
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// The token for gated repos: HF_TOKEN, the legacy HUGGING_FACE_HUB_TOKEN, else the token file.
pub fn read_token(token_file: &Path) -> Option<String> {
    ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .chain(std::fs::read_to_string(token_file).ok())
        .map(|t| t.trim().to_owned())
        .find(|t| !t.is_empty())
}

/// The files a fetch for this weight variant needs; pickles listed by a user's registry are refused.
pub fn files_for(entry: &ModelEntry, fp16: bool) -> Result<Vec<String>> {
    let files: Vec<String> = entry
        .required_files(fp16)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for f in &files {
        safetensors_header::refuse_pickle(Path::new(f)).map_err(|e| {
            Error::bad_input(format!(
                "model `{}` ({}) lists {f}: {e}",
                entry.id, entry.repo
            ))
        })?;
    }
    Ok(files)
}

/// The error for a file the cache lacks when the network may not be used (exit 2).
pub fn offline_miss(entry: &ModelEntry, missing: &[String], cache_dir: &Path, fp16: bool) -> Error {
    let dtype = if fp16 { " --dtype f16" } else { "" };
    Error::bad_input(format!(
        "offline: model `{}` needs {} from {} (revision {}) but the Hugging Face cache at {} lacks it{}; \
         run `pallaidium fetch {}{dtype}` without --offline and with HF_HUB_OFFLINE unset to download it",
        entry.id,
        missing.first().map_or("files", String::as_str),
        entry.repo,
        entry.revision,
        cache_dir.display(),
        match missing.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more files)", n - 1),
        },
        entry.id
    ))
}

/// Refuses a download that would not fit on the cache's disk (exit 2).
pub fn check_disk(cache_dir: &Path, needed: u64, free: Option<u64>) -> Result<()> {
    let Some(free) = free else {
        tracing::warn!(cache = %cache_dir.display(), "cannot tell the free disk space; downloading anyway");
        return Ok(());
    };
    if needed.saturating_add(DISK_MARGIN) > free {
        return Err(Error::bad_input(format!(
            "not enough disk space: the download needs {} (plus {} kept free) but {} is free on the disk \
             that holds the Hugging Face cache {}; free some space or point HF_HUB_CACHE (or HF_HOME) at a larger disk",
            format_bytes(needed),
            format_bytes(DISK_MARGIN),
            format_bytes(free),
            cache_dir.display()
        )));
    }
    Ok(())
}

/// Checks a downloaded (or cached) file: its size, its SHA-256 for LFS files, and for safetensors
/// that the header agrees with the file's length. Errors name the repo file.
pub fn verify_file(
    path: &Path,
    rfilename: &str,
    size: Option<u64>,
    sha256: Option<&str>,
) -> Result<()> {
    match mismatch(path, size, sha256)? {
        Some(why) => Err(Error::bad_input(format!(
            "{rfilename} ({}) is damaged: {why}; delete it and run the fetch again",
            path.display()
        ))),
        None if rfilename.ends_with(".safetensors") => {
            safetensors_header::read_header(path).map(|_| ())
        }
        None => Ok(()),
    }
}

/// How `path` differs from the hub's size and SHA-256, if it does.
fn mismatch(path: &Path, size: Option<u64>, sha256: Option<&str>) -> Result<Option<String>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if let Some(size) = size.filter(|&s| s != len) {
        return Ok(Some(format!("{len} bytes where the hub has {size}")));
    }
    if let Some(expected) = sha256 {
        let got = sha256::file_sha256(path).map_err(|e| Error::io(path, e))?;
        if !got.eq_ignore_ascii_case(expected) {
            return Ok(Some(format!("SHA-256 {got} where the hub has {expected}")));
        }
    }
    Ok(None)
}

/// Checks a file just downloaded; a bad one is removed (blob and link), so the next fetch starts
/// it afresh, and the error says so. A damaged download is a failed job (exit 1), not bad input.
fn check_download(entry: &ModelEntry, path: &Path, sib: &hub::Sibling) -> Result<()> {
    let why = match mismatch(path, sib.size, sib.sha256()) {
        Ok(None) if sib.rfilename.ends_with(".safetensors") => {
            safetensors_header::read_header(path)
                .err()
                .map(|e| e.to_string())
        }
        Ok(None) => None,
        Ok(Some(why)) => Some(why),
        Err(e) => Some(e.to_string()),
    };
    let Some(why) = why else { return Ok(()) };
    hub::discard(path);
    Err(Error::job_failed(format!(
        "the download of {} from {} is damaged ({why}); the bad file was removed: \
         run `pallaidium fetch {}` again to download it afresh",
        sib.rfilename, entry.repo, entry.id
    )))
}

/// Makes sure every file `entry` needs for this weight variant is in the cache, downloading the
/// missing ones. Offline, a missing file is an error naming it and the command that fetches it.
pub fn fetch_entry(
    entry: &ModelEntry,
    fp16: bool,
    opts: &FetchOptions,
    progress: &mut dyn FetchProgress,
) -> Result<FetchReport> {
    let _span = tracing::info_span!("fetch", model = %entry.id, repo = %entry.repo).entered();
    let files = files_for(entry, fp16)?;
    let missing: Vec<String> = hf_cache::missing_files(&opts.cache_dir, entry, fp16)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let report = |snapshot: PathBuf, downloaded: Vec<String>, bytes: u64| FetchReport {
        repo: entry.repo.clone(),
        revision: entry.revision.clone(),
        snapshot,
        already_cached: files
            .iter()
            .filter(|f| !downloaded.contains(f))
            .cloned()
            .collect(),
        downloaded,
        downloaded_bytes: bytes,
    };
    if missing.is_empty() {
        let snapshot = hf_cache::cached_snapshot(&opts.cache_dir, &entry.repo, &entry.revision)
            .unwrap_or_else(|| hf_cache::repo_folder(&opts.cache_dir, &entry.repo));
        return Ok(report(snapshot, Vec::new(), 0));
    }
    if opts.offline {
        return Err(offline_miss(entry, &missing, &opts.cache_dir, fp16));
    }
    let client = hub::HubClient::new(entry, opts)?;
    let cancel = cancel::FetchCancel::watch(&opts.cancel);
    let listing = client.listing(&cancel)?;
    // The branch may have moved since the cache was filled: what is missing is judged against
    // the commit it names now, and unchanged files (same blob) are linked, not downloaded again.
    let repo_dir = hf_cache::repo_folder(&opts.cache_dir, &entry.repo);
    let snapshot = repo_dir.join("snapshots").join(&listing.sha);
    let mut to_download = Vec::new();
    for f in &files {
        let sibs = listing.files_matching(f);
        if sibs.is_empty() {
            return Err(Error::bad_input(format!(
                "{} at revision {} has no file {f}; the registry entry `{}` ({}) is wrong for this repo",
                entry.repo, entry.revision, entry.id, entry.source
            )));
        }
        for sib in sibs {
            if !snapshot.join(&sib.rfilename).is_file()
                && !snapshot::link_cached_blob(&repo_dir, &listing.sha, sib)?
            {
                to_download.push(sib);
            }
        }
    }
    let needed = to_download
        .iter()
        .map(|sib| {
            sib.size
                .unwrap_or(0)
                .saturating_sub(client.partial_bytes(sib))
        })
        .sum();
    check_disk(
        &opts.cache_dir,
        needed,
        crate::platform::disk::free_bytes(&opts.cache_dir),
    )?;
    let mut downloaded = Vec::new();
    let mut bytes = 0;
    for sib in to_download {
        let path = client.download(sib, &listing.sha, &cancel, progress)?;
        check_download(entry, &path, sib)?;
        bytes += sib.size.unwrap_or(0);
        downloaded.push(sib.rfilename.clone());
    }
    snapshot::write_ref(&repo_dir, &entry.revision, &listing.sha)?;
    Ok(report(snapshot, downloaded, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_env_values_follow_huggingface_hub() {
        for v in ["1", "true", "YES", "on "] {
            assert!(is_true(v), "{v}");
        }
        for v in ["0", "false", "", "no"] {
            assert!(!is_true(v), "{v}");
        }
    }

    #[test]
    fn disk_check_names_needed_and_free() {
        let dir = Path::new("/tmp/cache");
        assert!(check_disk(dir, 1 << 30, Some(10 << 30)).is_ok());
        assert!(check_disk(dir, 1 << 30, None).is_ok());
        let err = check_disk(dir, 4 << 30, Some(2 << 30))
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        let (code, msg) = err.unwrap_or_default();
        assert_eq!(code, 2);
        assert!(
            msg.contains("4.0 GiB") && msg.contains("2.0 GiB") && msg.contains("HF_HUB_CACHE"),
            "{msg}"
        );
    }

    #[test]
    fn verify_catches_size_hash_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(verify_file(&path, "x/config.json", Some(3), Some(abc)).is_ok());
        let wrong_size = verify_file(&path, "x/config.json", Some(4), None)
            .err()
            .unwrap();
        assert!(wrong_size.to_string().contains("x/config.json"));
        let wrong_hash = verify_file(&path, "x/a.bin", None, Some(&"0".repeat(64)))
            .err()
            .unwrap();
        assert!(wrong_hash.to_string().contains("SHA-256"));
        let st = dir.path().join("w.safetensors");
        safetensors_header::write_sparse(&st, &[("w", "F32", &[8])]).unwrap();
        let full = std::fs::read(&st).unwrap();
        std::fs::write(&st, &full[..full.len() - 4]).unwrap();
        let err = verify_file(&st, "unet/w.safetensors", None, None)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("w.safetensors"));
    }
}
