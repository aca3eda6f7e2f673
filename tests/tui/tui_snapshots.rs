//! Snapshot tests of every pane and of the whole layout (ratatui TestBackend + insta).
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::jobs::{JobEvent, JobId, JobSpec, JobState};
use pallaidium::models::Registry;
use pallaidium::tui::app::{App, AppConfig, Command, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::Pane;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::panes::gauges::GaugesPane;
use pallaidium::tui::panes::queue::{JobRow, QueuePane};
use pallaidium::tui::planning::{PlanStatus, PlanSummary};
use pallaidium::tui::theme::Theme;
use pallaidium::vocab::Backend;

use crate::runner;
use crate::tui;
use tui::{GIB, key, pane_terminal, plan_command, render, snapshot};

pub(crate) fn app(size: &str) -> App {
    app_with(size, None)
}

pub(crate) fn app_with(size: &str, picker: Option<ratatui_image::picker::Picker>) -> App {
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
        picker,
    });
    app.handle(AppEvent::System(snapshot()));
    app
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
    assert_eq!(
        spec.prompt.as_deref(),
        Some("a lighthouse at dusk, oil painting")
    );
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
        spec: Box::new(JobSpec {
            model: spec.model.clone().unwrap_or_default(),
            prompt: spec.prompt.clone().unwrap_or_default(),
            ..JobSpec::default()
        }),
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
    // Everything at 160x48; at 80x24 the first page (the rest scrolls, tui_snapshots_frames).
    let text = format!("{}", render(&mut a, 160, 48).backend());
    let term = render(&mut a, 80, 24);
    for must in [
        "Ctrl-G",
        "Tab",
        "cancel",
        "history",
        "Ctrl-E",
        "Ctrl-P",
        "text result",
    ] {
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
    insta::assert_snapshot!(name, pane_terminal(pane, w, h).backend());
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

fn planned(peak: u64, budget: u64, fits: bool) -> PlanStatus {
    PlanStatus::Planned(PlanSummary {
        peak_bytes: peak,
        budget_bytes: budget,
        fits,
        staged: !fits || peak > budget / 2,
        attention_slice: Some(256),
        vae_tiling: false,
        batch: 4,
        requested_batch: 4,
        peak_stage: "unet denoise".into(),
        suggestions: if fits {
            Vec::new()
        } else {
            vec!["--batch 1".into(), "--width 384 --height 384".into()]
        },
    })
}

#[test]
fn compat_shows_the_memory_plan_live() {
    let mut a = app("");
    let first = plan_command(&a.start_commands()).expect("the pre-filled form is planned at start");
    assert_eq!(a.plan(), &PlanStatus::Pending);
    pane_snapshot("pane_compat_planning", &a.compat, 60, 5);
    a.handle(AppEvent::Plan {
        generation: first,
        status: planned(3 * GIB, 12 * GIB, true),
    });
    assert_eq!(a.compat.verdict(), pallaidium::models::Verdict::Ok);
    pane_snapshot("pane_compat_plan_fits", &a.compat, 60, 5);

    // A batch change asks for a new plan; the old answer, arriving late, is dropped.
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    assert_eq!(a.focus(), pallaidium::tui::panes::PaneId::Params);
    for _ in 0..5 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE); // model → batch
    }
    let second = plan_command(&key(&mut a, KeyCode::Right, KeyModifiers::NONE))
        .expect("changing the batch plans again");
    assert!(second > first);
    assert_eq!(a.params.form().batch, "2");
    a.handle(AppEvent::Plan {
        generation: first,
        status: planned(GIB, 12 * GIB, true),
    });
    assert_eq!(a.plan(), &PlanStatus::Pending, "a stale plan is ignored");

    // Over budget: an error finding with the planner's fixes, and Ctrl-G does not queue.
    a.handle(AppEvent::Plan {
        generation: second,
        status: planned(20 * GIB, 12 * GIB, false),
    });
    assert_eq!(a.compat.verdict(), pallaidium::models::Verdict::Error);
    let commands = key(&mut a, KeyCode::Char('g'), KeyModifiers::CONTROL);
    assert!(
        commands.iter().all(|c| !matches!(c, Command::Submit(_))),
        "an over-budget job is not queued"
    );
    pane_snapshot("pane_compat_over_budget", &a.compat, 60, 9);
    insta::assert_snapshot!("over_budget_160x48", render(&mut a, 160, 48).backend());

    // No plan for a model that is not in the cache: said so, and nothing blocks on it.
    let third = plan_command(&key(&mut a, KeyCode::Left, KeyModifiers::NONE)).unwrap();
    a.handle(AppEvent::Plan {
        generation: third,
        status: PlanStatus::Unavailable("sd15 is not in the Hugging Face cache".into()),
    });
    assert_eq!(a.compat.verdict(), pallaidium::models::Verdict::Ok);
    let text = format!("{}", render(&mut a, 160, 48).backend());
    assert!(text.contains("cannot plan: sd15 is not in the"), "{text}");
}

