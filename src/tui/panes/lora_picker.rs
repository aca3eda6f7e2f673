//! The LoRA picker over the parameters pane: the LoRA files of the LoRA folder and the Hugging
//! Face cache (`tui::lora_files`, listed off the UI thread as it opens). Space turns one on or
//! off, plus and minus move its weight by 0.05, a typed number sets it, Enter keeps the choice
//! and Esc drops it. A LoRA whose names say it is for another model family is marked.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

use super::DrawCtx;
use super::ellipsize;
use super::form_toolkit::{LoraPick, nudge_weight, parse_weight, weight_text};
use crate::models::Family;
use crate::tui::lora_files::{LoraFamily, LoraFile};

/// What a key did to the picker.
#[derive(Debug, Clone, PartialEq)]
pub enum LoraOutcome {
    Open,
    /// Closed without changing the form.
    Cancelled,
    /// Closed on these LoRAs, in order.
    Done(Vec<LoraPick>),
}

/// One row: a file, on or off.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    path: String,
    label: String,
    family: LoraFamily,
}

#[derive(Debug, Default)]
pub struct LoraPicker {
    /// `None` until the listing arrives.
    files: Option<Vec<LoraFile>>,
    picks: Vec<LoraPick>,
    selected: usize,
    /// A weight being typed for the selected row.
    typing: Option<String>,
    /// The form's model family, where the registry knows it.
    family: Option<Family>,
    error: Option<String>,
}

impl LoraPicker {
    pub fn new(picks: Vec<LoraPick>, family: Option<Family>) -> Self {
        Self {
            picks,
            family,
            ..Self::default()
        }
    }

    /// The listing arrived. A pick that names a listed file (relative, or through a link)
    /// takes the listed path, so it shows on that file's row.
    pub fn set_files(&mut self, files: Vec<LoraFile>) {
        for pick in &mut self.picks {
            let same = std::fs::canonicalize(&pick.path).ok();
            if let Some(f) = files
                .iter()
                .find(|f| same.is_some() && std::fs::canonicalize(&f.path).ok() == same)
            {
                pick.path = f.path.display().to_string();
            }
        }
        self.files = Some(files);
    }

