//! The log: tui-logger's smart widget (target list with level filters, scrollback by pages).
//! The lines come from tracing through tui-logger's layer (installed by `logging::init` in TUI mode).

use crossterm::event::{Event, KeyCode, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::BorderType;
use tui_logger::{TuiLoggerLevelOutput, TuiLoggerSmartWidget, TuiWidgetEvent, TuiWidgetState};

use super::{Action, DrawCtx, Handled, Pane};
use crate::tui::event::AppEvent;

pub struct LogsPane {
    state: TuiWidgetState,
    targets_shown: bool,
}

impl Default for LogsPane {
    fn default() -> Self {
        let state = TuiWidgetState::new();
        // Start with the target list hidden: the log lines matter more on a small terminal.
        state.transition(TuiWidgetEvent::HideKey);
        Self {
            state,
            targets_shown: false,
        }
    }
}

impl std::fmt::Debug for LogsPane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogsPane")
            .field("targets_shown", &self.targets_shown)
            .finish()
    }
}

impl Pane for LogsPane {
    fn handle(&mut self, event: &AppEvent, _out: &mut Vec<Action>) -> Handled {
        let AppEvent::Input(input) = event else {
            return Handled::Ignored;
        };
        let ev = match input {
            Event::Key(k) => match k.code {
                KeyCode::Char('h') => {
                    self.targets_shown ^= true;
                    TuiWidgetEvent::HideKey
                }
                KeyCode::Char('f') => TuiWidgetEvent::FocusKey,
                KeyCode::Char(' ') => TuiWidgetEvent::SpaceKey,
                KeyCode::Up | KeyCode::Char('k') => TuiWidgetEvent::UpKey,
                KeyCode::Down | KeyCode::Char('j') => TuiWidgetEvent::DownKey,
                KeyCode::Left => TuiWidgetEvent::LeftKey,
                KeyCode::Right => TuiWidgetEvent::RightKey,
                KeyCode::Char('+') => TuiWidgetEvent::PlusKey,
                KeyCode::Char('-') => TuiWidgetEvent::MinusKey,
                KeyCode::PageUp => TuiWidgetEvent::PrevPageKey,
                KeyCode::PageDown => TuiWidgetEvent::NextPageKey,
                KeyCode::End => TuiWidgetEvent::EscapeKey,
                _ => return Handled::Ignored,
            },
            Event::Mouse(m) if m.kind == MouseEventKind::ScrollUp => TuiWidgetEvent::PrevPageKey,
            Event::Mouse(m) if m.kind == MouseEventKind::ScrollDown => TuiWidgetEvent::NextPageKey,
            _ => return Handled::Ignored,
        };
        self.state.transition(ev);
        Handled::Consumed
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let widget = TuiLoggerSmartWidget::default()
            .title_log(" Log ")
            .title_target(" Targets (←→ show, +- record) ")
            .border_style(t.border(ctx.focused))
            .border_type(if ctx.focused {
                BorderType::Thick
            } else {
                BorderType::Rounded
            })
            .style(t.text())
            .style_error(Style::new().fg(t.error))
            .style_warn(Style::new().fg(t.warn))
            .style_info(Style::new().fg(t.info))
            .style_debug(t.muted())
            .style_trace(t.muted())
            .output_separator(' ')
            .output_timestamp(Some("%H:%M:%S".to_owned()))
            .output_level(Some(TuiLoggerLevelOutput::Abbreviated))
            .output_target(true)
            .output_file(false)
            .output_line(false)
            .state(&self.state);
        frame.render_widget(widget, area);
    }
}
