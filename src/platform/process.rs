//! The operating system's view of processes and files: peak memory, whether a process lives, an
//! exclusive file lock. The libc calls of the jobs and the model fetcher live here.

use std::fs::File;

/// The process's peak resident memory so far.
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let max = unsafe { usage.assume_init() }.ru_maxrss;
        let max = u64::try_from(max).ok()?;
        // macOS reports bytes, Linux kilobytes.
        Some(if cfg!(target_os = "macos") {
            max
        } else {
            max * 1024
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
pub fn process_alive(pid: i64) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: kill with signal 0 only checks for existence and permission.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// An exclusive advisory lock on an open file, failing at once when another process holds it (a
/// second process downloading the same blob would interleave its bytes with ours).
#[cfg(unix)]
pub fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; the lock goes with the descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_nonsense_pids_are_not() {
        assert!(process_alive(i64::from(std::process::id())));
        assert!(!process_alive(0));
        assert!(!process_alive(-1));
        assert!(!process_alive(i64::MAX));
    }

    #[test]
    fn a_second_exclusive_lock_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.part");
        let first = File::create(&path).unwrap();
        let second = File::options().write(true).open(&path).unwrap();
        lock_exclusive(&first).unwrap();
        if cfg!(unix) {
            assert!(lock_exclusive(&second).is_err());
        }
        drop(first);
        lock_exclusive(&second).unwrap();
    }
}
