//! What is drawn over or instead of the panes: the status line, the quit question and the
//! "terminal too small" notice (the help overlay is `help`).

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use super::layout::{MIN_HEIGHT, MIN_WIDTH};
use super::theme::Theme;

pub fn too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    let text = vec![
        Line::styled(
            "terminal too small",
            Style::new().fg(theme.warn).add_modifier(Modifier::BOLD),
        ),
        Line::raw(format!(
            "{}x{}, needs {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        )),
        Line::styled("enlarge it, or q to quit", theme.muted()),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let r = Rect::new(area.x, area.y + top, area.width, area.height - top);
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .style(theme.text()),
        r,
    );
}

/// The top line: what a job would run on, the latest notice, the main keys.
pub fn status(frame: &mut Frame, area: Rect, theme: &Theme, subject: &str, notice: Option<&str>) {
    // Keys that work wherever the focus is, the prompt editor included.
    let keys = " F1 help  Ctrl-G queue  Ctrl-Q quit ";
    let mut spans = vec![
        Span::styled(
            " pallaidium ",
            Style::new()
                .fg(theme.selection_fg)
                .bg(theme.accent)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!(" {subject} "), theme.muted()),
    ];
    if let Some(n) = notice {
        spans.push(Span::styled(format!("│ {n}"), Style::new().fg(theme.warn)));
    }
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(keys.len() as u16)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.text()), left);
    frame.render_widget(Paragraph::new(Span::styled(keys, theme.muted())), right);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup<'a>(theme: &Theme, title: &'a str) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Double)
        .border_style(Style::new().fg(theme.border_focused))
        .title(Line::styled(title, theme.title(true)))
        .style(theme.text())
}

pub fn confirm_quit(frame: &mut Frame, area: Rect, theme: &Theme, active: usize) {
    let text = vec![
        Line::raw(format!("{active} job(s) queued or running.")),
        Line::default(),
        Line::from(vec![
            Span::styled(" c ", Style::new().fg(theme.accent)),
            Span::raw("cancel them and quit"),
        ]),
        Line::from(vec![
            Span::styled(" k ", Style::new().fg(theme.accent)),
            Span::raw("keep them running headless (log file) and quit"),
        ]),
        Line::from(vec![
            Span::styled(" Esc ", Style::new().fg(theme.accent)),
            Span::raw("stay"),
        ]),
    ];
    let r = centered(area, 60, 9);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(text)
            .block(popup(theme, " Quit? "))
            .wrap(Wrap { trim: false }),
        r,
    );
}
