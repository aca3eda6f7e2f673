//! Stored or user-given text on its way to a terminal: control characters are shown as escapes,
//! so a prompt holding `ESC ]0;...BEL` cannot retitle, recolour or clear the user's terminal.
//! JSON output needs none of this (serde escapes control characters itself).

use std::borrow::Cow;

/// `text` with every control character but newline and tab written as a visible escape
/// (`\x1b`, `\x07`, `\r`, `\u{9b}`); text without any comes back borrowed.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// C0 controls, DEL and the C1 controls (0x80-0x9f: a lone 0x9b is CSI to some terminals), and
/// the bidirectional overrides that reorder what is shown.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc_title_and_colour_sequences_become_visible_text() {
        let prompt = "fox \u{1b}]0;pwned\u{7} \u{1b}[31mred\u{1b}[0m";
        let shown = escape_controls(prompt);
        assert_eq!(shown, "fox \\x1b]0;pwned\\x07 \\x1b[31mred\\x1b[0m");
        assert!(!shown.chars().any(|c| c.is_control()));
    }

    #[test]
    fn plain_text_newlines_and_tabs_are_kept_and_borrowed() {
        let text = "a red fox\tin snow\nsecond line, ünïcödé 狐";
        assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn carriage_return_del_c1_and_bidi_overrides_are_escaped() {
        assert_eq!(
            escape_controls("a\rb\u{7f}c\u{9b}d\u{202e}e"),
            "a\\rb\\x7fc\\u{9b}d\\u{202e}e"
        );
        assert_eq!(escape_controls("\0"), "\\x00");
    }
}
