//! The prompt: a multi-line editor for the prompt and one for the negative prompt, with history
//! recalled by Up at the first line and Down at the last. While a prompt helper (enhance, caption)
//! runs, its streamed text shows in place of the prompt, which it then replaces (one undo step).

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::editor::TextEditor;
use super::{Action, DrawCtx, Handled, Pane};
use crate::tui::event::AppEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Prompt,
    Negative,
}

#[derive(Debug)]
pub struct PromptPane {
    prompt: TextEditor,
    negative: TextEditor,
    field: Field,
    editing: bool,
    history: Vec<String>,
    /// Index into `history` while browsing it; `draft` holds what was typed before.
    browsing: Option<usize>,
    draft: String,
    /// A running helper: its label ("enhance") and the text it has streamed so far.
    assist: Option<(String, String)>,
}

pub const HISTORY_LIMIT: usize = 500;

impl PromptPane {
    pub fn new(prompt: &str, negative: &str) -> Self {
        Self {
            prompt: TextEditor::new(prompt),
            negative: TextEditor::new(negative),
            field: Field::Prompt,
            editing: true,
            history: Vec::new(),
            browsing: None,
            draft: String::new(),
            assist: None,
        }
    }

    /// A helper job started: its text streams in place of the prompt until `end_assist`.
    pub fn begin_assist(&mut self, doing: &str) {
        self.assist = Some((doing.to_owned(), String::new()));
    }

    pub fn assist_push(&mut self, delta: &str) {
        if let Some((_, text)) = &mut self.assist {
            text.push_str(delta);
        }
    }

    pub fn end_assist(&mut self) {
        self.assist = None;
    }

    /// What the running helper has streamed, if one runs.
    pub fn assist_text(&self) -> Option<&str> {
        self.assist.as_ref().map(|(_, t)| t.as_str())
    }

    /// Replaces the prompt with a helper's result; Ctrl-Z brings the old prompt back.
    pub fn replace_prompt(&mut self, text: &str) {
        self.browsing = None;
        self.prompt.set_text(text);
    }

    pub fn prompt(&self) -> String {
        self.prompt.text()
    }

    pub fn negative(&self) -> String {
        self.negative.text()
    }

    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// History loaded from disk, oldest first.
    pub fn set_history(&mut self, history: Vec<String>) {
        self.history = history;
        self.browsing = None;
    }

    /// Records a submitted prompt (no duplicates in a row); returns the history to persist.
    pub fn remember(&mut self, prompt: &str) -> &[String] {
        if !prompt.trim().is_empty() && self.history.last().is_none_or(|p| p != prompt) {
            self.history.push(prompt.to_owned());
            let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
            self.history.drain(..excess);
        }
        self.browsing = None;
        &self.history
    }