#[test]
fn the_device_field_is_read_only() {
    let mut a = app("");
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    for _ in 0..20 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    key(&mut a, KeyCode::Backspace, KeyModifiers::NONE);
    assert_eq!(a.params.form().device, "cpu", "the device cannot be edited");
    let text = format!("{}", render(&mut a, 160, 48).backend());
    assert!(text.contains("cpu (restart to change)"), "{text}");
    assert!(text.contains("restart with --device"), "{text}");
}

/// Cells of the preview pane's image area that hold halfblock glyphs.
pub(crate) fn halfblocks_in_preview(app: &mut App, w: u16, h: u16) -> usize {
    let term = render(app, w, h);
    let areas = pallaidium::tui::layout::areas(ratatui::layout::Rect::new(0, 0, w, h)).unwrap();
    let r = areas.get(pallaidium::tui::panes::PaneId::Preview);
    let buf = term.backend().buffer();
    let mut n = 0;
    for y in r.y + 1..r.y + r.height - 1 {
        for x in r.x + 1..r.x + r.width - 1 {
            if matches!(buf[(x, y)].symbol(), "▀" | "▄" | "█") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn a_latent_preview_is_drawn_in_the_preview_pane() {
    let mut a = app_with("", Some(ratatui_image::picker::Picker::halfblocks()));
    submit_and_run(&mut a);
    assert_eq!(halfblocks_in_preview(&mut a, 160, 48), 0);
    let pixels: Vec<u8> = (0..8 * 8)
        .flat_map(|i| [(i * 4) as u8, 255 - (i * 4) as u8, 128])
        .collect();
    a.handle(AppEvent::Job(JobEvent::Preview {
        job: JobId(1),
        width: 8,
        height: 8,
        pixels,
    }));
    assert!(halfblocks_in_preview(&mut a, 160, 48) > 0);
    let text = format!("{}", render(&mut a, 160, 48).backend());
    assert!(text.contains("job 1: latent preview"), "{text}");
}

/// The real runner on the tiny fixture: its latent previews (every 2 steps, as the TUI asks)
/// reach the preview pane and are drawn before the job's output replaces them.
#[test]
fn the_runners_previews_reach_the_pane() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let home = tempfile::tempdir().unwrap();
    let (paths, link) = runner::cpu_runner_link(home.path());
    assert_eq!(
        link.backend,
        Backend::Cpu,
        "the compat backend is the runner's device"
    );
    let store = pallaidium::jobs::Store::open(&paths.queue_db).unwrap();
    let runner = pallaidium::jobs::JobRunner::start(store, link.config).unwrap();
    let mut events = runner.subscribe();
    let spec = pallaidium::jobs::spec::JobOverrides {
        model: Some(fixture.display().to_string()),
        prompt: Some("a tiny lighthouse".into()),
        steps: Some(8),
        width: Some(64),
        height: Some(64),
        seed: Some(7),
        ..Default::default()
    };
    runner.submit(&[spec]).unwrap();
    let mut a = app_with("", Some(ratatui_image::picker::Picker::halfblocks()));
    let mut previews = 0;
    loop {
        let event = events.blocking_recv().unwrap();
        let terminal = event.is_terminal();
        if let JobEvent::Failed { error, .. } = &event {
            panic!("the fixture job failed: {error}");
        }
        if matches!(event, JobEvent::Preview { .. }) {
            previews += 1;
            a.handle(AppEvent::Job(event));
            assert!(a.preview.label().ends_with("latent preview"));
            assert!(
                halfblocks_in_preview(&mut a, 160, 48) > 0,
                "preview {previews} drawn"
            );
        } else {
            a.handle(AppEvent::Job(event));
        }
        if terminal {
            break;
        }
    }
    assert!(previews >= 2, "8 steps, a preview every 2: got {previews}");
    runner.stop();
    runner.shutdown();
}
