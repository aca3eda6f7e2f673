//! Frames drawn one after another on the same terminal, as the real one receives them (only the
//! cells that changed are sent): a finished job's row shows no progress, an image drawn with a
//! graphics protocol leaves no stale text beside it, and the help overlay fits.
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::jobs::{JobEvent, JobId, JobState};
use pallaidium::models::Registry;
use pallaidium::tui::app::{App, AppConfig, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::keys::BINDINGS;
use pallaidium::tui::layout;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::panes::queue::{JobRow, QueuePane};
use pallaidium::tui::panes::{DrawCtx, Pane, PaneId};
use pallaidium::tui::preview::probe::picker_for;
use pallaidium::tui::theme::Theme;
use pallaidium::vocab::Backend;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui_image::picker::{Picker, ProtocolType};

use crate::tui;
use tui::{key, render, snapshot};

fn app(picker: Option<Picker>) -> App {
    let registry = Registry::shipped().unwrap();
    let mut app = App::new(AppConfig {
        theme: Theme::dark(),
        notice: None,
        form: Form {
            model: registry.entries()[0].id.clone(),
            random_seed: true,
            device: "cpu".into(),
            ..Form::default()
        },
        prompt: "a lighthouse".into(),
        negative: String::new(),
        compat: CompatEnv {
            backend: Backend::Cpu,
            chip: None,
            macos_version: None,
            memory_budget_bytes: None,
            hf_token_present: true,
            entries: registry.entries().to_vec(),
        },
        picker,
    });
    app.handle(AppEvent::System(snapshot()));
    app
}

fn draw(term: &mut Terminal<TestBackend>, app: &mut App) {
    let size = term.size().unwrap();
    app.prepare(Rect::new(0, 0, size.width, size.height));
    term.draw(|f| app.draw(f)).unwrap();
}

/// The text of row `y` from column `x0` to `x1` as the terminal shows it; a cell holding an
/// image's escape sequence is one "▣" (its data could spell anything).
fn row_text(term: &Terminal<TestBackend>, y: u16, x0: u16, x1: u16) -> String {
    let buf = term.backend().buffer();
    (x0..x1)
        .map(|x| match buf[(x, y)].symbol() {
            s if s.starts_with('\x1b') => "▣".to_owned(),
            s => s.to_owned(),
        })
        .collect()
}

fn screen(term: &Terminal<TestBackend>) -> String {
    let area = term.backend().buffer().area;
    (0..area.height)
        .map(|y| row_text(term, y, 0, area.width))
        .collect::<Vec<_>>()
        .join("\n")
}

fn progress(job: i64, step: u32) -> AppEvent {
    AppEvent::Job(JobEvent::Progress {
        job: JobId(job),
        step,
        steps: 8,
        elapsed_s: f64::from(step),
        eta_s: 1.0,
    })
}

fn done(job: i64) -> AppEvent {
    AppEvent::Job(JobEvent::Done {
        job: JobId(job),
        outputs: vec!["out/2026-01-01/7_a-lighthouse.png".into()],
        timings: Default::default(),
        peak_bytes: None,
        device_peak_bytes: None,
        text: None,
        duration_s: None,
    })
}

fn preview_image(job: i64) -> AppEvent {
    let pixels: Vec<u8> = (0..16 * 16)
        .flat_map(|i| [(i % 256) as u8, 200, 40])
        .collect();
    AppEvent::Job(JobEvent::Preview {
        job: JobId(job),
        width: 16,
        height: 16,
        pixels,
    })
}

/// The real terminal's story from issue 17: placeholder, latent preview (sixel), progress,
/// done. Nothing stale may remain: not the placeholder's tail beside the image, not the old
/// progress beside the finished row.
#[test]
fn a_sixel_preview_leaves_nothing_stale_beside_it() {
    let (w, h) = (160, 48);
    let mut a = app(Some(picker_for(ProtocolType::Sixel, Some((10, 20)))));
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    draw(&mut term, &mut a);
    let preview = layout::areas(Rect::new(0, 0, w, h))
        .unwrap()
        .get(PaneId::Preview);
    let first_row = row_text(&term, preview.y + 1, preview.x + 1, preview.right() - 1);
    assert!(
        first_row.contains("(Ctrl-G)"),
        "the placeholder: {first_row}"
    );

    a.handle(AppEvent::Job(JobEvent::Queued {
        job: JobId(1),
        position: 0,
    }));
    a.handle(progress(1, 2));
    a.handle(preview_image(1));
    draw(&mut term, &mut a);
    a.handle(progress(1, 4));
    draw(&mut term, &mut a);
    let text = screen(&term);
    for stale in ["rl-G)", "no image yet", "queue a job"] {
        assert!(!text.contains(stale), "{stale:?} left on screen:\n{text}");
    }
    assert!(text.contains("4/8 ETA"), "the progress is drawn:\n{text}");
    assert!(text.contains('▣'), "the image is drawn:\n{text}");

    a.handle(done(1));
    draw(&mut term, &mut a);
    let text = screen(&term);
    assert!(text.contains("✔ done"), "{text}");
    assert!(text.contains("7_a-lighthouse.png"), "{text}");
    assert!(
        !text.contains("ETA"),
        "a done row shows no progress:\n{text}"
    );
}

/// The queue pane alone: progress, then done, on the same terminal.
#[test]
fn a_done_row_shows_no_progress() {
    let theme = Theme::dark();
    let mut queue = QueuePane::default();
    queue.upsert(JobRow::new(JobId(1), "a red fox", JobState::Queued));
    let mut term = Terminal::new(TestBackend::new(60, 6)).unwrap();
    let frame_of = |queue: &QueuePane, term: &mut Terminal<TestBackend>| {
        term.draw(|f| {
            queue.draw(
                f,
                f.area(),
                &DrawCtx {
                    theme: &theme,
                    focused: true,
                },
            )
        })
        .unwrap();
    };
    for step in [2, 6] {
        queue.on_job(&JobEvent::Progress {
            job: JobId(1),
            step,
            steps: 8,
            elapsed_s: 2.0,
            eta_s: 1.0,
        });
        frame_of(&queue, &mut term);
    }
    assert!(screen(&term).contains("6/8 ETA 0:01"));
    let AppEvent::Job(event) = done(1) else {
        unreachable!()
    };
    queue.on_job(&event);
    frame_of(&queue, &mut term);
    assert!(!screen(&term).contains("ETA"), "{}", screen(&term));
    insta::assert_snapshot!("queue_done_after_progress", term.backend());
}

/// Every binding of the table is shown whole at 160x48 (two columns, no scrolling) and, by
/// scrolling, at 80x24.
#[test]
fn the_help_shows_every_binding() {
    for (w, h) in [(160u16, 48u16), (120, 40), (80, 24)] {
        let mut a = app(None);
        key(&mut a, KeyCode::F(1), KeyModifiers::NONE);
        let mut seen = String::new();
        for _ in 0..40 {
            seen.push_str(&format!("{}", render(&mut a, w, h).backend()));
            key(&mut a, KeyCode::Down, KeyModifiers::NONE);
        }
        for (title, bindings) in BINDINGS {
            assert!(seen.contains(title), "{w}x{h}: {title}");
            for (k, what) in *bindings {
                assert!(seen.contains(k), "{w}x{h}: key {k}");
                assert!(seen.contains(what), "{w}x{h}: {what}");
            }
        }
        if w == 160 {
            insta::assert_snapshot!("help_160x48", render(&mut a, w, h).backend());
        }
        key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
        let text = format!("{}", render(&mut a, w, h).backend());
        assert!(!text.contains("Keys (Esc closes"), "Esc closes the help");
    }
}
