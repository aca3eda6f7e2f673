//! Free disk space and writability of a folder that may not exist yet (we ask about its
//! nearest existing ancestor, which is where it would be created).

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The path itself if it exists, else its nearest existing ancestor.
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.exists()).map(Path::to_path_buf)
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

/// Whether this user could create or write `path` (checks the nearest existing ancestor).
#[cfg(unix)]
pub fn writable(path: &Path) -> bool {
    let Some(c) = nearest_existing(path).and_then(|p| c_path(&p)) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Elsewhere we cannot ask cheaply; report nothing rather than guess.
#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(not(unix))]
pub fn writable(path: &Path) -> bool {
    nearest_existing(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folder_reports_its_parent_filesystem() {
        let dir = std::env::temp_dir();
        let missing = dir.join("pallaidium-no-such-dir").join("deeper");
        assert_eq!(nearest_existing(&missing), Some(dir.clone()));
        let free = free_bytes(&missing);
        assert!(free.is_some_and(|b| b > 0), "free space of {dir:?}: {free:?}");
        assert!(writable(&missing));
    }

    #[test]
    fn unwritable_root_file_is_not_writable_for_users() {
        // /proc/version is read-only even for root.
        if Path::new("/proc/version").exists() {
            assert!(!writable(Path::new("/proc/version")));
        }
    }
}
