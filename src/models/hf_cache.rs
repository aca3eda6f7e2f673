//! Read-only lookups in the Hugging Face cache, in the layout Python's huggingface_hub writes:
//! `<cache>/models--org--name/{refs/<revision>, snapshots/<commit>/<path>, blobs/<hash>}`, where
//! snapshot files are links into blobs/. Nothing here touches the network or writes. The cache folder
//! itself comes from the caller (`platform::paths::Paths::hf_cache`).

use std::path::{Path, PathBuf};

use super::entry::ModelEntry;

/// Whether a Hugging Face token is available: HF_TOKEN (or the legacy HUGGING_FACE_HUB_TOKEN) or a
/// non-empty token file (`Paths::hf_token_file`, where `huggingface-cli login` writes it). Never
/// returns the token itself.
pub fn token_present(token_file: Option<&Path>) -> bool {
    let env_set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    env_set("HF_TOKEN")
        || env_set("HUGGING_FACE_HUB_TOKEN")
        || token_file
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|t| !t.trim().is_empty())
}

/// `models--org--name`: the folder of one repo inside the cache.
pub fn repo_folder(cache_dir: &Path, repo: &str) -> PathBuf {
    cache_dir.join(format!("models--{}", repo.replace('/', "--")))
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// The snapshot folder of `repo` at `revision` (a branch or tag resolved through refs/, or a commit
/// hash used directly), if that snapshot exists.
pub fn cached_snapshot(cache_dir: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let folder = repo_folder(cache_dir, repo);
    let commit = if is_commit_hash(revision) {
        revision.to_owned()
    } else {
        // Refuse revisions that would step outside refs/.
        if revision
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return None;
        }
        let text = std::fs::read_to_string(folder.join("refs").join(revision)).ok()?;
        let commit = text.trim().to_owned();
        if !is_commit_hash(&commit) {
            return None;
        }
        commit
    };
    let snapshot = folder.join("snapshots").join(commit);
    snapshot.is_dir().then_some(snapshot)
}

/// The files `entry` needs (fp16 variants when `fp16`) that are not in the cache; every file when
/// the snapshot itself is missing. A dangling link counts as missing.
pub fn missing_files<'e>(cache_dir: &Path, entry: &'e ModelEntry, fp16: bool) -> Vec<&'e str> {
    let needed = entry.required_files(fp16);
    match cached_snapshot(cache_dir, &entry.repo, &entry.revision) {
        // `is_file` follows links, so a link into a missing blob is not a file.
        Some(snapshot) => needed
            .into_iter()
            .filter(|f| {
                if super::file_pattern::is_pattern(f) {
                    super::file_pattern::matching_in(&snapshot, f).is_empty()
                } else {
                    !snapshot.join(f).is_file()
                }
            })
            .collect(),
        None => needed,
    }
}

/// True when every file the entry needs for this weight variant is in the cache.
pub fn is_cached(cache_dir: &Path, entry: &ModelEntry, fp16: bool) -> bool {
    missing_files(cache_dir, entry, fp16).is_empty()
}
