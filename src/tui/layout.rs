//! Where each pane goes for a terminal size: three columns from 140 columns, two below, and a
//! "terminal too small" notice under 80x24.

use ratatui::layout::{Constraint, Layout, Rect};

use super::panes::PaneId;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// The rectangles of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Areas {
    pub status: Rect,
    pub panes: Vec<(PaneId, Rect)>,
}

impl Areas {
    pub fn get(&self, id: PaneId) -> Rect {
        self.panes
            .iter()
            .find(|(p, _)| *p == id)
            .map_or(Rect::default(), |(_, r)| *r)
    }

    /// The pane under a mouse position.
    pub fn hit(&self, x: u16, y: u16) -> Option<PaneId> {
        self.panes
            .iter()
            .find(|(_, r)| r.contains(ratatui::layout::Position::new(x, y)))
            .map(|(p, _)| *p)
    }
}

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

/// `None` when the terminal is too small for the layout.
pub fn areas(area: Rect) -> Option<Areas> {
    if too_small(area) {
        return None;
    }
    let [status, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let wide = area.width >= 140;
    let bottom_h = if wide { (body.height / 4).max(8) } else { 7 };
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(bottom_h)]).areas(body);
    let [logs, gauges] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    let prompt_h = if wide { 9 } else { 6 };
    let mut panes = vec![(PaneId::Logs, logs), (PaneId::Gauges, gauges)];
    if wide {
        let [c1, c2, c3] = Layout::horizontal([
            Constraint::Percentage(38),
            Constraint::Percentage(32),
            Constraint::Percentage(30),
        ])
        .areas(top);
        let [prompt, params] =
            Layout::vertical([Constraint::Length(prompt_h), Constraint::Min(0)]).areas(c1);
        let [queue, compat] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(c2);
        panes.extend([
            (PaneId::Prompt, prompt),
            (PaneId::Params, params),
            (PaneId::Queue, queue),
            (PaneId::Compat, compat),
            (PaneId::Preview, c3),
        ]);
    } else {
        let [c1, c2] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
        let [prompt, params] =
            Layout::vertical([Constraint::Length(prompt_h), Constraint::Min(0)]).areas(c1);
        let [queue, preview, compat] = Layout::vertical([
            Constraint::Percentage(40),
            Constraint::Percentage(32),
            Constraint::Percentage(28),
        ])
        .areas(c2);
        panes.extend([
            (PaneId::Prompt, prompt),
            (PaneId::Params, params),
            (PaneId::Queue, queue),
            (PaneId::Preview, preview),
            (PaneId::Compat, compat),
        ]);
    }
    Some(Areas { status, panes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pane_is_placed_inside_the_screen() {
        for (w, h) in [(80, 24), (120, 40), (160, 48), (300, 100)] {
            let screen = Rect::new(0, 0, w, h);
            let a = areas(screen).unwrap();
            assert_eq!(a.panes.len(), PaneId::ORDER.len());
            for (id, r) in &a.panes {
                assert!(
                    screen.contains(r.as_position()) && r.width >= 10 && r.height >= 3,
                    "{id:?} {r:?} at {w}x{h}"
                );
            }
        }
        assert!(areas(Rect::new(0, 0, 79, 24)).is_none());
        assert!(areas(Rect::new(0, 0, 1, 1)).is_none());
    }
}
