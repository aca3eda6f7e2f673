//! The queue: every job with its state, a progress bar, step i/n and ETA; finished jobs stay as
//! history with their outputs. Keys cancel, retry, reorder and clear finished jobs.

use std::path::PathBuf;

use crossterm::event::{Event, KeyCode, KeyModifiers, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};

use super::{Action, DrawCtx, Handled, Pane, ellipsize};
use crate::jobs::{JobEvent, JobId, JobState};
use crate::tui::event::AppEvent;

/// One job as the queue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub label: String,
    pub state: JobState,
    /// The stage being loaded, before the first step.
    pub stage: Option<String>,
    pub step: u32,
    pub steps: u32,
    pub elapsed_s: f64,
    pub eta_s: f64,
    pub outputs: Vec<PathBuf>,
    pub error: Option<String>,
}

impl JobRow {
    pub fn new(id: JobId, label: impl Into<String>, state: JobState) -> Self {
        Self {
            id,
            label: label.into(),
            state,
            stage: None,
            step: 0,
            steps: 0,
            elapsed_s: 0.0,
            eta_s: 0.0,
            outputs: Vec::new(),
            error: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct QueuePane {
    rows: Vec<JobRow>,
    selected: usize,
    paused: bool,
}

/// A clip's length as the queue and the preview show it: "33f 2.1s @16fps".
pub fn clip_length(frames: u32, fps: f64) -> String {
    let secs = if fps > 0.0 {
        f64::from(frames) / fps
    } else {
        0.0
    };
    let rate = if fps.fract() == 0.0 {
        format!("{fps:.0}")
    } else {
        format!("{fps:.2}")
    };
    format!("{frames}f {secs:.1}s @{rate}fps")
}

fn clock(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

impl QueuePane {
    pub fn rows(&self) -> &[JobRow] {
        &self.rows
    }

    pub fn selected(&self) -> Option<&JobRow> {
        self.rows.get(self.selected)
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Jobs queued or running: quitting asks first while there are any.
    pub fn active(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.state, JobState::Queued | JobState::Running))
            .count()
    }

    /// The running job (the one Esc cancels).
    pub fn running(&self) -> Option<JobId> {
        self.rows
            .iter()
            .find(|r| r.state == JobState::Running)
            .map(|r| r.id)
    }

    /// Names a job the runner accepted, keeping whatever its events already told.
    pub fn set_label(&mut self, id: JobId, label: &str) {
        self.row(id).label = label.to_owned();
    }

    /// Adds a job (history at start); an existing id is replaced.
    pub fn upsert(&mut self, row: JobRow) {
        match self.rows.iter_mut().find(|r| r.id == row.id) {
            Some(r) => *r = row,
            None => self.rows.push(row),
        }
    }

    fn row(&mut self, id: JobId) -> &mut JobRow {
        if let Some(i) = self.rows.iter().position(|r| r.id == id) {
            return &mut self.rows[i];
        }
        self.rows
            .push(JobRow::new(id, format!("job {id}"), JobState::Queued));
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    pub fn on_job(&mut self, event: &JobEvent) {
        let row = self.row(event.job());
        match event {
            JobEvent::Queued { .. } => row.state = JobState::Queued,
            JobEvent::Loading { stage, .. } => {
                row.state = JobState::Running;
                row.stage = Some(stage.clone());
            }
            JobEvent::Progress {
                step,
                steps,
                elapsed_s,
                eta_s,
                ..
            } => {
                row.state = JobState::Running;
                row.stage = None;
                (row.step, row.steps, row.elapsed_s, row.eta_s) =
                    (*step, *steps, *elapsed_s, *eta_s);
            }
            JobEvent::Preview { .. } | JobEvent::Text { .. } => {}
            JobEvent::Done { outputs, .. } => {
                row.state = JobState::Done;
                row.outputs = outputs.clone();
                row.step = row.steps;
                row.eta_s = 0.0;
            }
            JobEvent::Failed { error, .. } => {
                row.state = JobState::Failed;
                row.error = Some(error.clone());
            }
            JobEvent::Cancelled { .. } => row.state = JobState::Cancelled,
        }
    }

    /// Moves a job in the view the same way the runner moves it in the queue.
    fn move_row(&mut self, delta: i32) -> Option<(JobId, usize)> {
        let i = self.selected;
        let row = self.rows.get(i)?;
        if row.state != JobState::Queued {
            return None;
        }
        let j = i.checked_add_signed(delta as isize)?;
        if j >= self.rows.len() || self.rows[j].state != JobState::Queued {
            return None;
        }
        self.rows.swap(i, j);
        self.selected = j;
        let index = self.rows[..j]
            .iter()
            .filter(|r| r.state == JobState::Queued)
            .count();
        Some((self.rows[j].id, index))
    }

    fn clear_finished(&mut self) {
        self.rows.retain(|r| !r.state.is_finished());
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
    }

    fn select(&mut self, delta: isize) {
        if self.rows.is_empty() {
            return;
        }
        self.selected = self
            .selected
            .saturating_add_signed(delta)
            .min(self.rows.len() - 1);
    }

    fn item<'a>(&self, row: &'a JobRow, width: usize, ctx: &DrawCtx) -> ListItem<'a> {
        let t = ctx.theme;
        let (icon, color) = match row.state {
            JobState::Queued => ("…", t.muted),
            JobState::Running => ("▶", t.accent),
            JobState::Done => ("✔", t.ok),
            JobState::Failed => ("✘", t.error),
            JobState::Cancelled => ("⊘", t.warn),
            JobState::Interrupted => ("!", t.warn),
        };
        let head = format!("#{} ", row.id);
        let state = format!("{icon} {:<9} ", row.state.as_str());
        let room = width.saturating_sub(head.len() + state.chars().count());
        let first = Line::from(vec![
            Span::styled(head, t.muted()),
            Span::styled(state, Style::new().fg(color).add_modifier(Modifier::BOLD)),
            Span::styled(ellipsize(&row.label, room), t.text()),
        ]);
        let second = match row.state {
            JobState::Running if row.steps > 0 => {
                let info = format!(" {}/{} ETA {}", row.step, row.steps, clock(row.eta_s));
                let bar_w = width.saturating_sub(info.len() + 2);
                let filled =
                    (bar_w as u64 * u64::from(row.step) / u64::from(row.steps.max(1))) as usize;
                Line::from(vec![
                    Span::raw("  "),
                    Span::styled("█".repeat(filled), Style::new().fg(t.progress)),
                    Span::styled(
                        "░".repeat(bar_w - filled.min(bar_w)),
                        Style::new().fg(t.gauge_empty),
                    ),
                    Span::styled(info, t.text()),
                ])
            }
            JobState::Running => Line::styled(
                format!("  loading {}…", row.stage.as_deref().unwrap_or("")),
                t.muted(),
            ),
            JobState::Done => {
                let out = row
                    .outputs
                    .iter()
                    .map(|p| {
                        p.file_name().map_or_else(
                            || p.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                Line::styled(
                    ellipsize(&format!("  {} → {out}", clock(row.elapsed_s)), width),
                    t.muted(),
                )
            }
            JobState::Failed => Line::styled(
                ellipsize(
                    &format!("  {}", row.error.as_deref().unwrap_or("failed")),
                    width,
                ),
                Style::new().fg(t.error),
            ),
            _ => Line::default(),
        };
        ListItem::new(vec![first, second])
    }
}

impl Pane for QueuePane {
    fn handle(&mut self, event: &AppEvent, out: &mut Vec<Action>) -> Handled {
        let key = match event {
            AppEvent::Job(e) => {
                self.on_job(e);
                return Handled::Ignored;
            }
            AppEvent::Input(Event::Mouse(m)) => {
                match m.kind {
                    MouseEventKind::ScrollUp => self.select(-1),
                    MouseEventKind::ScrollDown => self.select(1),
                    _ => return Handled::Ignored,
                }
                return Handled::Consumed;
            }
            AppEvent::Input(Event::Key(k)) => k,
            _ => return Handled::Ignored,
        };
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let selected = self.selected().map(|r| (r.id, r.state));
        match key.code {
            KeyCode::Up if shift => self.reorder(-1, out),
            KeyCode::Down if shift => self.reorder(1, out),
            KeyCode::Char('K') => self.reorder(-1, out),
            KeyCode::Char('J') => self.reorder(1, out),
            KeyCode::Up | KeyCode::Char('k') => self.select(-1),
            KeyCode::Down | KeyCode::Char('j') => self.select(1),
            KeyCode::Char('c') | KeyCode::Delete => match selected {
                Some((id, JobState::Queued | JobState::Running)) => out.push(Action::Cancel(id)),
                _ => out.push(Action::Notice(
                    "only a queued or running job can be cancelled".into(),
                )),
            },
            KeyCode::Char('r') => match selected {
                Some((id, JobState::Failed | JobState::Cancelled | JobState::Interrupted)) => {
                    out.push(Action::Retry(id))
                }
                _ => out.push(Action::Notice(
                    "only a failed, cancelled or interrupted job can be retried".into(),
                )),
            },
            KeyCode::Char('x') => self.clear_finished(),
            KeyCode::Char('p') => out.push(Action::TogglePause),
            KeyCode::Enter => {
                if let Some(path) = self
                    .selected()
                    .and_then(|r| super::preview::primary_output(&r.outputs))
                {
                    out.push(Action::ShowOutput(path.clone()));
                }
            }
            _ => return Handled::Ignored,
        }
        Handled::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let active = self.active();
        let title = format!(
            " Queue ({active} active, {} total){} ",
            self.rows.len(),
            if self.paused { " PAUSED" } else { "" }
        );
        let block = ctx.block(title);
        let inner = block.inner(area);
        if self.rows.is_empty() {
            let text = vec![
                Line::styled("no jobs yet", ctx.theme.muted()),
                Line::from(ctx.key_hint("Ctrl-G", "queue the prompt")),
            ];
            frame.render_widget(Paragraph::new(text).block(block), area);
            return;
        }
        let width = usize::from(inner.width);
        let items: Vec<ListItem> = self.rows.iter().map(|r| self.item(r, width, ctx)).collect();
        let list = List::new(items)
            .block(block)
            .highlight_style(ctx.theme.selected());
        let mut state = ListState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(list, area, &mut state);
    }
}

impl QueuePane {
    fn reorder(&mut self, delta: i32, out: &mut Vec<Action>) {
        match self.move_row(delta) {
            Some((job, index)) => out.push(Action::Move { job, index }),
            None => out.push(Action::Notice(
                "only queued jobs move, and only past other queued jobs".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_drive_rows_and_reorder_only_queued() {
        let mut q = QueuePane::default();
        q.upsert(JobRow::new(JobId(1), "a", JobState::Queued));
        q.upsert(JobRow::new(JobId(2), "b", JobState::Queued));
        q.on_job(&JobEvent::Progress {
            job: JobId(1),
            step: 3,
            steps: 10,
            elapsed_s: 1.0,
            eta_s: 2.0,
        });
        assert_eq!(q.rows()[0].state, JobState::Running);
        assert_eq!(q.active(), 2);
        let mut out = Vec::new();
        q.selected = 1;
        q.reorder(-1, &mut out);
        assert!(
            matches!(out[0], Action::Notice(_)),
            "cannot pass a running job"
        );
        q.on_job(&JobEvent::Done {
            job: JobId(1),
            outputs: vec!["o/1.png".into()],
            timings: Default::default(),
            peak_bytes: None,
            device_peak_bytes: None,
            text: None,
            duration_s: None,
        });
        q.on_job(&JobEvent::Failed {
            job: JobId(3),
            error: "boom".into(),
        });
        assert_eq!(q.rows()[2].error.as_deref(), Some("boom"));
        q.clear_finished();
        assert_eq!(q.rows().iter().map(|r| r.id.0).collect::<Vec<_>>(), vec![2]);
    }
}
