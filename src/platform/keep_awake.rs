//! Keeps the machine from sleeping while jobs run (a Mac mini under an overnight batch).
//! The guard owns a child process that holds the assertion; dropping the guard kills it.
//! Missing tools never fail a job: the guard then does nothing and says why in the log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepAwakeMethod {
    /// `caffeinate -i -w <pid>`: prevents idle sleep until we exit (macOS).
    Caffeinate,
    /// `systemd-inhibit --what=idle:sleep ...`: a logind inhibitor lock (Linux with systemd).
    SystemdInhibit,
    /// Nothing held (another OS, the tool missing or refused).
    None,
}

/// Held while jobs run; dropping it releases the assertion.
#[derive(Debug)]
pub struct KeepAwake {
    child: Option<Child>,
    method: KeepAwakeMethod,
}

/// Looks for an executable in PATH.
pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The command that would hold the assertion on this OS, if its tool is installed.
pub fn keep_awake_command(reason: &str, pid: u32) -> Option<(KeepAwakeMethod, Command)> {
    if cfg!(target_os = "macos") {
        let tool = find_in_path("caffeinate").unwrap_or_else(|| "/usr/bin/caffeinate".into());
        if !tool.is_file() {
            return None;
        }
        // -i: no idle sleep (display may sleep); -w: stop by itself when our process exits.
        let mut cmd = Command::new(tool);
        cmd.args(["-i", "-w", &pid.to_string()]);
        return Some((KeepAwakeMethod::Caffeinate, cmd));
    }
    if cfg!(target_os = "linux") {
        let tool = find_in_path("systemd-inhibit")?;
        // `tail --pid` ends the lock when we exit, even if we are killed before dropping the guard.
        let mut cmd = Command::new(tool);
        cmd.args([
            "--what=idle:sleep",
            "--who=pallaidium",
            &format!("--why={reason}"),
            "--mode=block",
            "tail",
            &format!("--pid={pid}"),
            "-f",
            "/dev/null",
        ]);
        return Some((KeepAwakeMethod::SystemdInhibit, cmd));
    }
    None
}

/// Whether this process already said it cannot keep the machine awake. Said once: the TUI takes
/// a guard for each batch, and a container without logind refuses every time.
static SAID_INERT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs why nothing is held, at info level (nothing fails; doctor reports the missing tool),
/// and only the first time.
fn say_inert(why: std::fmt::Arguments<'_>) {
    if !SAID_INERT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        tracing::info!("keep-awake: {why}; the machine may sleep during jobs");
    }
}

impl KeepAwake {
    /// Starts holding the assertion. Never fails: without the tool, or when it refuses
    /// (no D-Bus in a container, say), the guard is inert and the log says why.
    pub fn acquire(reason: &str) -> Self {
        let inert = Self {
            child: None,
            method: KeepAwakeMethod::None,
        };
        let Some((method, mut cmd)) = keep_awake_command(reason, std::process::id()) else {
            say_inert(format_args!("no caffeinate/systemd-inhibit here"));
            return inert;
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(err) => {
                say_inert(format_args!("{method:?} could not start ({err})"));
                return inert;
            }
        };
        // A tool that refuses (no logind, no permission) exits at once: give it a moment to say so.
        std::thread::sleep(Duration::from_millis(150));
        if let Ok(Some(status)) = child.try_wait() {
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut why);
            }
            say_inert(format_args!(
                "{method:?} refused ({status}: {})",
                why.trim()
            ));
            return inert;
        }
        tracing::info!(?method, reason, pid = child.id(), "keep-awake: holding");
        Self {
            child: Some(child),
            method,
        }
    }

    pub fn method(&self) -> KeepAwakeMethod {
        self.method
    }

    /// The pid of the child holding the assertion, while one does.
    pub fn holder_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killing systemd-inhibit releases the lock (its `tail` child ends when we exit, or
            // within a second of noticing its parent is gone).
            let _ = child.kill();
            let _ = child.wait();
            tracing::info!(method = ?self.method, "keep-awake: released");
        }
    }
}

/// Whether a keep-awake tool is installed here (for `doctor`; does not start it).
pub fn tool_available() -> bool {
    keep_awake_command("check", std::process::id())
        .is_some_and(|(_, cmd)| Path::new(cmd.get_program()).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_matches_the_os() {
        let found = keep_awake_command("batch", 4242);
        if let Some((method, cmd)) = &found {
            let args: Vec<String> = cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            match method {
                KeepAwakeMethod::Caffeinate => assert_eq!(args, ["-i", "-w", "4242"]),
                KeepAwakeMethod::SystemdInhibit => {
                    assert!(args.contains(&"--why=batch".to_string()));
                    assert!(args.contains(&"--pid=4242".to_string()));
                }
                KeepAwakeMethod::None => panic!("a command without a method"),
            }
        } else {
            assert!(!cfg!(target_os = "macos") || !Path::new("/usr/bin/caffeinate").exists());
        }
    }

    #[test]
    fn guard_releases_its_holder_on_drop() {
        let guard = KeepAwake::acquire("unit test");
        let pid = guard.holder_pid();
        assert_eq!(pid.is_some(), guard.method() != KeepAwakeMethod::None);
        drop(guard);
        if let Some(pid) = pid {
            // SAFETY: signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
            assert!(!alive, "keep-awake holder {pid} still running after drop");
        }
    }
}
