//! Writing the parts of a cache snapshot that need no download, as huggingface_hub does: a link
//! from `snapshots/<commit>/<file>` to a blob already in `blobs/`, and `refs/<revision>`.
//! Needed when the hub's branch moved since the cache was filled: unchanged files keep their blob
//! (same etag) but the new commit's snapshot has no link to them yet.

use std::path::{Path, PathBuf};

use super::hub::Sibling;
use crate::{Error, Result};

/// The full hash of a commit; huggingface_hub writes no ref for a revision that is one.
pub fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// Links `sib` into `repo_dir/snapshots/<commit>/` when its blob is already in the cache with the
/// hub's size, returning whether it did (false: it has to be downloaded).
pub fn link_cached_blob(repo_dir: &Path, commit: &str, sib: &Sibling) -> Result<bool> {
    let Some(etag) = sib.etag() else {
        return Ok(false);
    };
    let blob = repo_dir.join("blobs").join(etag);
    let Ok(meta) = std::fs::metadata(&blob) else {
        return Ok(false);
    };
    if !meta.is_file() || sib.size.is_some_and(|s| s != meta.len()) {
        return Ok(false);
    }
    let link = repo_dir.join("snapshots").join(commit).join(&sib.rfilename);
    let depth = Path::new(&sib.rfilename).components().count() + 1;
    let target: PathBuf = std::iter::repeat_n("..", depth)
        .chain(["blobs", etag])
        .collect();
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    // A dangling link from an earlier, removed blob would block the new one.
    if std::fs::symlink_metadata(&link).is_ok() {
        std::fs::remove_file(&link).map_err(|e| Error::io(&link, e))?;
    }
    make_link(&target, &blob, &link).map_err(|e| Error::io(&link, e))?;
    Ok(true)
}

#[cfg(unix)]
fn make_link(target: &Path, _blob: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Without the right to make links, huggingface_hub copies; so do we.
#[cfg(windows)]
fn make_link(target: &Path, blob: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
        .or_else(|_| std::fs::copy(blob, link).map(|_| ()))
}

#[cfg(not(any(unix, windows)))]
fn make_link(_target: &Path, blob: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::copy(blob, link).map(|_| ())
}

/// Points `refs/<revision>` at `commit`; for a revision that is itself a commit hash, removes the
/// ref hf-hub writes anyway (huggingface_hub has none).
pub fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<()> {
    if revision
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Ok(());
    }
    let path = repo_dir.join("refs").join(revision);
    if is_commit_hash(revision) {
        if std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == revision) {
            let _ = std::fs::remove_file(&path);
        }
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(&path, commit).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sib(rfilename: &str, size: u64, etag: &str) -> Sibling {
        Sibling {
            rfilename: rfilename.to_owned(),
            size: Some(size),
            blob_id: Some(etag.to_owned()),
            lfs: None,
        }
    }

    #[test]
    fn links_a_cached_blob_relatively_and_skips_missing_or_wrong_sized_ones() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--a--b");
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs/e1"), b"abc").unwrap();
        assert!(link_cached_blob(&repo, "c1", &sib("unet/config.json", 3, "e1")).unwrap());
        let link = repo.join("snapshots/c1/unet/config.json");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../../../blobs/e1")
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"abc");
        assert!(!link_cached_blob(&repo, "c1", &sib("x.json", 4, "e1")).unwrap());
        assert!(!link_cached_blob(&repo, "c1", &sib("y.json", 3, "e2")).unwrap());
    }

    #[test]
    fn refs_for_branches_only() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        write_ref(dir.path(), "main", commit).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("refs/main")).unwrap(),
            commit
        );
        std::fs::write(dir.path().join("refs").join(commit), commit).unwrap();
        write_ref(dir.path(), commit, commit).unwrap();
        assert!(!dir.path().join("refs").join(commit).exists());
        write_ref(dir.path(), "../x", commit).unwrap();
        assert!(!dir.path().join("x").exists());
    }
}
