//! Panes are components: each translates the events it understands into state changes or
//! `Action`s for the app, and draws itself from its own state (no I/O while drawing).

pub mod compat;
pub mod editor;
pub mod fields;
pub mod form;
pub mod form_toolkit;
pub mod gauges;
pub mod logs;
pub mod lora_picker;
pub mod model_picker;
pub mod params;
pub mod presets;
pub mod preview;
pub mod prompt;
pub mod queue;
pub mod text_view;

use std::path::PathBuf;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use super::event::AppEvent;
use super::theme::Theme;
use crate::jobs::JobId;

/// Whether a pane used an event; the app stops offering it at the first that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Consumed,
    Ignored,
}

/// What a pane asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue the job described by the form (Ctrl-G / F5 also reach the app directly).
    Submit,
    Cancel(JobId),
    Retry(JobId),
    /// Move a queued job to this place among the queued jobs (0 = next to run).
    Move {
        job: JobId,
        index: usize,
    },
    TogglePause,
    /// A parameter changed: recompute the compatibility findings.
    ParamsChanged,
    /// Show this output in the preview pane.
    ShowOutput(PathBuf),
    /// A message for the status line.
    Notice(String),
    /// Stop the running prompt helper (enhance or caption).
    CancelAssist,
    /// Show the form's control image (its Canny edges with thresholds (low, high)).
    PreviewControl {
        path: PathBuf,
        canny: Option<(f64, f64)>,
    },
    /// List the LoRA files for the LoRA picker (answered by `AppEvent::LoraFiles`).
    ScanLoras,
}

/// The focusable panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneId {
    Prompt,
    Params,
    Queue,
    Compat,
    Preview,
    Logs,
    Gauges,
}

impl PaneId {
    pub const ORDER: [PaneId; 7] = [
        PaneId::Prompt,
        PaneId::Params,
        PaneId::Queue,
        PaneId::Compat,
        PaneId::Preview,
        PaneId::Logs,
        PaneId::Gauges,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Prompt => "Prompt",
            Self::Params => "Parameters",
            Self::Queue => "Queue",
            Self::Compat => "Compatibility",
            Self::Preview => "Preview",
            Self::Logs => "Log",
            Self::Gauges => "System",
        }
    }

    pub fn next(self, forward: bool) -> Self {
        let n = Self::ORDER.len();
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// What every pane needs to draw.
pub struct DrawCtx<'a> {
    pub theme: &'a Theme,
    pub focused: bool,
}

impl DrawCtx<'_> {
    /// The pane frame: highlighted border and title when focused.
    pub fn block<'t>(&self, title: impl Into<Line<'t>>) -> Block<'t> {
        let t = self.theme;
        Block::bordered()
            .border_type(if self.focused {
                BorderType::Thick
            } else {
                BorderType::Rounded
            })
            .border_style(t.border(self.focused))
            .title(title.into().style(t.title(self.focused)))
            .style(t.text())
    }

    pub fn key_hint<'t>(&self, key: &'t str, what: &'t str) -> Vec<Span<'t>> {
        vec![
            Span::styled(key, ratatui::style::Style::new().fg(self.theme.accent)),
            Span::styled(format!(" {what}  "), self.theme.muted()),
        ]
    }
}

pub trait Pane {
    fn handle(&mut self, event: &AppEvent, out: &mut Vec<Action>) -> Handled;
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx);
    /// Focus arrived (true) or left (false).
    fn on_focus(&mut self, _gained: bool) {}
    /// True while the pane takes printable keys as text, so `q` and `?` are letters, not commands.
    fn captures_text(&self) -> bool {
        false
    }
}

/// Cuts `text` to `width` characters with an ellipsis.
pub fn ellipsize(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}
