//! Compatibility: the findings for the current model x device x parameters, most severe first.
//! The app recomputes them whenever a parameter changes and hands them over with `set`.

use crossterm::event::{Event, KeyCode, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Action, DrawCtx, Handled, Pane, bytes};
use crate::models::{CompatFinding, Severity, Verdict, compat::verdict};
use crate::tui::event::AppEvent;

#[derive(Debug, Default)]
pub struct CompatPane {
    /// What was checked, e.g. "sd15 on cpu (f32)".
    subject: String,
    findings: Vec<CompatFinding>,
    /// The planner's estimate and the budget it is held against, when known.
    memory: Option<(u64, u64)>,
    scroll: u16,
}

impl CompatPane {
    pub fn set(
        &mut self,
        subject: String,
        findings: Vec<CompatFinding>,
        memory: Option<(u64, u64)>,
    ) {
        self.subject = subject;
        self.findings = findings;
        self.memory = memory;
        self.scroll = 0;
    }

    pub fn verdict(&self) -> Verdict {
        verdict(&self.findings)
    }

    pub fn findings(&self) -> &[CompatFinding] {
        &self.findings
    }
}

impl Pane for CompatPane {
    fn handle(&mut self, event: &AppEvent, _out: &mut Vec<Action>) -> Handled {
        let AppEvent::Input(input) = event else {
            return Handled::Ignored;
        };
        let up = match input {
            Event::Key(k) => match k.code {
                KeyCode::Up | KeyCode::Char('k') | KeyCode::PageUp => true,
                KeyCode::Down | KeyCode::Char('j') | KeyCode::PageDown => false,
                _ => return Handled::Ignored,
            },
            Event::Mouse(m) if m.kind == MouseEventKind::ScrollUp => true,
            Event::Mouse(m) if m.kind == MouseEventKind::ScrollDown => false,
            _ => return Handled::Ignored,
        };
        self.scroll = if up {
            self.scroll.saturating_sub(1)
        } else {
            self.scroll
                .saturating_add(1)
                .min(self.findings.len() as u16 * 2)
        };
        Handled::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let (badge, color) = match self.verdict() {
            Verdict::Ok => ("OK", t.ok),
            Verdict::Warn => ("WARN", t.warn),
            Verdict::Error => ("ERROR", t.error),
        };
        let title = Line::from(vec![
            Span::raw(" Compatibility "),
            Span::styled(
                format!("[{badge}] "),
                Style::new().fg(color).add_modifier(Modifier::BOLD),
            ),
        ]);
        let block = ctx.block(title);
        let mut lines = vec![Line::styled(self.subject.clone(), t.muted())];
        if let Some((need, budget)) = self.memory {
            let style = Style::new().fg(if need > budget { t.error } else { t.ok });
            lines.push(Line::styled(
                format!("memory: ~{} of {} budget", bytes(need), bytes(budget)),
                style,
            ));
        }
        if self.findings.is_empty() {
            lines.push(Line::styled("no known problems", Style::new().fg(t.ok)));
        }
        for f in &self.findings {
            let (tag, color) = match f.severity {
                Severity::Error => ("error", t.error),
                Severity::Warning => ("warn", t.warn),
                Severity::Info => ("info", t.info),
            };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{tag}: "),
                    Style::new().fg(color).add_modifier(Modifier::BOLD),
                ),
                Span::styled(f.message.clone(), t.text()),
            ]));
            lines.push(Line::from(vec![
                Span::styled("  fix: ", t.muted()),
                Span::styled(f.fix.clone(), t.muted()),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((self.scroll, 0)),
            area,
        );
    }
}
