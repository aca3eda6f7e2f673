//! The help overlay: every binding of `keys::BINDINGS`, in the fewest columns that show it all
//! (one at 160x48, two at 160x30), scrolled with ↑↓ PgUp PgDn where even that does not fit.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use super::keys::{BINDINGS, DESC_MAX, KEY_WIDTH};
use super::theme::Theme;

/// One column's width: a space, the keys, the description.
const COLUMN: u16 = (1 + KEY_WIDTH + DESC_MAX) as u16;
const GAP: u16 = 2;

/// Where the overlay goes and how its groups are split into columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpLayout {
    pub rect: Rect,
    /// The groups of each column (indices into `BINDINGS`).
    pub columns: Vec<Range<usize>>,
    /// How far it scrolls (0: everything is in view).
    pub scroll_max: u16,
}

fn group_height(i: usize) -> usize {
    1 + BINDINGS[i].1.len()
}

/// Lines of a column holding `groups` (a blank line between groups).
fn column_height(groups: &Range<usize>) -> usize {
    groups.clone().map(group_height).sum::<usize>() + groups.len().saturating_sub(1)
}

/// The split of the groups, in order, into `n` columns with the shortest tallest column.
fn split(n: usize) -> Vec<Range<usize>> {
    fn best(from: usize, n: usize) -> (usize, Vec<Range<usize>>) {
        let total = BINDINGS.len();
        if n == 1 || total - from <= 1 {
            return (
                column_height(&(from..total)),
                std::iter::once(from..total).collect(),
            );
        }
        let mut chosen = (usize::MAX, Vec::new());
        for end in from + 1..total {
            let (rest_h, rest) = best(end, n - 1);
            let h = column_height(&(from..end)).max(rest_h);
            if h < chosen.0 {
                let cols = std::iter::once(from..end).chain(rest).collect();
                chosen = (h, cols);
            }
        }
        chosen
    }
    best(0, n.max(1)).1
}

/// The fewest columns that show everything, else as many as fit, scrolled.
pub fn layout(area: Rect) -> HelpLayout {
    let room_w = area.width.saturating_sub(4); // the popup's borders and a margin
    let room_h = usize::from(area.height.saturating_sub(4));
    let most = usize::from(((room_w + GAP) / (COLUMN + GAP)).clamp(1, 3));
    let columns = (1..=most)
        .map(split)
        .find(|cols| cols.iter().map(column_height).max().unwrap_or(0) <= room_h)
        .unwrap_or_else(|| split(most));
    let tallest = columns.iter().map(column_height).max().unwrap_or(0);
    let n = columns.len() as u16;
    let width = (n * COLUMN + (n - 1) * GAP + 2).min(area.width);
    let height = (tallest as u16 + 2).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let scroll_max = (tallest as u16).saturating_sub(height.saturating_sub(2));
    HelpLayout {
        rect,
        columns,
        scroll_max,
    }
}

fn column_lines(groups: &Range<usize>, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for i in groups.clone() {
        let (title, bindings) = BINDINGS[i];
        if i > groups.start {
            lines.push(Line::default());
        }
        lines.push(Line::styled(title.to_owned(), theme.title(true)));
        for (k, what) in bindings {
            lines.push(Line::from(vec![
                Span::styled(format!(" {k:<KEY_WIDTH$}"), Style::new().fg(theme.accent)),
                Span::styled((*what).to_owned(), theme.text()),
            ]));
        }
    }
    lines
}

/// Draws the overlay scrolled by `scroll` lines (clamped).
pub fn draw(frame: &mut Frame, area: Rect, theme: &Theme, scroll: u16) {
    let layout = layout(area);
    let scroll = scroll.min(layout.scroll_max);
    let title = match (layout.scroll_max, scroll) {
        (0, _) => " Keys (Esc closes) ".to_owned(),
        (max, s) if s < max => format!(" Keys (Esc closes · ↓ {} more) ", max - s),
        _ => " Keys (Esc closes · ↑ scrolls back) ".to_owned(),
    };
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(Style::new().fg(theme.border_focused))
        .title(Line::styled(title, theme.title(true)))
        .style(theme.text());
    let inner = block.inner(layout.rect);
    frame.render_widget(Clear, layout.rect);
    frame.render_widget(block, layout.rect);
    for (i, groups) in layout.columns.iter().enumerate() {
        let x = inner.x + i as u16 * (COLUMN + GAP);
        let r = Rect::new(
            x,
            inner.y,
            COLUMN.min(inner.right().saturating_sub(x)),
            inner.height,
        );
        frame.render_widget(
            Paragraph::new(column_lines(groups, theme)).scroll((scroll, 0)),
            r,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_160x48_in_columns_scrolls_at_80x24() {
        let tall = layout(Rect::new(0, 0, 160, 48));
        assert_eq!(tall.scroll_max, 0, "all in view at 160x48");
        assert!(tall.rect.width <= 160 && tall.rect.height <= 48);
        // Less height: two columns rather than scrolling.
        let wide = layout(Rect::new(0, 0, 160, 30));
        assert_eq!(wide.columns.len(), 2);
        assert_eq!(wide.scroll_max, 0);
        let small = layout(Rect::new(0, 0, 80, 24));
        assert_eq!(small.columns, vec![0..BINDINGS.len()]);
        assert!(small.scroll_max > 0);
        // Every group is in exactly one column, in order.
        for l in [&tall, &wide, &small] {
            let flat: Vec<usize> = l.columns.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(flat, (0..BINDINGS.len()).collect::<Vec<_>>());
        }
    }
}