    /// The listed files, then picks that are not among them (from `--lora`).
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .files
            .iter()
            .flatten()
            .map(|f| Row {
                path: f.path.display().to_string(),
                label: f.label.clone(),
                family: f.family,
            })
            .collect();
        for p in &self.picks {
            if !rows.iter().any(|r| r.path == p.path) {
                rows.push(Row {
                    path: p.path.clone(),
                    label: p.path.clone(),
                    family: LoraFamily::Unknown,
                });
            }
        }
        rows
    }

    fn pick_mut(&mut self, path: &str) -> Option<&mut LoraPick> {
        self.picks.iter_mut().find(|p| p.path == path)
    }

    /// Sets the selected row's weight, turning it on.
    fn set_weight(&mut self, path: String, weight: f64) {
        match self.pick_mut(&path) {
            Some(p) => p.weight = weight,
            None => self.picks.push(LoraPick { path, weight }),
        }
    }

    pub fn key(&mut self, key: &KeyEvent) -> LoraOutcome {
        let rows = self.rows();
        let current = rows
            .get(self.selected.min(rows.len().saturating_sub(1)))
            .map(|r| r.path.clone());
        if let Some(buf) = self.typing.as_mut() {
            match key.code {
                KeyCode::Esc => self.typing = None,
                KeyCode::Backspace => {
                    buf.pop();
                }
                KeyCode::Char(c) if c.is_ascii_digit() || c == '.' || c == '-' => buf.push(c),
                KeyCode::Enter => match parse_weight(buf) {
                    Ok(w) => {
                        self.typing = None;
                        self.error = None;
                        if let Some(path) = current {
                            self.set_weight(path, w);
                        }
                    }
                    Err(e) => self.error = Some(e),
                },
                _ => {}
            }
            return LoraOutcome::Open;
        }
        self.error = None;
        match key.code {
            KeyCode::Esc => return LoraOutcome::Cancelled,
            KeyCode::Enter => return LoraOutcome::Done(self.picks.clone()),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(rows.len().saturating_sub(1))
            }
            KeyCode::Char(' ') => {
                if let Some(path) = current {
                    if self.pick_mut(&path).is_some() {
                        self.picks.retain(|p| p.path != path);
                    } else {
                        self.picks.push(LoraPick { path, weight: 1.0 });
                    }
                }
            }
            KeyCode::Right | KeyCode::Left | KeyCode::Char('+' | '-' | '=') => {
                let up = matches!(key.code, KeyCode::Right | KeyCode::Char('+' | '='));
                if let Some(path) = current {
                    let w = self.pick_mut(&path).map_or(1.0, |p| p.weight);
                    self.set_weight(path, nudge_weight(w, up));
                }
            }
            KeyCode::Char(c) if current.is_some() && (c.is_ascii_digit() || c == '.') => {
                self.typing = Some(c.to_string())
            }
            KeyCode::Char('w') if current.is_some() => self.typing = Some(String::new()),
            _ => {}
        }
        LoraOutcome::Open
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        frame.render_widget(Clear, area);
        let on = self.picks.len();
        let block = ctx
            .block(format!(" LoRAs: {on} on "))
            .title_bottom(Line::from(
                [
                    ctx.key_hint("Space", "on/off"),
                    ctx.key_hint("+-", "weight"),
                    ctx.key_hint("0-9", "type"),
                    ctx.key_hint("Enter", "done"),
                    ctx.key_hint("Esc", "cancel"),
                ]
                .concat(),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [list_area, status_area] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        let rows = self.rows();
        let status = match (&self.error, &self.typing, &self.files) {
            (Some(e), _, _) => Span::styled(e.clone(), Style::new().fg(t.error)),
            (None, Some(buf), _) => Span::styled(
                format!("weight: {buf}_  (Enter sets, Esc leaves)"),
                Style::new().fg(t.accent),
            ),
            (None, None, None) => Span::styled("listing LoRA files…", t.muted()),
            (None, None, Some(_)) if rows.is_empty() => Span::styled(
                "no .safetensors in the LoRA folder ([loras] dir in config.toml)",
                t.muted(),
            ),
            (None, None, Some(_)) => Span::styled(
                match self.family {
                    Some(f) => format!("✗: not for this model's family ({f:?})"),
                    None => "families are shown where the names tell them".to_owned(),
                },
                t.muted(),
            ),
        };
        frame.render_widget(Paragraph::new(Line::from(status)), status_area);
        let width = usize::from(list_area.width);
        let items: Vec<ListItem> = rows
            .iter()
            .map(|r| {
                let pick = self.picks.iter().find(|p| p.path == r.path);
                let fits = self.family.is_none_or(|f| r.family.fits(f));
                let (mark, weight) = match pick {
                    Some(p) => ("[x] ", format!("{:>5} ", weight_text(p.weight))),
                    None => ("[ ] ", "      ".to_owned()),
                };
                let family = format!(" {}{}", r.family.label(), if fits { "" } else { " ✗" });
                let label_w = width.saturating_sub(10 + family.chars().count());
                let label_style = if fits {
                    t.text()
                } else {
                    t.muted().add_modifier(Modifier::CROSSED_OUT)
                };
                ListItem::new(Line::from(vec![
                    Span::styled(mark, Style::new().fg(t.accent)),
                    Span::styled(weight, Style::new().fg(t.accent)),
                    Span::styled(
                        format!("{:<label_w$}", ellipsize(&r.label, label_w)),
                        label_style,
                    ),
                    Span::styled(family, Style::new().fg(if fits { t.ok } else { t.error })),
                ]))
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let mut state =
            ListState::default().with_selected(Some(self.selected.min(items.len() - 1)));
        frame.render_stateful_widget(
            List::new(items).highlight_style(t.selected()),
            list_area,
            &mut state,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;
    use std::path::PathBuf;

    fn file(path: &str, family: LoraFamily) -> LoraFile {
        LoraFile {
            path: PathBuf::from(path),
            label: path.trim_start_matches("/l/").to_owned(),
            family,
        }
    }

    fn press(p: &mut LoraPicker, code: KeyCode) -> LoraOutcome {
        p.key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn toggle_nudge_type_then_enter_keeps_and_esc_drops() {
        let mut p = LoraPicker::new(vec![], Some(Family::Sd1));
        p.set_files(vec![
            file("/l/a.safetensors", LoraFamily::Sd),
            file("/l/b.safetensors", LoraFamily::Flux),
        ]);
        press(&mut p, KeyCode::Char(' '));
        for _ in 0..4 {
            press(&mut p, KeyCode::Char('-'));
        }
        press(&mut p, KeyCode::Down);
        for c in "0.55".chars() {
            press(&mut p, KeyCode::Char(c));
        }
        press(&mut p, KeyCode::Enter);
        let LoraOutcome::Done(picks) = press(&mut p, KeyCode::Enter) else {
            panic!("Enter closes the picker with the choice");
        };
        let got: Vec<(String, String)> = picks
            .iter()
            .map(|p| (p.path.clone(), weight_text(p.weight)))
            .collect();
        assert_eq!(
            got,
            [
                ("/l/a.safetensors".to_owned(), "0.8".to_owned()),
                ("/l/b.safetensors".to_owned(), "0.55".to_owned())
            ]
        );
        // Space turns one off; a bad typed weight stays open with the error.
        let mut p = LoraPicker::new(picks, None);
        p.set_files(vec![file("/l/a.safetensors", LoraFamily::Sd)]);
        press(&mut p, KeyCode::Char(' '));
        press(&mut p, KeyCode::Char('w'));
        for c in "99".chars() {
            press(&mut p, KeyCode::Char(c));
        }
        assert_eq!(press(&mut p, KeyCode::Enter), LoraOutcome::Open);
        assert!(p.error.as_deref().is_some_and(|e| e.starts_with("weight:")));
        press(&mut p, KeyCode::Esc);
        assert_eq!(p.picks.len(), 1, "the pick not listed keeps its own row");
        assert_eq!(press(&mut p, KeyCode::Esc), LoraOutcome::Cancelled);
    }
}
