//! Asking the terminal what it can draw, on the calling thread, with nothing left behind.
//!
//! ratatui-image's own query reads stdin on a thread; when the terminal never answers (a detached
//! tmux, a terminal that ignores passthrough) the caller gives up after its timeout but the thread
//! stays blocked in `read()` and swallows the user's first keys. Here stdin is polled with a
//! deadline and only what is ready is read; keys typed while we wait are handed back as events.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crossterm::event::Event;
use ratatui_image::FontSize;
use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use ratatui_image::picker::{Picker, ProtocolType};

use super::typed_ahead::TypedAhead;

/// What the terminal said before the deadline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub kitty: bool,
    pub sixel: bool,
    /// Cell size in pixels (width, height) from the `CSI 16 t` answer.
    pub cell: Option<FontSize>,
    /// The closing status report arrived: the terminal answered the whole query.
    pub answered: bool,
}

impl Findings {
    /// Folds the parser's responses in.
    pub fn add(&mut self, responses: &[Response]) {
        for r in responses {
            match r {
                Response::Kitty => self.kitty = true,
                Response::Sixel => self.sixel = true,
                Response::CellSize(Some(size)) => self.cell = Some(*size),
                Response::Status => self.answered = true,
                Response::CellSize(None)
                | Response::RectangularOps
                | Response::CursorPositionReport(..) => {}
            }
        }
    }
}

/// What the environment says about the terminal (the hints ratatui-image uses).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TermEnv {
    pub tmux: bool,
    /// WezTerm and Konsole answer the kitty and sixel queries but draw neither well.
    pub avoid_kitty_sixel: bool,
    /// The terminal (or the one outside tmux) is known to speak iTerm2's protocol.
    pub iterm: bool,
}

impl TermEnv {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let has = |k: &str| var(k).is_some();
        let term_program = var("TERM_PROGRAM").unwrap_or_default();
        let tmux = var("TERM").is_some_and(|t| t.starts_with("tmux")) || term_program == "tmux";
        const ITERM_PROGRAMS: [&str; 9] = [
            "iTerm",
            "WezTerm",
            "mintty",
            "vscode",
            "Tabby",
            "Hyper",
            "rio",
            "Bobcat",
            "WarpTerminal",
        ];
        let iterm = (tmux && (has("ITERM_SESSION_ID") || has("WEZTERM_EXECUTABLE")))
            || ITERM_PROGRAMS.iter().any(|p| term_program.contains(p))
            || var("LC_TERMINAL").is_some_and(|t| t.contains("iTerm"));
        Self {
            tmux,
            avoid_kitty_sixel: has("WEZTERM_EXECUTABLE") || has("KONSOLE_VERSION"),
            iterm,
        }
    }
}

/// The protocol and cell size the answers and hints support. A silent terminal gets halfblocks
/// (nothing else is safe to send it); so does one whose cell size is unknown (images would be
/// sized wrong). Kitty beats sixel beats iTerm2 (a hint only) beats halfblocks.
pub fn choose(
    found: &Findings,
    env: TermEnv,
    window_cell: Option<FontSize>,
) -> (ProtocolType, Option<FontSize>) {
    let font = found.cell.or(window_cell);
    if !found.answered || font.is_none() {
        return (ProtocolType::Halfblocks, font);
    }
    let proto = if found.kitty && !env.avoid_kitty_sixel {
        ProtocolType::Kitty
    } else if found.sixel && !env.avoid_kitty_sixel {
        ProtocolType::Sixel
    } else if env.iterm {
        ProtocolType::Iterm2
    } else {
        ProtocolType::Halfblocks
    };
    (proto, font)
}

/// The cell size from the window-size ioctl's pixels (zero where the terminal does not fill them).
fn window_cell() -> Option<FontSize> {
    let ws = crossterm::terminal::window_size().ok()?;
    if ws.width == 0 || ws.height == 0 || ws.columns == 0 || ws.rows == 0 {
        return None;
    }
    Some((ws.width / ws.columns, ws.height / ws.rows))
}

