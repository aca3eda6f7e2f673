//! Snapshot tests of the audio and text side of the TUI (issue 8): the form per model kind, the
//! picker, waveform and text results, streamed text, enhance and caption into the prompt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::jobs::spec::{CaptionParams, EnhanceParams, JobOverrides, Params};
use pallaidium::jobs::{JobEvent, JobId, JobSpec};
use pallaidium::models::Registry;
use pallaidium::tui::app::{App, AppConfig, Command, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::Pane;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::theme::Theme;
use pallaidium::vocab::Backend;

use crate::tui;
use tui::{key, pane_terminal, plan_command, render, snapshot};

fn pane_snapshot(name: &str, pane: &dyn Pane, w: u16, h: u16) {
    insta::assert_snapshot!(name, pane_terminal(pane, w, h).backend());
}

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

/// What the runner would have prepared from a submitted job (for `AppEvent::Submitted`).
fn prepared(asked: &JobOverrides, params: Params) -> Box<JobSpec> {
    Box::new(JobSpec {
        kind: asked.kind_asked(),
        model: asked.model.clone().unwrap_or_default(),
        prompt: asked.prompt.clone().unwrap_or_default(),
        seed: asked.seed,
        dtype: None,
        params,
    })
}

pub(crate) fn submitted(commands: &[Command]) -> Option<JobOverrides> {
    commands.iter().find_map(|c| match c {
        Command::Submit(s) => Some((**s).clone()),
        _ => None,
    })
}

pub(crate) fn screen(app: &mut App, w: u16, h: u16) -> String {
    format!("{}", render(app, w, h).backend())
}

#[test]
fn the_form_follows_the_model_kind() {
    use pallaidium::vocab::JobKind;
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
        assert_eq!(spec.kind_asked(), kind);
        assert_eq!(spec.steps, None, "{model}: a hidden field is not submitted");
        assert_eq!(spec.negative, None, "{model}: no negative prompt");
        match kind {
            JobKind::Tts => {
                assert_eq!(spec.voice.as_deref(), Some(typed.voice.as_str()));
                assert_eq!(spec.duration, Some(8.0));
                assert_eq!(spec.prompt.as_deref(), Some("a lighthouse at dusk"));
            }
            JobKind::Music => assert_eq!((spec.duration, spec.voice), (Some(8.0), None)),
            JobKind::Stt => {
                assert_eq!(spec.audio, Some("talk.wav".into()));
                assert_eq!(
                    (spec.language.as_deref(), spec.translate),
                    (Some("de"), Some(true))
                );
                assert_eq!(spec.prompt, None, "transcription takes no prompt");
            }
            _ => assert_eq!(spec.caption, Some("photo.png".into())),
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
        device_peak_bytes: None,
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
        device_peak_bytes: None,
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
fn ctrl_e_takes_the_same_default_enhancer_as_headless() {
    // With both Qwen sizes in the list, the TUI used the first (0.5B) while headless used 1.5B.
    let mut entries = all_kinds();
    let mut default = entries.last().unwrap().clone();
    default.id = pallaidium::jobs::spec::media::DEFAULT_ENHANCER.into();
    entries.push(default);
    let mut a = app_kinds("sd15", entries, Form::default());
    let spec = submitted(&key(&mut a, KeyCode::Char('e'), KeyModifiers::CONTROL))
        .expect("Ctrl-E queues an enhance job");
    assert_eq!(
        spec.model.as_deref(),
        Some(pallaidium::jobs::spec::media::DEFAULT_ENHANCER)
    );
}

#[test]
fn enhance_streams_into_the_prompt_and_undo_restores_the_idea() {
    let mut a = app_kinds("sd15", all_kinds(), Form::default());
    let spec = submitted(&key(&mut a, KeyCode::Char('e'), KeyModifiers::CONTROL))
        .expect("Ctrl-E queues an enhance job");
    assert_eq!(spec.kind, Some(pallaidium::vocab::JobKind::Enhance));
    assert_eq!(spec.model.as_deref(), Some("qwen2.5-0.5b-instruct"));
    assert_eq!(spec.prompt.as_deref(), Some("a lighthouse at dusk"));
    // The first delta arrives before the runner's answer to the submission.
    a.handle(AppEvent::Job(JobEvent::Text {
        job: JobId(9),
        delta: "a lighthouse on a rocky".into(),
    }));
    a.handle(AppEvent::Submitted {
        job: JobId(9),
        spec: prepared(&spec, Params::Enhance(EnhanceParams { max_tokens: 200 })),
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
        device_peak_bytes: None,
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
    assert_eq!(spec.kind, Some(pallaidium::vocab::JobKind::Caption));
    assert_eq!(
        (spec.model.as_deref(), spec.caption.clone()),
        (Some("blip-base"), Some("photos/harbour.png".into()))
    );
    a.handle(AppEvent::Submitted {
        job: JobId(2),
        spec: prepared(
            &spec,
            Params::Caption(CaptionParams {
                image: "photos/harbour.png".into(),
                max_tokens: 40,
            }),
        ),
    });
    assert!(screen(&mut a, 80, 24).contains("captioning"));
    a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(2),
        outputs: vec![],
        timings: Default::default(),
        peak_bytes: None,
        device_peak_bytes: None,
        text: Some("a harbour with boats".into()),
        duration_s: None,
    }));
    assert_eq!(a.prompt.prompt(), "a harbour with boats");

    // A failed helper leaves the prompt alone and says why.
    let spec = submitted(&key(&mut a, KeyCode::Char('p'), KeyModifiers::CONTROL)).unwrap();
    a.handle(AppEvent::Submitted {
        job: JobId(3),
        spec: prepared(
            &spec,
            Params::Caption(CaptionParams {
                image: "photos/harbour.png".into(),
                max_tokens: 40,
            }),
        ),
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
        spec: prepared(&spec, Params::Enhance(EnhanceParams { max_tokens: 200 })),
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
        family: pallaidium::models::Family::Musicgen,
    });
    assert_eq!(a.params.form().kind, Some(Kind::Music));
    assert_eq!(
        a.params.form().family,
        Some(pallaidium::models::Family::Musicgen)
    );
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
