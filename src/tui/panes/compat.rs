//! Compatibility: the findings for the current model x device x parameters, most severe first,
//! and the memory plan of the job against the budget. The app recomputes the findings whenever a
//! parameter changes (and when a plan arrives) and hands them over with `set`.

use crossterm::event::{Event, KeyCode, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{Action, DrawCtx, Handled, Pane};
use crate::device::memory::format_bytes_compact as bytes;
use crate::models::{CompatFinding, Severity, Verdict, compat::verdict};
use crate::tui::event::AppEvent;
use crate::tui::planning::{PlanStatus, PlanSummary};
use crate::tui::theme::Theme;

#[derive(Debug, Default)]
pub struct CompatPane {
    /// What was checked, e.g. "sd15 on cpu (f32)".
    subject: String,
    findings: Vec<CompatFinding>,
    /// The memory plan of the form's job.
    plan: PlanStatus,
    scroll: u16,
}

impl CompatPane {
    pub fn set(&mut self, subject: String, findings: Vec<CompatFinding>, plan: PlanStatus) {
        self.subject = subject;
        self.findings = findings;
        self.plan = plan;
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
        lines.extend(plan_lines(&self.plan, t));
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

/// "needs X of Y budget (plan: …)", or why it does not fit and what would, or why there is no plan.
fn plan_lines(plan: &PlanStatus, t: &Theme) -> Vec<Line<'static>> {
    match plan {
        PlanStatus::Idle => Vec::new(),
        PlanStatus::Pending => vec![Line::styled("memory: planning…", t.muted())],
        PlanStatus::Unavailable(why) => vec![Line::from(vec![
            Span::styled("memory: cannot plan: ", Style::new().fg(t.warn)),
            Span::styled(why.clone(), t.muted()),
        ])],
        PlanStatus::Planned(p) if p.fits => vec![Line::from(vec![
            Span::styled(
                format!(
                    "memory: needs {} of {} budget",
                    bytes(p.peak_bytes),
                    bytes(p.budget_bytes)
                ),
                Style::new().fg(t.ok),
            ),
            Span::styled(format!(" (plan: {})", plan_modes(p)), t.muted()),
        ])],
        PlanStatus::Planned(p) => {
            // Needed vs available is the error finding below; this says where and what fits.
            let mut lines = vec![Line::styled(
                format!(
                    "memory: does not fit (peak at {}, {})",
                    p.peak_stage,
                    plan_modes(p)
                ),
                Style::new().fg(t.error).add_modifier(Modifier::BOLD),
            )];
            for s in &p.suggestions {
                lines.push(Line::from(vec![
                    Span::styled("  to fit: ", t.muted()),
                    Span::styled(s.clone(), t.text()),
                ]));
            }
            lines
        }
    }
}

/// e.g. "staged, slicing 256, tiling, 2 of 4 images per pass".
pub fn plan_modes(p: &PlanSummary) -> String {
    let mut parts = vec![if p.staged { "staged" } else { "resident" }.to_owned()];
    if let Some(n) = p.attention_slice {
        parts.push(format!("slicing {n}"));
    }
    if p.vae_tiling {
        parts.push("tiling".into());
    }
    if p.batch < p.requested_batch {
        parts.push(format!(
            "{} of {} images per pass",
            p.batch, p.requested_batch
        ));
    }
    parts.join(", ")
}
