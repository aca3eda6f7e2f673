//! The HTTP side every hub request shares: connect and read timeouts (a server that accepts and
//! never answers must not hang a run), the agent built with them, and errors that name the
//! endpoint and the timeout that ran out.

use std::time::Duration;

use crate::Error;
use crate::platform::switches::Switches;

/// Seconds to wait for a TCP connection (`PALLAIDIUM_CONNECT_TIMEOUT`).
pub const CONNECT_TIMEOUT_VAR: &str = "PALLAIDIUM_CONNECT_TIMEOUT";
/// Seconds to wait for the next bytes of an answer (`PALLAIDIUM_READ_TIMEOUT`).
pub const READ_TIMEOUT_VAR: &str = "PALLAIDIUM_READ_TIMEOUT";
const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const DEFAULT_READ: Duration = Duration::from_secs(30);

/// How long a request may wait to connect and, once connected, between bytes of the answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetTimeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Default for NetTimeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT,
            read: DEFAULT_READ,
        }
    }
}

impl NetTimeouts {
    /// The defaults, overridden by PALLAIDIUM_CONNECT_TIMEOUT / PALLAIDIUM_READ_TIMEOUT (parsed
    /// and checked at start, `Switches`).
    pub fn from_switches(switches: &Switches) -> Self {
        let d = Self::default();
        Self {
            connect: switches.connect_timeout.unwrap_or(d.connect),
            read: switches.read_timeout.unwrap_or(d.read),
        }
    }

    /// A ureq agent with these timeouts; proxies from the environment as before (HTTPS_PROXY),
    /// and the token kept on same-host redirects only (the CDN gets signed URLs, not the token).
    pub fn agent(&self) -> ureq::Agent {
        ureq::builder()
            .try_proxy_from_env(true)
            .timeout_connect(self.connect)
            .timeout_read(self.read)
            .timeout_write(self.read)
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("pallaidium/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// Which wait ran out, when an I/O error is a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    Connect,
    Read,
}

/// Whether `err` (or its cause) is a timeout, and which one: ureq reports a connect that ran out
/// as `ConnectionFailed` with a timed-out cause, a silent server as a timed-out read.
pub fn timed_out(err: &ureq::Transport) -> Option<TimedOut> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut timeout = err.to_string().contains("timed out");
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timeout |= matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        source = e.source();
    }
    timeout.then_some(if err.kind() == ureq::ErrorKind::ConnectionFailed {
        TimedOut::Connect
    } else {
        TimedOut::Read
    })
}

/// Whether a body read failed because the server went silent.
pub fn io_timed_out(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// A failed job (exit 1: the input was fine, the network was not; nothing was queued or written)
/// that names the endpoint, the wait that ran out and how to lengthen it.
pub fn timeout_error(which: TimedOut, t: &NetTimeouts, endpoint: &str, what: &str) -> Error {
    let (secs, var, doing) = match which {
        TimedOut::Connect => (t.connect, CONNECT_TIMEOUT_VAR, "could not connect to"),
        TimedOut::Read => (t.read, READ_TIMEOUT_VAR, "got no answer from"),
    };
    Error::job_failed(format!(
        "{doing} {endpoint} within {} s ({what}): the {} timeout ran out; check the network, \
         HF_ENDPOINT or the proxy, or set {var} (seconds) for a slow link, and run again",
        fmt_secs(secs),
        match which {
            TimedOut::Connect => "connect",
            TimedOut::Read => "read",
        }
    ))
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let t = NetTimeouts::from_switches(&Switches::default());
        assert_eq!(t, NetTimeouts::default());
        assert_eq!(t.connect, Duration::from_secs(10));
        assert_eq!(t.read, Duration::from_secs(30));
        let t = NetTimeouts::from_switches(&Switches {
            connect_timeout: Some(Duration::from_secs(2)),
            read_timeout: Some(Duration::from_millis(500)),
            ..Switches::default()
        });
        assert_eq!(t.connect, Duration::from_secs(2));
        assert_eq!(t.read, Duration::from_millis(500));
    }

    #[test]
    fn the_timeout_message_names_endpoint_wait_and_variable() {
        let t = NetTimeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_millis(1500),
        };
        let e = timeout_error(TimedOut::Read, &t, "http://127.0.0.1:9", "the file list");
        assert_eq!(e.exit_code(), 1);
        let msg = e.to_string();
        assert!(
            msg.contains("http://127.0.0.1:9")
                && msg.contains("1.5 s")
                && msg.contains("read timeout")
                && msg.contains(READ_TIMEOUT_VAR),
            "{msg}"
        );
        let msg = timeout_error(TimedOut::Connect, &t, "http://h", "x").to_string();
        assert!(
            msg.contains("3 s") && msg.contains(CONNECT_TIMEOUT_VAR),
            "{msg}"
        );
    }
}