/// The result of a probe: the picker (protocol and cell size) and the keys typed meanwhile.
pub struct Probed {
    pub picker: Picker,
    pub typed: Vec<Event>,
}

/// Builds the picker for `proto` and `font` (`None` font: halfblocks only).
pub fn picker_for(proto: ProtocolType, font: Option<FontSize>) -> Picker {
    match (proto, font) {
        (ProtocolType::Halfblocks, _) | (_, None) => Picker::halfblocks(),
        (proto, Some(font)) => {
            // The only constructor that takes a known cell size without querying the terminal
            // again (which is what we must avoid); deprecated in favour of that query.
            #[allow(deprecated)]
            let mut picker = Picker::from_fontsize(font);
            picker.set_protocol_type(proto);
            picker
        }
    }
}

/// Queries the terminal (raw mode must be on, the input reader not started yet) and waits at
/// most `timeout` for the answer. `forced` overrides the protocol, keeping what was measured.
pub fn probe(timeout: Duration, forced: Option<ProtocolType>) -> Probed {
    let env = TermEnv::from_env();
    if env.tmux {
        // tmux drops passthrough sequences (the query, then the images) unless allowed.
        let _ = std::process::Command::new("tmux")
            .args(["set", "-p", "allow-passthrough", "on"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let (found, typed) = match ask(env.tmux, timeout) {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!("terminal graphics query failed ({e}); previews use halfblocks");
            (Findings::default(), TypedAhead::default())
        }
    };
    let window = window_cell();
    let (proto, font) = choose(&found, env, window);
    let picker = match forced {
        // A forced protocol still needs a cell size; 10x20 is ratatui-image's own guess.
        Some(p) => picker_for(p, Some(font.unwrap_or((10, 20)))),
        None => picker_for(proto, font),
    };
    tracing::info!(
        answered = found.answered,
        kitty = found.kitty,
        sixel = found.sixel,
        "preview protocol {:?} (font {:?}, tmux {})",
        picker.protocol_type(),
        picker.font_size(),
        env.tmux
    );
    Probed {
        picker,
        typed: typed.into_events(),
    }
}

/// Writes the query and reads what is ready until the status report or the deadline.
fn ask(tmux: bool, timeout: Duration) -> std::io::Result<(Findings, TypedAhead)> {
    let query = Parser::query(tmux, QueryStdioOptions::default());
    let mut out = std::io::stdout();
    out.write_all(query.as_bytes())?;
    out.flush()?;
    let fd = std::io::stdin().as_raw_fd();
    let deadline = Instant::now() + timeout;
    let mut parser = Parser::new();
    let mut found = Findings::default();
    let mut typed = TypedAhead::default();
    let mut buf = [0u8; 256];
    while !found.answered {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match crate::platform::fd_input::read_within(fd, &mut buf, left)? {
            None | Some(0) => break,
            Some(n) => n,
        };
        let bytes = &buf[..n];
        for &b in bytes {
            // Bytes after the status report are the user's: only the scanner sees them.
            if !found.answered {
                found.add(&parser.push(char::from(b)));
            }
            typed.push(b);
        }
    }
    Ok((found, typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(answer: &str) -> Findings {
        let mut parser = Parser::new();
        let mut found = Findings::default();
        for c in answer.chars() {
            found.add(&parser.push(c));
        }
        found
    }

    const XTERM_SIXEL: &str = "\x1b[?63;1;2;4;6;9;15;16;22;28c\x1b[6;20;10t\x1b[0n";
    const KITTY: &str = "\x1b_Gi=31;OK\x1b\\\x1b[?62;c\x1b[6;17;8t\x1b[0n";

    #[test]
    fn kitty_beats_sixel_beats_iterm_beats_halfblocks() {
        let env = TermEnv::default();
        let kitty = parse(KITTY);
        assert!(kitty.answered && kitty.kitty && !kitty.sixel);
        assert_eq!(
            choose(&kitty, env, None),
            (ProtocolType::Kitty, Some((8, 17)))
        );
        let mut both = parse(XTERM_SIXEL);
        both.kitty = true;
        assert_eq!(choose(&both, env, None).0, ProtocolType::Kitty);
        let sixel = parse(XTERM_SIXEL);
        assert_eq!(
            choose(&sixel, env, None),
            (ProtocolType::Sixel, Some((10, 20)))
        );
        let plain = parse("\x1b[?1;2c\x1b[6;16;8t\x1b[0n");
        assert_eq!(choose(&plain, env, None).0, ProtocolType::Halfblocks);
        let iterm = TermEnv { iterm: true, ..env };
        assert_eq!(choose(&plain, iterm, None).0, ProtocolType::Iterm2);
        assert_eq!(choose(&sixel, iterm, None).0, ProtocolType::Sixel);
    }

    #[test]
    fn a_silent_or_sizeless_terminal_gets_halfblocks() {
        // Nothing came back (a detached tmux): even a hint is not trusted.
        let silent = Findings::default();
        let hinted = TermEnv {
            iterm: true,
            ..TermEnv::default()
        };
        assert_eq!(
            choose(&silent, hinted, Some((9, 18))).0,
            ProtocolType::Halfblocks
        );
        // A partial answer (the status never came) is not an answer either.
        let partial = parse("\x1b[?63;4c\x1b[6;20;10t");
        assert!(partial.sixel && !partial.answered);
        assert_eq!(choose(&partial, hinted, None).0, ProtocolType::Halfblocks);
        // Sixel without a cell size: from the window's pixels, else halfblocks.
        let no_size = parse("\x1b[?63;4c\x1b[0n");
        let env = TermEnv::default();
        assert_eq!(
            choose(&no_size, env, Some((7, 14))),
            (ProtocolType::Sixel, Some((7, 14)))
        );
        assert_eq!(choose(&no_size, env, None).0, ProtocolType::Halfblocks);
    }

    #[test]
    fn wezterm_and_konsole_never_get_kitty_or_sixel() {
        let env = TermEnv::from_lookup(|k| (k == "KONSOLE_VERSION").then(|| "230401".into()));
        assert!(env.avoid_kitty_sixel && !env.tmux);
        assert_eq!(choose(&parse(KITTY), env, None).0, ProtocolType::Halfblocks);
        let wez = TermEnv::from_lookup(|k| match k {
            "WEZTERM_EXECUTABLE" => Some("/usr/bin/wezterm".into()),
            "TERM_PROGRAM" => Some("WezTerm".into()),
            _ => None,
        });
        assert_eq!(
            choose(&parse(XTERM_SIXEL), wez, None).0,
            ProtocolType::Iterm2
        );
    }

    #[test]
    fn environment_hints() {
        let tmux_in_iterm = TermEnv::from_lookup(|k| match k {
            "TERM" => Some("tmux-256color".into()),
            "ITERM_SESSION_ID" => Some("w0t0p0".into()),
            _ => None,
        });
        assert!(tmux_in_iterm.tmux && tmux_in_iterm.iterm);
        // Outside tmux ITERM_SESSION_ID alone can be stale; TERM_PROGRAM decides.
        let stale = TermEnv::from_lookup(|k| (k == "ITERM_SESSION_ID").then(|| "x".into()));
        assert!(!stale.tmux && !stale.iterm);
        let by_program = TermEnv::from_lookup(|k| (k == "TERM_PROGRAM").then(|| "tmux".into()));
        assert!(by_program.tmux);
        let lc = TermEnv::from_lookup(|k| (k == "LC_TERMINAL").then(|| "iTerm2".into()));
        assert!(lc.iterm);
    }

    #[test]
    fn pickers_carry_the_protocol_and_size() {
        let p = picker_for(ProtocolType::Sixel, Some((9, 18)));
        assert_eq!(
            (p.protocol_type(), p.font_size()),
            (ProtocolType::Sixel, (9, 18))
        );
        let p = picker_for(ProtocolType::Kitty, None);
        assert_eq!(p.protocol_type(), ProtocolType::Halfblocks);
    }
}
