//! Reading a descriptor with a deadline (poll(2), then read(2)): the terminal probe asks the
//! terminal a question and must never block on stdin when the terminal does not answer.

use std::time::{Duration, Instant};

/// Reads what `fd` has within `wait` into `buf`: `None` when nothing came in time, `Some(0)` at the
/// end of input, else the number of bytes read. A signal during the wait or the read is retried
/// until the deadline.
pub fn read_within(fd: i32, buf: &mut [u8], wait: Duration) -> std::io::Result<Option<usize>> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, the count says one.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes; poll said `fd` is ready, so this returns.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(Some(n.unsigned_abs()));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn reads_what_is_ready_waits_no_longer_and_sees_the_end() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let fd = reader.as_raw_fd();
        let mut buf = [0u8; 8];
        let start = Instant::now();
        assert_eq!(
            read_within(fd, &mut buf, Duration::from_millis(30)).unwrap(),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(25));
        writer.write_all(b"abc").unwrap();
        assert_eq!(
            read_within(fd, &mut buf, Duration::from_secs(5)).unwrap(),
            Some(3)
        );
        assert_eq!(&buf[..3], b"abc");
        drop(writer);
        assert_eq!(
            read_within(fd, &mut buf, Duration::from_secs(5)).unwrap(),
            Some(0)
        );
    }
}
