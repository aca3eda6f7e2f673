//! Keys typed while the terminal query waits for its answer: the answer's escape sequences are
//! dropped, the rest becomes key events, so a user who types at once loses nothing.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// Inside `ESC [ ...` until its final byte.
    Csi,
    /// After `ESC O`: one more byte ends it.
    Ss3,
    /// Inside `ESC _`, `ESC P` or `ESC ]` until ST (`ESC \`) or BEL.
    Text,
    /// ESC inside such a string.
    TextEscape,
}

/// Splits input bytes into escape sequences (dropped: answers, or keys we cannot tell from them)
/// and plain bytes (kept as typed).
#[derive(Debug, Default)]
pub struct TypedAhead {
    state: State,
    kept: Vec<u8>,
}

impl TypedAhead {
    pub fn push(&mut self, b: u8) {
        const ESC: u8 = 0x1b;
        self.state = match (self.state, b) {
            (State::Ground, ESC) => State::Escape,
            (State::Ground, _) => {
                self.kept.push(b);
                State::Ground
            }
            (State::Escape, b'[') => State::Csi,
            (State::Escape, b'O') => State::Ss3,
            (State::Escape, b'_' | b'P' | b']') => State::Text,
            (State::Escape, ESC) => State::Escape,
            // ESC and a key: Alt and that key; not a keystroke the TUI needs before it is drawn.
            (State::Escape, _) | (State::Ss3, _) => State::Ground,
            (State::Csi, 0x40..=0x7e) => State::Ground,
            (State::Csi, _) => State::Csi,
            (State::Text, ESC) => State::TextEscape,
            (State::Text, 0x07) => State::Ground,
            (State::Text, _) => State::Text,
            (State::TextEscape, b'\\') => State::Ground,
            (State::TextEscape, _) => State::Text,
        };
    }

    /// The kept bytes as key events (a lone trailing ESC is the Esc key).
    pub fn into_events(self) -> Vec<Event> {
        let mut events: Vec<Event> = String::from_utf8_lossy(&self.kept)
            .chars()
            .filter_map(key_of)
            .map(Event::Key)
            .collect();
        if self.state == State::Escape {
            events.push(Event::Key(KeyEvent::from(KeyCode::Esc)));
        }
        events
    }
}

/// The key a raw-mode byte (or character) stands for.
fn key_of(c: char) -> Option<KeyEvent> {
    let ctrl = |c: char| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
    Some(match c {
        '\r' | '\n' => KeyEvent::from(KeyCode::Enter),
        '\t' => KeyEvent::from(KeyCode::Tab),
        '\x7f' | '\x08' => KeyEvent::from(KeyCode::Backspace),
        '\x00' => ctrl(' '),
        '\x01'..='\x1a' => ctrl(char::from(c as u8 - 1 + b'a')),
        c if c.is_control() => return None,
        c => KeyEvent::from(KeyCode::Char(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(bytes: &[u8]) -> Vec<Event> {
        let mut t = TypedAhead::default();
        for &b in bytes {
            t.push(b);
        }
        t.into_events()
    }

    fn chars(s: &str) -> Vec<Event> {
        s.chars()
            .map(|c| Event::Key(KeyEvent::from(KeyCode::Char(c))))
            .collect()
    }

    #[test]
    fn answers_are_dropped_and_keys_kept_in_order() {
        let answer = b"ab\x1b_Gi=31;OK\x1b\\\x1b[?63;4c\x1b[6;20;10tc\x1b[0n\x1bP>|tmux\x1b\\d\x1b]11;rgb:0/0/0\x07";
        assert_eq!(typed(answer), chars("abcd"));
    }

    #[test]
    fn control_keys_and_utf8() {
        assert_eq!(
            typed("\x07é\r\x7f\t".as_bytes()),
            vec![
                Event::Key(KeyEvent::new(KeyCode::Char('g'), KeyModifiers::CONTROL)),
                Event::Key(KeyEvent::from(KeyCode::Char('é'))),
                Event::Key(KeyEvent::from(KeyCode::Enter)),
                Event::Key(KeyEvent::from(KeyCode::Backspace)),
                Event::Key(KeyEvent::from(KeyCode::Tab)),
            ]
        );
        // Arrow keys (CSI, SS3) are indistinguishable from answers until parsed: dropped.
        assert_eq!(typed(b"\x1b[A\x1bOBx"), chars("x"));
        assert_eq!(
            typed(b"x\x1b"),
            [chars("x"), vec![Event::Key(KeyEvent::from(KeyCode::Esc))]].concat()
        );
    }
}
