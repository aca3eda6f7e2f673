//! Snapshot tests of every pane and of the whole layout (ratatui TestBackend + insta).

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use pallaidium::jobs::{JobEvent, JobId, JobSpec, JobState};
use pallaidium::models::{Backend, Registry};
use pallaidium::tui::app::{App, AppConfig, Command, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::panes::gauges::GaugesPane;
use pallaidium::tui::panes::queue::{JobRow, QueuePane};
use pallaidium::tui::panes::{DrawCtx, Pane};
use pallaidium::tui::sampler::{DeviceGauge, SysSnapshot};
use pallaidium::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const GIB: u64 = 1 << 30;

fn app(size: &str) -> App {
    let registry = Registry::shipped().unwrap();
    let model = registry.entries()[0].id.clone();
    let mut app = App::new(AppConfig {
        theme: Theme::dark(),
        notice: None,
        form: Form {
            model,
            size: size.into(),
            random_seed: true,
            device: "cpu".into(),
            ..Form::default()
        },
        prompt: "a lighthouse at dusk, oil painting".into(),
        negative: "blurry".into(),
        compat: CompatEnv {
            backend: Backend::Cpu,
            chip: None,
            macos_version: None,
            memory_budget_bytes: None,
            hf_token_present: true,
            entries: registry.entries().to_vec(),
        },
        picker: None,
    });
    app.handle(AppEvent::System(snapshot()));
    app
}

fn snapshot() -> SysSnapshot {
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

fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.prepare(ratatui::layout::Rect::new(0, 0, w, h));
    term.draw(|f| app.draw(f)).unwrap();
    term
}

fn key(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Command> {
    app.handle(AppEvent::Input(Event::Key(KeyEvent::new(code, modifiers))))
}

fn submit_and_run(app: &mut App) {
    let commands = key(app, KeyCode::Char('g'), KeyModifiers::CONTROL);
    let spec = commands
        .iter()
        .find_map(|c| match c {
            Command::Submit(s) => Some(s.clone()),
            _ => None,
        })
        .expect("Ctrl-G submits");
    assert_eq!(spec.prompt, "a lighthouse at dusk, oil painting");
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::SaveHistory(h) if h.len() == 1))
    );
    app.handle(AppEvent::Job(JobEvent::Queued {
        job: JobId(1),
        position: 0,
    }));
    app.handle(AppEvent::Submitted {
        job: JobId(1),
        spec,
    });
    app.handle(AppEvent::Job(JobEvent::Progress {
        job: JobId(1),
        step: 7,
        steps: 20,
        elapsed_s: 7.0,
        eta_s: 13.0,
    }));
}

#[test]
fn layout_empty_queue() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut a = app("");
        insta::assert_snapshot!(format!("empty_{w}x{h}"), render(&mut a, w, h).backend());
    }
}

#[test]
fn layout_running_job() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut a = app("");
        submit_and_run(&mut a);
        insta::assert_snapshot!(format!("running_{w}x{h}"), render(&mut a, w, h).backend());
    }
}

#[test]
fn layout_failed_job() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut a = app("");
        submit_and_run(&mut a);
        a.handle(AppEvent::Job(JobEvent::Failed {
            job: JobId(1),
            error: "out of memory while decoding: try --vae-tiling on".into(),
        }));
        insta::assert_snapshot!(format!("failed_{w}x{h}"), render(&mut a, w, h).backend());
    }
}

#[test]
fn layout_compat_error_blocks_the_job() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut a = app("500x512");
        assert_eq!(a.compat.verdict(), pallaidium::models::Verdict::Error);
        let commands = key(&mut a, KeyCode::F(5), KeyModifiers::NONE);
        assert!(
            commands.iter().all(|c| !matches!(c, Command::Submit(_))),
            "an error blocks queueing"
        );
        insta::assert_snapshot!(
            format!("compat_error_{w}x{h}"),
            render(&mut a, w, h).backend()
        );
    }
}

#[test]
fn too_small_never_panics() {
    let mut a = app("");
    insta::assert_snapshot!("too_small_60x20", render(&mut a, 60, 20).backend());
    for (w, h) in [(1, 1), (2, 30), (200, 3), (79, 24), (80, 23)] {
        let term = render(&mut a, w, h);
        assert!(
            format!("{}", term.backend()).contains('t') || w * h < 20,
            "{w}x{h}"
        );
    }
}

#[test]
fn help_overlay_lists_the_bindings() {
    let mut a = app("");
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Char('?'), KeyModifiers::NONE);
    let term = render(&mut a, 80, 24);
    let text = format!("{}", term.backend());
    for must in ["Ctrl-G", "Tab", "cancel", "history"] {
        assert!(text.contains(must), "help lacks {must}");
    }
    insta::assert_snapshot!("help_80x24", term.backend());
}

#[test]
fn quitting_with_running_jobs_asks_first() {
    let mut a = app("");
    submit_and_run(&mut a);
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    assert!(key(&mut a, KeyCode::Char('q'), KeyModifiers::NONE).is_empty());
    insta::assert_snapshot!("confirm_quit_80x24", render(&mut a, 80, 24).backend());
    let c = key(&mut a, KeyCode::Char('k'), KeyModifiers::NONE);
    assert_eq!(
        c,
        vec![Command::Quit(pallaidium::tui::app::QuitMode::KeepJobs)]
    );
}

#[test]
fn tab_moves_focus_and_typing_edits_the_prompt() {
    let mut a = app("");
    key(&mut a, KeyCode::Char('!'), KeyModifiers::NONE);
    assert!(a.prompt.prompt().ends_with('!'));
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE); // to the negative field
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE); // out of the prompt pane
    assert_eq!(a.focus(), pallaidium::tui::panes::PaneId::Params);
    key(&mut a, KeyCode::BackTab, KeyModifiers::SHIFT);
    assert_eq!(a.focus(), pallaidium::tui::panes::PaneId::Prompt);
}

fn pane_snapshot(name: &str, pane: &dyn Pane, w: u16, h: u16) {
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
    insta::assert_snapshot!(name, term.backend());
}

#[test]
fn each_pane_alone() {
    let mut a = app("");
    submit_and_run(&mut a);
    pane_snapshot("pane_prompt", &a.prompt, 60, 6);
    pane_snapshot("pane_params", &a.params, 44, 14);
    pane_snapshot("pane_compat", &a.compat, 60, 6);
    pane_snapshot("pane_preview_off", &a.preview, 30, 8);
    pane_snapshot("pane_logs", &a.logs, 60, 6);

    let mut gauges = GaugesPane::default();
    gauges.set_snapshot(snapshot());
    pane_snapshot("pane_gauges", &gauges, 60, 7);

    let mut queue = QueuePane::default();
    let mut done = JobRow::new(JobId(1), "a red fox", JobState::Done);
    done.outputs = vec!["out/2025-01-01/42_a-red-fox.png".into()];
    done.elapsed_s = 12.0;
    queue.upsert(done);
    let mut failed = JobRow::new(JobId(2), "a blue fox", JobState::Failed);
    failed.error = Some("NaN in the UNet output".into());
    queue.upsert(failed);
    queue.on_job(&JobEvent::Loading {
        job: JobId(3),
        stage: "unet".into(),
    });
    queue.upsert(JobRow::new(JobId(4), "waiting", JobState::Queued));
    pane_snapshot("pane_queue", &queue, 60, 10);
    let _ = JobSpec::default();
}
