//! Snapshot tests of every pane and of the whole layout (ratatui TestBackend + insta).
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use pallaidium::jobs::{JobEvent, JobId, JobSpec, JobState};
use pallaidium::models::{Backend, Registry};
use pallaidium::tui::app::{App, AppConfig, Command, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::panes::gauges::GaugesPane;
use pallaidium::tui::panes::queue::{JobRow, QueuePane};
use pallaidium::tui::panes::{DrawCtx, Pane};
use pallaidium::tui::planning::{PlanStatus, PlanSummary};
use pallaidium::tui::sampler::{DeviceGauge, SysSnapshot};
use pallaidium::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const GIB: u64 = 1 << 30;

fn app(size: &str) -> App {
    app_with(size, None)
}

fn app_with(size: &str, picker: Option<ratatui_image::picker::Picker>) -> App {
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

fn plan_command(commands: &[Command]) -> Option<u64> {
    commands.iter().find_map(|c| match c {
        Command::Plan { generation, .. } => Some(*generation),
        _ => None,
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
fn halfblocks_in_preview(app: &mut App, w: u16, h: u16) -> usize {
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
    use clap::Parser;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let home = tempfile::tempdir().unwrap();
    let env = pallaidium::platform::paths::PathEnv {
        pallaidium_home: Some(home.path().to_path_buf()),
        hf_home: Some(home.path().join("hf")),
        ..Default::default()
    };
    let paths = pallaidium::platform::paths::Paths::from_env(&env, None).unwrap();
    paths.create_dirs().unwrap();
    let cli = pallaidium::cli::Cli::try_parse_from(["pallaidium", "--device", "cpu", "--offline"])
        .unwrap();
    let registry = Registry::shipped().unwrap();
    let link = pallaidium::tui::runner_link::runner_link(&cli, &paths, &registry).unwrap();
    assert_eq!(
        link.backend,
        Backend::Cpu,
        "the compat backend is the runner's device"
    );
    let store = pallaidium::jobs::Store::open(&paths.queue_db).unwrap();
    let runner = pallaidium::jobs::JobRunner::start(store, link.config).unwrap();
    let mut events = runner.subscribe();
    let spec = JobSpec {
        model: fixture.display().to_string(),
        prompt: "a tiny lighthouse".into(),
        steps: Some(8),
        width: Some(64),
        height: Some(64),
        seed: Some(7),
        ..JobSpec::default()
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

// ---- audio and text kinds (issue 8) ----

use pallaidium::models::{Kind, ModelEntry};

/// sd15 plus one model of every other kind, made from sd15's entry so the snapshots do not move
/// when the shipped registry grows.
fn all_kinds() -> Vec<ModelEntry> {
    let registry = Registry::shipped().unwrap();
    let sd15 = registry.entries()[0].clone();
    let mut entries = vec![sd15.clone()];
    for (id, name, kind) in [
        ("parler-tts-mini", "Parler-TTS mini v1", Kind::Tts),
        ("musicgen-small", "MusicGen small", Kind::Music),
        ("whisper-tiny", "Whisper tiny", Kind::Stt),
        ("blip-base", "BLIP base captioning", Kind::Caption),
        ("qwen2.5-0.5b-instruct", "Qwen2.5 0.5B Instruct", Kind::Text),
    ] {
        let mut e = sd15.clone();
        e.id = id.into();
        e.name = name.into();
        e.kind = kind;
        entries.push(e);
    }
    entries
}

fn app_kinds(model: &str, entries: Vec<ModelEntry>, form: Form) -> App {
    let mut app = App::new(AppConfig {
        theme: Theme::dark(),
        notice: None,
        form: Form {
            model: model.into(),
            random_seed: true,
            device: "cpu".into(),
            ..form
        },
        prompt: "a lighthouse at dusk".into(),
        negative: String::new(),
        compat: CompatEnv {
            backend: Backend::Cpu,
            chip: None,
            macos_version: None,
            memory_budget_bytes: None,
            hf_token_present: true,
            entries,
        },
        picker: None,
    });
    app.handle(AppEvent::System(snapshot()));
    app
}

fn submitted(commands: &[Command]) -> Option<JobSpec> {
    commands.iter().find_map(|c| match c {
        Command::Submit(s) => Some((**s).clone()),
        _ => None,
    })
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    format!("{}", render(app, w, h).backend())
}

#[test]
fn the_form_follows_the_model_kind() {
    use pallaidium::jobs::JobKind;
    let typed = Form {
        voice: "a calm female voice, close to the microphone".into(),
        duration: "8".into(),
        audio: "talk.wav".into(),
        language: "de".into(),
        translate: true,
        init_image: "photo.png".into(),
        steps: "25".into(),
        ..Form::default()
    };
    for (model, kind, name) in [
        ("parler-tts-mini", JobKind::Tts, "pane_params_tts"),
        ("musicgen-small", JobKind::Music, "pane_params_music"),
        ("whisper-tiny", JobKind::Stt, "pane_params_stt"),
        ("blip-base", JobKind::Caption, "pane_params_caption"),
    ] {
        let mut a = app_kinds(model, all_kinds(), typed.clone());
        pane_snapshot(name, &a.params, 52, 9);
        let spec = submitted(&key(&mut a, KeyCode::F(5), KeyModifiers::NONE))
            .unwrap_or_else(|| panic!("{model}: F5 queues; screen:\n{}", screen(&mut a, 160, 48)));
        assert_eq!(spec.kind, kind);
        assert_eq!(spec.steps, None, "{model}: a hidden field is not submitted");
        assert_eq!(spec.negative, "", "{model}: no negative prompt");
        match kind {
            JobKind::Tts => {
                assert_eq!(spec.voice.as_deref(), Some(typed.voice.as_str()));
                assert_eq!(spec.duration, Some(8.0));
                assert_eq!(spec.prompt, "a lighthouse at dusk");
            }
            JobKind::Music => assert_eq!((spec.duration, spec.voice), (Some(8.0), None)),
            JobKind::Stt => {
                assert_eq!(spec.audio, Some("talk.wav".into()));
                assert_eq!(
                    (spec.language.as_deref(), spec.translate),
                    (Some("de"), true)
                );
                assert_eq!(spec.prompt, "", "transcription takes no prompt");
            }
            _ => assert_eq!(spec.init_image, Some("photo.png".into())),
        }
    }
}

#[test]
fn the_model_picker_lists_every_kind() {
    let mut a = app_kinds("sd15", all_kinds(), Form::default());
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    pane_snapshot("pane_params_picker_kinds", &a.params, 72, 10);
    // Searching by kind finds the model; choosing it swaps the form's fields.
    for c in "stt".chars() {
        key(&mut a, KeyCode::Char(c), KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(a.params.form().model, "whisper-tiny");
    assert_eq!(a.params.form().kind, Some(Kind::Stt));
    let text = screen(&mut a, 160, 48);
    assert!(text.contains("translate"), "{text}");
    assert!(!text.contains("scheduler"), "{text}");
}

/// A 3.2 s, 32 kHz mono clip that swells and fades, as the TTS and music engines write them.
fn write_clip(path: &std::path::Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 32_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = 102_400;
    for i in 0..n {
        let t = i as f64 / f64::from(n);
        let envelope = (t * std::f64::consts::PI).sin().powi(2);
        let tone = (i as f64 * 0.07).sin();
        w.write_sample((envelope * tone * 30_000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn an_audio_result_shows_its_waveform() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("42_a-calm-voice.wav");
    write_clip(&wav);
    let mut a = app_kinds("parler-tts-mini", all_kinds(), Form::default());
    let commands = a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(3),
        outputs: vec![wav.clone()],
        timings: Default::default(),
        peak_bytes: None,
        text: None,
        duration_s: Some(3.2),
    }));
    assert!(
        commands.contains(&Command::LoadAudio(wav.clone())),
        "a .wav output is read off the drawing path: {commands:?}"
    );
    // What the loop's blocking task sends back.
    let wave = pallaidium::tui::preview::waveform::read_wav(&wav).unwrap();
    a.handle(AppEvent::Waveform(Box::new(wave)));
    pane_snapshot("pane_preview_audio", &a.preview, 44, 9);
    let text = screen(&mut a, 160, 48);
    assert!(text.contains("3.2 s · 32 kHz · mono"), "{text}");
}

const CAPTION: &str = "a lighthouse on a rocky cliff at dusk, warm light in the lantern room, \
waves breaking below, dramatic clouds, oil painting with thick brush strokes";

#[test]
fn a_text_result_is_wrapped_and_scrolls() {
    let mut a = app_kinds("blip-base", all_kinds(), Form::default());
    a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(4),
        outputs: vec!["out/7_caption.txt".into()],
        timings: Default::default(),
        peak_bytes: None,
        text: Some(CAPTION.into()),
        duration_s: None,
    }));
    assert_eq!(a.preview.text(), Some(CAPTION));
    pane_snapshot("pane_preview_text", &a.preview, 30, 7);
    // Down scrolls one line (the preview pane focused).
    while a.focus() != pallaidium::tui::panes::PaneId::Preview {
        key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    }
    let before = screen(&mut a, 80, 24);
    key(&mut a, KeyCode::Down, KeyModifiers::NONE);
    let after = screen(&mut a, 80, 24);
    assert_ne!(before, after, "Down scrolls the text");
}

#[test]
fn enhance_streams_into_the_prompt_and_undo_restores_the_idea() {
    let mut a = app_kinds("sd15", all_kinds(), Form::default());
    let spec = submitted(&key(&mut a, KeyCode::Char('e'), KeyModifiers::CONTROL))
        .expect("Ctrl-E queues an enhance job");
    assert_eq!(spec.kind, pallaidium::jobs::JobKind::Enhance);
    assert_eq!(spec.model, "qwen2.5-0.5b-instruct");
    assert_eq!(spec.prompt, "a lighthouse at dusk");
    // The first delta arrives before the runner's answer to the submission.
    a.handle(AppEvent::Job(JobEvent::Text {
        job: JobId(9),
        delta: "a lighthouse on a rocky".into(),
    }));
    a.handle(AppEvent::Submitted {
        job: JobId(9),
        spec: Box::new(spec),
    });
    a.handle(AppEvent::Job(JobEvent::Text {
        job: JobId(9),
        delta: " cliff at dusk, warm light".into(),
    }));
    assert_eq!(
        a.prompt.assist_text(),
        Some("a lighthouse on a rocky cliff at dusk, warm light")
    );
    pane_snapshot("pane_prompt_enhancing", &a.prompt, 60, 6);
    insta::assert_snapshot!("enhancing_80x24", render(&mut a, 80, 24).backend());
    // Typing while it runs does not touch the prompt it is about to replace.
    key(&mut a, KeyCode::Char('x'), KeyModifiers::NONE);
    a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(9),
        outputs: vec!["out/9_enhanced.txt".into()],
        timings: Default::default(),
        peak_bytes: None,
        text: Some(format!(" {CAPTION}\n")),
        duration_s: None,
    }));
    assert_eq!(a.prompt.prompt(), CAPTION);
    assert_eq!(a.prompt.assist_text(), None);
    assert!(screen(&mut a, 160, 48).contains("prompt enhanced"));
    key(&mut a, KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(a.prompt.prompt(), "a lighthouse at dusk", "one undo step");
}

#[test]
fn caption_fills_the_prompt_from_the_init_image() {
    let form = Form {
        init_image: "photos/harbour.png".into(),
        ..Form::default()
    };
    let mut a = app_kinds("sd15", all_kinds(), form);
    let spec = submitted(&key(&mut a, KeyCode::Char('p'), KeyModifiers::CONTROL))
        .expect("Ctrl-P queues a caption job");
    assert_eq!(spec.kind, pallaidium::jobs::JobKind::Caption);
    assert_eq!(
        (spec.model.as_str(), spec.init_image.clone()),
        ("blip-base", Some("photos/harbour.png".into()))
    );
    a.handle(AppEvent::Submitted {
        job: JobId(2),
        spec: Box::new(spec),
    });
    assert!(screen(&mut a, 80, 24).contains("captioning"));
    a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(2),
        outputs: vec![],
        timings: Default::default(),
        peak_bytes: None,
        text: Some("a harbour with boats".into()),
        duration_s: None,
    }));
    assert_eq!(a.prompt.prompt(), "a harbour with boats");

    // A failed helper leaves the prompt alone and says why.
    let spec = submitted(&key(&mut a, KeyCode::Char('p'), KeyModifiers::CONTROL)).unwrap();
    a.handle(AppEvent::Submitted {
        job: JobId(3),
        spec: Box::new(spec),
    });
    a.handle(AppEvent::Job(JobEvent::Failed {
        job: JobId(3),
        error: "photos/harbour.png: cannot read".into(),
    }));
    assert_eq!(a.prompt.prompt(), "a harbour with boats");
    assert!(screen(&mut a, 160, 48).contains("caption failed"));
}

#[test]
fn helpers_say_what_is_missing() {
    // Only sd15: no text or caption model.
    let registry = Registry::shipped().unwrap();
    let only_sd = vec![registry.entries()[0].clone()];
    let mut a = app_kinds("sd15", only_sd, Form::default());
    assert!(submitted(&key(&mut a, KeyCode::Char('e'), KeyModifiers::CONTROL)).is_none());
    assert!(screen(&mut a, 160, 48).contains("no prompt enhancer"));
    assert!(submitted(&key(&mut a, KeyCode::Char('p'), KeyModifiers::CONTROL)).is_none());
    assert!(screen(&mut a, 160, 48).contains("no captioner"));
    // A captioner but no init image.
    let mut a = app_kinds("sd15", all_kinds(), Form::default());
    assert!(submitted(&key(&mut a, KeyCode::Char('p'), KeyModifiers::CONTROL)).is_none());
    assert!(screen(&mut a, 160, 48).contains("no init image to caption"));
    // Esc cancels a running helper.
    let spec = submitted(&key(&mut a, KeyCode::Char('e'), KeyModifiers::CONTROL)).unwrap();
    a.handle(AppEvent::Submitted {
        job: JobId(5),
        spec: Box::new(spec),
    });
    let c = key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    assert!(c.contains(&Command::Cancel(JobId(5))), "{c:?}");
}

#[test]
fn streamed_text_shows_in_the_preview() {
    let mut a = app_kinds("whisper-tiny", all_kinds(), Form::default());
    for d in ["[00:00.000 --> 00:02.000] hello", " there, and welcome"] {
        a.handle(AppEvent::Job(JobEvent::Text {
            job: JobId(6),
            delta: d.into(),
        }));
    }
    pane_snapshot("pane_preview_streaming", &a.preview, 36, 6);
}

#[test]
fn new_fields_nudge_and_toggle() {
    let mut a = app_kinds("musicgen-small", all_kinds(), Form::default());
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    key(&mut a, KeyCode::Down, KeyModifiers::NONE); // model → duration
    key(&mut a, KeyCode::Right, KeyModifiers::NONE);
    key(&mut a, KeyCode::Right, KeyModifiers::NONE);
    assert_eq!(
        a.params.form().duration,
        "3",
        "from the minimum, 1 s a step"
    );
    for _ in 0..10 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(a.params.form().device, "cpu", "the list ends at the device");

    let mut a = app_kinds("whisper-tiny", all_kinds(), Form::default());
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    for _ in 0..3 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE); // model → translate
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    assert!(a.params.form().translate);
    key(&mut a, KeyCode::Delete, KeyModifiers::NONE);
    assert!(!a.params.form().translate, "Del is back to the default");
    // F5 with no audio file says what is missing.
    assert!(submitted(&key(&mut a, KeyCode::F(5), KeyModifiers::NONE)).is_none());
    assert!(screen(&mut a, 160, 48).contains("choose an audio file first"));
}

#[test]
fn a_folder_models_kind_is_learnt_off_the_ui_thread() {
    let mut a = app_kinds("models/my-musicgen", all_kinds(), Form::default());
    assert_eq!(a.params.form().kind, None, "unknown until read");
    let start = a.start_commands();
    assert!(
        start.contains(&Command::ResolveKind("models/my-musicgen".into())),
        "{start:?}"
    );
    let commands = a.handle(AppEvent::ModelKind {
        model: "models/my-musicgen".into(),
        kind: Kind::Music,
    });
    assert_eq!(a.params.form().kind, Some(Kind::Music));
    assert!(
        plan_command(&commands).is_some(),
        "the new form is planned again"
    );
    // A registry model's kind is known at once: nothing to resolve.
    let mut a = app_kinds("whisper-tiny", all_kinds(), Form::default());
    assert!(
        !a.start_commands()
            .iter()
            .any(|c| matches!(c, Command::ResolveKind(_)))
    );
}
