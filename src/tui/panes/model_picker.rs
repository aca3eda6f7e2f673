//! The model picker over the parameters pane: type to search by id or name, Up/Down to choose,
//! Enter to take it, Esc to leave; each model carries its compatibility verdict as a badge and
//! its kind (txt2img, tts, stt, ...), which decides the form's fields.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

use super::DrawCtx;
use super::form::ModelChoice;
use crate::models::Verdict;
use crate::tui::theme::Theme;

/// What a key did to the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickerOutcome {
    /// Still open.
    Open,
    /// Closed without a choice.
    Closed,
    /// Closed on this model id.
    Chosen(String),
}

#[derive(Debug, Default)]
pub struct ModelPicker {
    query: String,
    selected: usize,
}

pub fn badge(verdict: Verdict, theme: &Theme) -> Span<'static> {
    let (text, color) = match verdict {
        Verdict::Ok => ("[ok]", theme.ok),
        Verdict::Warn => ("[warn]", theme.warn),
        Verdict::Error => ("[error]", theme.error),
    };
    Span::styled(text, Style::new().fg(color).add_modifier(Modifier::BOLD))
}

/// Indices of the models whose id or name contains `query` (any case), or whose kind it names.
fn filtered(models: &[ModelChoice], query: &str) -> Vec<usize> {
    let q = query.to_lowercase();
    (0..models.len())
        .filter(|&i| {
            let m = &models[i];
            m.id.to_lowercase().contains(&q)
                || m.name.to_lowercase().contains(&q)
                || m.kind.as_str() == q
        })
        .collect()
}

impl ModelPicker {
    pub fn key(&mut self, key: &KeyEvent, models: &[ModelChoice]) -> PickerOutcome {
        match key.code {
            KeyCode::Esc => return PickerOutcome::Closed,
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => self.selected = self.selected.saturating_add(1),
            KeyCode::Backspace => {
                self.query.pop();
                self.selected = 0;
            }
            KeyCode::Char(c) => {
                self.query.push(c);
                self.selected = 0;
            }
            KeyCode::Enter => {
                let hits = filtered(models, &self.query);
                return match hits.get(self.selected.min(hits.len().saturating_sub(1))) {
                    Some(&i) => PickerOutcome::Chosen(models[i].id.clone()),
                    None => PickerOutcome::Closed,
                };
            }
            _ => {}
        }
        PickerOutcome::Open
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, models: &[ModelChoice], ctx: &DrawCtx) {
        let t = ctx.theme;
        frame.render_widget(Clear, area);
        let block = ctx.block(format!(" model: {}_ ", self.query));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let hits = filtered(models, &self.query);
        if hits.is_empty() {
            frame.render_widget(
                Paragraph::new(Span::styled("no model matches", t.muted())),
                inner,
            );
            return;
        }
        // Ids padded to the longest shown, so the kinds line up in a column.
        let id_w = hits
            .iter()
            .map(|&i| models[i].id.chars().count())
            .max()
            .unwrap_or(0)
            .min(32);
        let items: Vec<ListItem> = hits
            .iter()
            .map(|&i| {
                let m = &models[i];
                ListItem::new(Line::from(vec![
                    badge(m.verdict, t),
                    Span::raw(" "),
                    Span::styled(format!("{:<id_w$}", m.id), t.text()),
                    // What it makes: the form's fields follow it.
                    Span::styled(
                        format!("  {:<7}", m.kind.as_str()),
                        Style::new().fg(t.accent),
                    ),
                    Span::styled(format!(" {}", m.name), t.muted()),
                ]))
            })
            .collect();
        let mut state = ListState::default().with_selected(Some(self.selected.min(hits.len() - 1)));
        frame.render_stateful_widget(
            List::new(items).highlight_style(t.selected()),
            inner,
            &mut state,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn choice(id: &str, name: &str) -> ModelChoice {
        ModelChoice {
            id: id.into(),
            name: name.into(),
            verdict: Verdict::Ok,
            defaults: crate::models::Defaults {
                steps: 20,
                guidance: 7.5,
                width: 512,
                height: 512,
                scheduler: crate::vocab::Scheduler::Euler,
                ..Default::default()
            },
            native: [512, 512],
            kind: crate::models::Kind::Txt2img,
            family: None,
        }
    }

    #[test]
    fn search_by_name_then_enter_chooses() {
        let models = [
            choice("sd15", "Stable Diffusion 1.5"),
            choice("sdxl", "SDXL base"),
        ];
        let mut p = ModelPicker::default();
        let press =
            |p: &mut ModelPicker, code| p.key(&KeyEvent::new(code, KeyModifiers::NONE), &models);
        for c in "XL".chars() {
            assert_eq!(press(&mut p, KeyCode::Char(c)), PickerOutcome::Open);
        }
        assert_eq!(
            press(&mut p, KeyCode::Enter),
            PickerOutcome::Chosen("sdxl".into())
        );
        let mut p = ModelPicker::default();
        press(&mut p, KeyCode::Char('z'));
        assert_eq!(
            press(&mut p, KeyCode::Enter),
            PickerOutcome::Closed,
            "no match, no choice"
        );
    }
}
