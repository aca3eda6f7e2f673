//! A text result in the preview pane: a caption, an enhanced prompt, a transcript. Word-wrapped
//! to the pane, scrollable, and following the end while a job streams into it.

use std::cell::Cell;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::DrawCtx;
use crate::jobs::JobId;

#[derive(Debug, Clone, Default)]
pub struct TextView {
    pub label: String,
    pub text: String,
    /// The job whose text this is.
    pub job: Option<JobId>,
    /// True while the job is still sending text.
    pub streaming: bool,
    /// The first shown line, when not following the end.
    top: usize,
    /// Keep the last line in view (new text scrolls); scrolling up stops it, End resumes it.
    follow: bool,
    /// The largest `top` at the last draw (the wrapped length depends on the width).
    max_top: Cell<usize>,
}

impl TextView {
    pub fn new(label: String, text: String, job: Option<JobId>, streaming: bool) -> Self {
        Self {
            label,
            text,
            job,
            streaming,
            top: 0,
            // A finished text opens at its start; a streaming one follows what arrives.
            follow: streaming,
            max_top: Cell::new(0),
        }
    }

    pub fn push(&mut self, delta: &str) {
        self.text.push_str(delta);
    }

    /// Scroll keys; false for keys it does not use.
    pub fn key(&mut self, key: &KeyEvent, page: usize) -> bool {
        let top = self.shown_top();
        let max = self.max_top.get();
        self.top = match key.code {
            KeyCode::Up | KeyCode::Char('k') => top.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => (top + 1).min(max),
            KeyCode::PageUp => top.saturating_sub(page),
            KeyCode::PageDown => (top + page).min(max),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => max,
            _ => return false,
        };
        self.follow = self.top >= max;
        true
    }

    pub fn scroll(&mut self, down: bool) {
        let code = if down { KeyCode::Down } else { KeyCode::Up };
        self.key(&KeyEvent::from(code), 1);
    }

    fn shown_top(&self) -> usize {
        if self.follow {
            self.max_top.get()
        } else {
            self.top.min(self.max_top.get())
        }
    }

    /// Draws the wrapped text into `area`; the last line says where the view is.
    pub fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        if area.height == 0 || area.width == 0 {
            return;
        }
        let text_h = usize::from(area.height.saturating_sub(1)).max(1);
        let lines = wrap(&self.text, usize::from(area.width));
        self.max_top.set(lines.len().saturating_sub(text_h));
        let top = self.shown_top();
        let shown: Vec<Line> = lines
            .iter()
            .skip(top)
            .take(text_h)
            .map(|l| Line::styled(l.clone(), t.text()))
            .collect();
        let text_area = Rect::new(area.x, area.y, area.width, text_h as u16);
        if self.text.trim().is_empty() {
            let waiting = if self.streaming {
                "waiting for text…"
            } else {
                "(no text)"
            };
            frame.render_widget(Paragraph::new(Line::styled(waiting, t.muted())), text_area);
        } else {
            frame.render_widget(Paragraph::new(shown), text_area);
        }
        if area.height > 1 {
            let state = if self.streaming { " · streaming" } else { "" };
            let position = if lines.len() > text_h {
                format!(
                    " · {}-{}/{}",
                    top + 1,
                    (top + text_h).min(lines.len()),
                    lines.len()
                )
            } else {
                String::new()
            };
            let footer = format!("{}{state}{position}", self.label);
            frame.render_widget(
                Paragraph::new(Line::styled(
                    super::ellipsize(&footer, usize::from(area.width)),
                    t.muted(),
                )),
                Rect::new(area.x, area.y + area.height - 1, area.width, 1),
            );
        }
    }
}

/// Greedy word wrap to `width` characters; words longer than a line are cut, line breaks kept.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            let mut word: Vec<char> = word.chars().collect();
            if len > 0 && len + 1 + word.len() > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            // Only a word alone on its line can be wider than the line: cut it.
            while len == 0 && word.len() > width {
                out.push(word.drain(..width).collect());
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            len += word.len();
            line.extend(word);
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(
            wrap("a lighthouse at dusk", 10),
            ["a", "lighthouse", "at dusk"]
        );
        assert_eq!(wrap("abcdefghij klm", 4), ["abcd", "efgh", "ij", "klm"]);
        assert_eq!(wrap("one\n\ntwo  three", 20), ["one", "", "two three"]);
        assert_eq!(wrap("", 5), [""]);
    }

    #[test]
    fn scrolling_stops_following_and_end_resumes() {
        let mut v = TextView::new("t".into(), String::new(), Some(JobId(1)), true);
        v.max_top.set(10);
        assert_eq!(v.shown_top(), 10, "a stream follows its end");
        v.scroll(false);
        assert_eq!(v.shown_top(), 9);
        v.max_top.set(12);
        assert_eq!(
            v.shown_top(),
            9,
            "scrolled up: new text does not move the view"
        );
        v.key(&KeyEvent::from(KeyCode::End), 5);
        v.max_top.set(14);
        assert_eq!(v.shown_top(), 14);
        v.key(&KeyEvent::from(KeyCode::Home), 5);
        assert_eq!(v.shown_top(), 0);
    }
}
