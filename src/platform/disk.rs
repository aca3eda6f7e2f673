//! Free disk space and writability of a folder that may not exist yet (we ask about its
//! nearest existing ancestor, which is where it would be created).

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The path itself if it exists, else its nearest existing ancestor. A relative path's last
/// ancestor is the empty path, which stands for the current folder (`--out out` on a fresh clone).
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

#[cfg(unix)]
fn c_path(path: &Path) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// Bytes available to this (unprivileged) user on the filesystem that holds `path`.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = c_path(&nearest_existing(path)?)?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `stat` is a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between Linux and macOS
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Whether this user could create or write `path`. Permission bits lie for root, so we try:
/// an existing file is opened for appending (not changed); for a folder, or a path still to be
/// created, a probe file is created in the nearest existing folder and removed at once.
pub fn writable(path: &Path) -> bool {
    let Some(existing) = nearest_existing(path) else {
        return false;
    };
    // Nothing can be created under a regular file (`home` below `/etc/passwd`).
    if existing.is_file() && existing != path {
        return false;
    }
    if existing.is_file() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(&existing)
            .is_ok();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = existing.join(format!(".pallaidium-probe-{}-{nanos}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    if created {
        let _ = std::fs::remove_file(&probe);
    }
    created
}

/// Elsewhere we cannot ask cheaply; report nothing rather than guess.
#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folder_reports_its_parent_filesystem() {
        let dir = std::env::temp_dir();
        let missing = dir.join("pallaidium-no-such-dir").join("deeper");
        assert_eq!(nearest_existing(&missing), Some(dir.clone()));
        assert_eq!(
            nearest_existing(Path::new("no-such-folder-here/out")),
            Some(PathBuf::from("."))
        );
        let free = free_bytes(&missing);
        assert!(
            free.is_some_and(|b| b > 0),
            "free space of {dir:?}: {free:?}"
        );
        assert!(writable(&missing));
    }

    #[test]
    fn proc_is_not_writable_even_for_root() {
        // Permission bits say yes to root; only trying tells the truth.
        if Path::new("/proc/version").exists() {
            assert!(!writable(Path::new("/proc/pallaidium/outputs")));
        }
    }

    #[test]
    fn probe_leaves_nothing_behind() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temp dir");
        };
        assert!(writable(&dir.path().join("a/b")));
        let left = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(usize::MAX);
        assert_eq!(left, 0);
    }
}
