//! What the TUI snapshot tests share: a system snapshot, rendering, keys, one pane drawn alone.
//! Included with `#[path = "../support/tui.rs"] mod tui;` in a test binary\'s main.rs. The insta calls stay in the test files,
//! so snapshot names keep their test binary's prefix.
#![allow(dead_code)]

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use pallaidium::tui::app::{App, Command};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::{DrawCtx, Pane};
use pallaidium::tui::sampler::{DeviceGauge, SysSnapshot};
use pallaidium::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub const GIB: u64 = 1 << 30;

pub fn snapshot() -> SysSnapshot {
    SysSnapshot {
        ram_total: 16 * GIB,
        ram_used: 6 * GIB,
        swap_total: 2 * GIB,
        swap_used: 0,
        process_rss: Some(GIB),
        cpu_percent: 37.0,
        device: Some(DeviceGauge::Discrete {
            name: "RTX 4090".into(),
            total: 24 * GIB,
            free: 20 * GIB,
        }),
    }
}

pub fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.prepare(ratatui::layout::Rect::new(0, 0, w, h));
    term.draw(|f| app.draw(f)).unwrap();
    term
}

pub fn key(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Command> {
    app.handle(AppEvent::Input(Event::Key(KeyEvent::new(code, modifiers))))
}

/// The generation of the memory plan a key asked for, if it asked for one.
pub fn plan_command(commands: &[Command]) -> Option<u64> {
    commands.iter().find_map(|c| match c {
        Command::Plan { generation, .. } => Some(*generation),
        _ => None,
    })
}

/// One pane drawn alone, focused, in the dark theme.
pub fn pane_terminal(pane: &dyn Pane, w: u16, h: u16) -> Terminal<TestBackend> {
    let theme = Theme::dark();
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| {
        pane.draw(
            f,
            f.area(),
            &DrawCtx {
                theme: &theme,
                focused: true,
            },
        )
    })
    .unwrap();
    term
}