    fn recall(&mut self, older: bool) -> bool {
        if self.history.is_empty() {
            return false;
        }
        let next = match (self.browsing, older) {
            (None, true) => {
                self.draft = self.prompt.text();
                Some(self.history.len() - 1)
            }
            (None, false) => return false,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.browsing = next;
        let text = match next {
            Some(i) => self.history[i].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.prompt.set_text(&text);
        true
    }

    fn editor(&mut self) -> &mut TextEditor {
        match self.field {
            Field::Prompt => &mut self.prompt,
            Field::Negative => &mut self.negative,
        }
    }

    fn edit_key(&mut self, key: &KeyEvent) -> Handled {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let field = self.field;
        let e = self.editor();
        match key.code {
            KeyCode::Esc => self.editing = false,
            KeyCode::Tab if field == Field::Prompt => self.field = Field::Negative,
            KeyCode::BackTab if field == Field::Negative => self.field = Field::Prompt,
            KeyCode::Tab | KeyCode::BackTab => return Handled::Ignored,
            KeyCode::Left if ctrl || alt => e.word_left(),
            KeyCode::Right if ctrl || alt => e.word_right(),
            KeyCode::Char('b') if alt => e.word_left(),
            KeyCode::Char('f') if alt => e.word_right(),
            KeyCode::Char('z') if ctrl => {
                e.undo();
            }
            KeyCode::Char('w') if ctrl => e.delete_word_back(),
            KeyCode::Backspace if ctrl || alt => e.delete_word_back(),
            KeyCode::Char('a') if ctrl => e.home(),
            KeyCode::Char(_) if ctrl => return Handled::Ignored,
            KeyCode::Char(c) => e.insert_char(c),
            KeyCode::Enter => e.newline(),
            KeyCode::Backspace => e.backspace(),
            KeyCode::Delete => e.delete(),
            KeyCode::Left => e.left(),
            KeyCode::Right => e.right(),
            KeyCode::Home => e.home(),
            KeyCode::End => e.end(),
            KeyCode::Up if e.on_first_line() && field == Field::Prompt => {
                self.recall(true);
            }
            KeyCode::Down if e.on_last_line() && field == Field::Prompt => {
                self.recall(false);
            }
            KeyCode::Up if e.on_first_line() => self.field = Field::Prompt,
            KeyCode::Down if e.on_last_line() => return Handled::Ignored,
            KeyCode::Up => e.up(),
            KeyCode::Down => e.down(),
            _ => return Handled::Ignored,
        }
        Handled::Consumed
    }

    /// The helper's streamed text, wrapped, its last lines in view.
    fn draw_assist(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx, doing: &str, text: &str) {
        let t = ctx.theme;
        let [label_area, text_area] =
            Layout::horizontal([Constraint::Length(9), Constraint::Min(1)]).areas(area);
        let accent = ratatui::style::Style::new().fg(t.accent);
        frame.render_widget(Paragraph::new(Span::styled(doing, accent)), label_area);
        let lines = super::text_view::wrap(text.trim_start(), usize::from(text_area.width));
        let height = usize::from(text_area.height);
        let shown: Vec<Line> = if text.trim().is_empty() {
            vec![Line::styled("waiting for the model…", t.muted())]
        } else {
            lines
                .iter()
                .skip(lines.len().saturating_sub(height))
                .map(|l| Line::styled(l.clone(), accent))
                .collect()
        };
        frame.render_widget(Paragraph::new(shown), text_area);
    }

    fn draw_field(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx, field: Field) {
        let t = ctx.theme;
        if let (Field::Prompt, Some((doing, text))) = (field, &self.assist) {
            return self.draw_assist(frame, area, ctx, doing, text);
        }
        let (editor, label) = match field {
            Field::Prompt => (&self.prompt, "prompt"),
            Field::Negative => (&self.negative, "negative"),
        };
        let active = ctx.focused && self.field == field;
        let label_style = if active { t.title(true) } else { t.muted() };
        let [label_area, text_area] =
            Layout::horizontal([Constraint::Length(9), Constraint::Min(1)]).areas(area);
        frame.render_widget(Paragraph::new(Span::styled(label, label_style)), label_area);
        // Keep the cursor line visible: scroll so it is the last shown line when below the fold.
        let cursor = editor.cursor();
        let height = usize::from(text_area.height.max(1));
        let top = (cursor.row + 1).saturating_sub(height);
        let lines: Vec<Line> = editor
            .lines()
            .iter()
            .skip(top)
            .map(|l| Line::from(l.as_str()))
            .collect();
        let text = if editor.is_empty() && !active {
            Paragraph::new(Span::styled("(empty)", t.muted()))
        } else {
            Paragraph::new(lines).style(t.text())
        };
        // Long lines scroll horizontally with the cursor rather than wrapping (keeps the cursor exact).
        let width = usize::from(text_area.width.max(1));
        let hscroll = (cursor.col + 1).saturating_sub(width);
        frame.render_widget(text.scroll((0, hscroll as u16)), text_area);
        if active && self.editing {
            let x = text_area.x + (cursor.col - hscroll) as u16;
            let y = text_area.y + (cursor.row - top) as u16;
            frame.set_cursor_position(Position::new(x, y));
        }
    }
}

impl Pane for PromptPane {
    fn handle(&mut self, event: &AppEvent, out: &mut Vec<Action>) -> Handled {
        // A helper is about to replace the prompt: edits would be lost, so only Esc (cancel it)
        // and the keys that leave the pane do anything.
        if self.assist.is_some() {
            return match event {
                AppEvent::Input(Event::Key(key)) => match key.code {
                    KeyCode::Esc => {
                        out.push(Action::CancelAssist);
                        Handled::Consumed
                    }
                    KeyCode::Tab | KeyCode::BackTab => Handled::Ignored,
                    KeyCode::Char(_) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        Handled::Ignored
                    }
                    _ => Handled::Consumed,
                },
                AppEvent::Input(Event::Paste(_)) => Handled::Consumed,
                _ => Handled::Ignored,
            };
        }
        match event {
            AppEvent::Input(Event::Paste(text)) => {
                self.editing = true;
                self.editor().insert_str(text);
                Handled::Consumed
            }
            AppEvent::Input(Event::Key(key)) if self.editing => self.edit_key(key),
            AppEvent::Input(Event::Key(key)) => match key.code {
                KeyCode::Enter | KeyCode::Char('i') => {
                    self.editing = true;
                    Handled::Consumed
                }
                KeyCode::Up => {
                    self.field = Field::Prompt;
                    Handled::Consumed
                }
                KeyCode::Down => {
                    self.field = Field::Negative;
                    Handled::Consumed
                }
                _ => Handled::Ignored,
            },
            _ => {
                let _ = out;
                Handled::Ignored
            }
        }
    }

    fn on_focus(&mut self, gained: bool) {
        self.editing = gained;
        if gained {
            self.field = Field::Prompt;
        }
    }

    fn captures_text(&self) -> bool {
        self.editing
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let mode = if self.assist.is_some() {
            " Esc cancels · Ctrl-Z undoes the result "
        } else if ctx.focused && self.editing {
            " Esc leaves · Tab next · ↑↓ history "
        } else {
            " Enter/i edits "
        };
        let block = ctx
            .block(" Prompt ")
            .title_bottom(Line::styled(mode, ctx.theme.muted()).right_aligned());
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let neg_h = if inner.height >= 4 { 2 } else { 1 };
        let [p, n] = Layout::vertical([Constraint::Min(1), Constraint::Length(neg_h)]).areas(inner);
        self.draw_field(frame, p, ctx, Field::Prompt);
        self.draw_field(frame, n, ctx, Field::Negative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn key(pane: &mut PromptPane, code: KeyCode) -> Handled {
        let mut out = Vec::new();
        pane.handle(&AppEvent::Input(Event::Key(KeyEvent::from(code))), &mut out)
    }

    #[test]
    fn history_up_down_restores_the_draft() {
        let mut p = PromptPane::new("", "");
        p.set_history(vec!["old".into(), "newer".into()]);
        for c in "dr".chars() {
            key(&mut p, KeyCode::Char(c));
        }
        key(&mut p, KeyCode::Up);
        assert_eq!(p.prompt(), "newer");
        key(&mut p, KeyCode::Up);
        key(&mut p, KeyCode::Up);
        assert_eq!(p.prompt(), "old");
        key(&mut p, KeyCode::Down);
        key(&mut p, KeyCode::Down);
        assert_eq!(p.prompt(), "dr");
        p.remember("dr");
        p.remember("dr");
        assert_eq!(p.history().len(), 3);
    }

    #[test]
    fn esc_leaves_the_field_and_tab_walks_fields() {
        let mut p = PromptPane::new("", "");
        assert!(p.captures_text());
        assert_eq!(key(&mut p, KeyCode::Tab), Handled::Consumed);
        key(&mut p, KeyCode::Char('x'));
        assert_eq!(p.negative(), "x");
        assert_eq!(key(&mut p, KeyCode::Tab), Handled::Ignored);
        key(&mut p, KeyCode::Esc);
        assert!(!p.captures_text());
        assert_eq!(key(&mut p, KeyCode::Char('q')), Handled::Ignored);
    }
}
