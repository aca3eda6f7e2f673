//! Drawing: the status line, every pane in its area, then the overlay. Nothing here does I/O.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::{App, Overlay};
use crate::tui::help;
use crate::tui::layout::{self, Areas};
use crate::tui::overlay;
use crate::tui::panes::{DrawCtx, PaneId};

impl App {
    /// Encodes the preview for the current layout; call before `draw` (drawing stays cheap).
    pub fn prepare(&mut self, area: Rect) {
        self.size = area;
        if let Some(areas) = layout::areas(area) {
            self.preview.prepare(areas.get(PaneId::Preview));
        }
    }

    pub fn draw(&self, frame: &mut Frame) {
        let area = frame.area();
        let Some(areas) = layout::areas(area) else {
            overlay::too_small(frame, area, &self.theme);
            return;
        };
        self.draw_panes(frame, &areas);
        match self.overlay {
            Overlay::Help => help::draw(frame, area, &self.theme, self.help_scroll),
            Overlay::ConfirmQuit => {
                overlay::confirm_quit(frame, area, &self.theme, self.queue.active())
            }
            Overlay::Hosts => self.hosts.draw(frame, area, &self.theme),
            Overlay::None => {}
        }
    }

    fn draw_panes(&self, frame: &mut Frame, areas: &Areas) {
        let (backend, dtype) = self.target();
        let model = self.params.form().model.clone();
        let subject = format!(
            "{} · {} · {}",
            if model.is_empty() { "no model" } else { &model },
            backend.as_str(),
            dtype.as_str()
        );
        overlay::status(
            frame,
            areas.status,
            &self.theme,
            &subject,
            self.notice.as_deref(),
        );
        for (id, rect) in &areas.panes {
            let ctx = DrawCtx {
                theme: &self.theme,
                focused: *id == self.focus && self.overlay == Overlay::None,
            };
            self.pane_ref(*id).draw(frame, *rect, &ctx);
        }
    }
}
