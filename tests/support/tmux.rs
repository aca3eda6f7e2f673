//! A private tmux server for the TUI tests: start one, type into it, read its screen, start the
//! TUI in it and quit it. Included with `#[path = "../support/tmux.rs"] mod tmux;` in a test binary\'s main.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server on its own socket, killed when the test ends (pass or fail).
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(width: u16, height: u16) -> Self {
        // One server per test: tests of this file run in parallel in one process.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("pallaidium-tui-test-{}-{n}", std::process::id());
        let tmux = Self { socket };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (CI installs it)")
    }

    pub fn send_line(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", text]);
        self.cmd(&["send-keys", "-t", "t", "Enter"]);
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    pub fn alternate_on(&self) -> bool {
        let out = self.cmd(&["display-message", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Polls the screen until `pred` holds; panics with the last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

pub fn pngs(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "png")
}

/// Every file under `dir` (recursively) whose extension is `ext`.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_with_ext(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            found.push(p);
        }
    }
    found
}

/// Starts the TUI in `tmux` with `args` (previews off) and waits until it is drawn.
pub fn launch(tmux: &Tmux, home: &Path, args: &str) {
    start_tui(tmux, home, "none", args);
    wait_for_tui(tmux);
}

/// Types the command that starts the TUI with `--preview-protocol` `preview` (through its
/// environment variable), without waiting for it.
pub fn start_tui(tmux: &Tmux, home: &Path, preview: &str, args: &str) {
    tmux.wait_for("the shell", Duration::from_secs(10), |s| {
        !s.trim().is_empty()
    });
    let command = format!(
        "cd {home} && PALLAIDIUM_HOME={home} PALLAIDIUM_PREVIEW_PROTOCOL={preview} {bin} \
         --device cpu --out {home}/out {args}; echo EXIT=$?",
        home = home.display(),
        bin = env!("CARGO_BIN_EXE_pallaidium"),
    );
    tmux.send_line(&command);
}

/// Waits until the TUI has drawn its panes.
pub fn wait_for_tui(tmux: &Tmux) -> String {
    tmux.wait_for("the TUI", Duration::from_secs(30), |s| {
        s.contains("Parameters") && s.contains("System")
    })
}

/// Leaves the prompt field, then quits. Esc and q sent back to back can reach the TUI as one
/// Alt-q (a letter typed into the prompt), so q waits until the field is left.
pub fn quit(tmux: &Tmux) {
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt field left", Duration::from_secs(10), |s| {
        s.contains("Enter/i edits")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("the shell again", Duration::from_secs(30), |s| {
        s.contains("EXIT=0")
    });
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
