//! Snapshot tests of the video side of the TUI (issue 22): the form's frames and fps fields for
//! a video model, the queue row with the clip's length, and a finished clip in the preview (the
//! middle frame and its counter on halfblocks), decoded from an MP4 our encoder wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::engines::video::VideoClip;
use pallaidium::jobs::output::video::encode_mp4;
use pallaidium::jobs::spec::{Params, VideoParams};
use pallaidium::jobs::{JobEvent, JobId, JobSpec};
use pallaidium::models::{Kind, ModelEntry, Registry};
use pallaidium::tui::app::{App, AppConfig, Command, CompatEnv};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::panes::form::Form;
use pallaidium::tui::panes::{Pane, PaneId};
use pallaidium::tui::preview::video::load_clip;
use pallaidium::tui::theme::Theme;
use pallaidium::vocab::{Backend, JobKind};
use ratatui_image::picker::Picker;

use crate::tui;
use crate::tui_snapshots_media::{screen, submitted};
use tui::{key, pane_terminal, snapshot};

fn pane_snapshot(name: &str, pane: &dyn Pane, w: u16, h: u16) {
    insta::assert_snapshot!(name, pane_terminal(pane, w, h).backend());
}

/// A Wan-like video model made from sd15's entry, so the snapshot does not follow the registry.
fn video_model() -> ModelEntry {
    let mut e = Registry::shipped().unwrap().entries()[0].clone();
    e.id = "wan2.1-t2v-1.3b".into();
    e.name = "Wan 2.1 T2V 1.3B".into();
    e.kind = Kind::Txt2vid;
    e.defaults.width = 832;
    e.defaults.height = 480;
    e.defaults.steps = 50;
    e.defaults.guidance = 5.0;
    e.defaults.frames = Some(81);
    e.defaults.fps = Some(16);
    e
}

fn video_app(form: Form, picker: Option<Picker>) -> App {
    video_app_for(video_model(), form, picker)
}

/// The app with `entry` (id wan2.1-t2v-1.3b) as its only model.
fn video_app_for(entry: ModelEntry, form: Form, picker: Option<Picker>) -> App {
    let mut app = App::new(AppConfig {
        theme: Theme::dark(),
        notice: None,
        form: Form {
            model: "wan2.1-t2v-1.3b".into(),
            random_seed: true,
            device: "cpu".into(),
            ..form
        },
        prompt: "a red fox runs through the snow".into(),
        negative: String::new(),
        compat: CompatEnv {
            backend: Backend::Cpu,
            chip: None,
            macos_version: None,
            memory_budget_bytes: None,
            hf_token_present: true,
            entries: vec![entry],
        },
        picker,
    });
    app.handle(AppEvent::System(snapshot()));
    app
}

#[test]
fn the_video_form_shows_frames_and_fps_and_submits_them() {
    let mut a = video_app(Form::default(), None);
    pane_snapshot("pane_params_video_defaults", &a.params, 52, 10);
    let typed = Form {
        frames: "33".into(),
        fps: "24".into(),
        ..Form::default()
    };
    let mut a2 = video_app(typed, None);
    pane_snapshot("pane_params_video_typed", &a2.params, 52, 10);
    let spec = submitted(&key(&mut a2, KeyCode::F(5), KeyModifiers::NONE))
        .unwrap_or_else(|| panic!("F5 queues; screen:\n{}", screen(&mut a2, 160, 48)));
    assert_eq!(spec.kind_asked(), JobKind::Txt2vid);
    assert_eq!((spec.frames, spec.fps), (Some(33), Some(24)));
    let defaults = submitted(&key(&mut a, KeyCode::F(5), KeyModifiers::NONE)).unwrap();
    assert_eq!(
        (defaults.frames, defaults.fps),
        (None, None),
        "the model's own"
    );
}

#[test]
fn frames_nudge_by_four_and_bad_counts_are_refused() {
    let mut a = video_app(Form::default(), None);
    // Prompt → parameters; the frames field is the sixth.
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    for _ in 0..5 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Left, KeyModifiers::NONE);
    assert_eq!(a.params.form().frames, "77", "81 less one latent frame");
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    for _ in 0..2 {
        key(&mut a, KeyCode::Backspace, KeyModifiers::NONE);
    }
    for c in "34".chars() {
        key(&mut a, KeyCode::Char(c), KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    let s = screen(&mut a, 160, 48);
    assert!(s.contains("frames: Wan makes 4n+1 frames"), "{s}");
    assert_eq!(a.params.form().frames, "77", "the bad count is not taken");
}

/// An LTX-Video model's frames step by 8 (8n+1), and the check names LTX's rule.
#[test]
fn ltx_frames_nudge_by_eight() {
    let mut ltx = video_model();
    ltx.family = pallaidium::models::Family::Ltx;
    ltx.kind = Kind::Img2vid;
    ltx.defaults.frames = Some(161);
    ltx.defaults.fps = Some(25);
    let mut a = video_app_for(ltx, Form::default(), None);
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    // An image-to-video model: the frames field is the seventh (after the init image).
    for _ in 0..6 {
        key(&mut a, KeyCode::Down, KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Left, KeyModifiers::NONE);
    assert_eq!(a.params.form().frames, "153", "161 less one latent frame");
    key(&mut a, KeyCode::Right, KeyModifiers::NONE);
    key(&mut a, KeyCode::Right, KeyModifiers::NONE);
    assert_eq!(a.params.form().frames, "169");
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    for _ in 0..3 {
        key(&mut a, KeyCode::Backspace, KeyModifiers::NONE);
    }
    for c in "37".chars() {
        key(&mut a, KeyCode::Char(c), KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Enter, KeyModifiers::NONE);
    let s = screen(&mut a, 160, 48);
    assert!(s.contains("frames: LTX-Video makes 8n+1 frames"), "{s}");
    assert_eq!(a.params.form().frames, "169", "the bad count is not taken");
}

fn video_spec(frames: u32, fps: u32) -> Box<JobSpec> {
    Box::new(JobSpec {
        kind: JobKind::Txt2vid,
        model: "wan2.1-t2v-1.3b".into(),
        prompt: "a red fox runs through the snow".into(),
        seed: Some(7),
        dtype: None,
        params: Params::Video(VideoParams {
            negative: String::new(),
            steps: 50,
            guidance: 5.0,
            width: 832,
            height: 480,
            frames,
            fps,
            save_frames: false,
            init_image: None,
            last_image: None,
            init_latents: None,
            max_sequence_length: None,
            vae_tiling: None,
            residency: None,
            text_encoder_2: None,
            decode_timestep: None,
            decode_noise_scale: None,
        }),
    })
}

#[test]
fn the_queue_row_shows_the_clips_length() {
    let mut a = video_app(Form::default(), None);
    a.handle(AppEvent::Job(JobEvent::Queued {
        job: JobId(1),
        position: 0,
    }));
    a.handle(AppEvent::Submitted {
        job: JobId(1),
        spec: video_spec(33, 16),
    });
    pane_snapshot("pane_queue_video_queued", &a.queue, 60, 5);
    a.handle(AppEvent::Job(JobEvent::Progress {
        job: JobId(1),
        step: 20,
        steps: 50,
        elapsed_s: 40.0,
        eta_s: 60.0,
    }));
    pane_snapshot("pane_queue_video_running", &a.queue, 60, 5);
    let mp4 = std::path::PathBuf::from("out/7_a-red-fox.mp4");
    let commands = a.handle(AppEvent::Job(JobEvent::Done {
        job: JobId(1),
        outputs: vec![mp4.clone(), "out/7_a-red-fox.json".into()],
        timings: Default::default(),
        peak_bytes: None,
        device_peak_bytes: None,
        text: None,
        duration_s: None,
    }));
    assert!(
        commands.contains(&Command::LoadVideo(mp4)),
        "the clip is decoded for the preview: {commands:?}"
    );
    pane_snapshot("pane_queue_video_done", &a.queue, 60, 5);
}

/// A clip of `n` frames, each a different shade, written by our encoder.
fn write_clip(dir: &std::path::Path, n: usize, fps: u32) -> std::path::PathBuf {
    let (w, h) = (48u32, 32u32);
    let frames = (0..n)
        .map(|i| {
            (0..w * h)
                .flat_map(|p| [(i * 40) as u8, (p % w * 5) as u8, 128])
                .collect()
        })
        .collect();
    let clip = VideoClip {
        width: w,
        height: h,
        fps,
        frames,
    };
    let path = dir.join("7_a-red-fox.mp4");
    std::fs::write(&path, encode_mp4(&clip).unwrap()).unwrap();
    path
}

#[test]
fn a_finished_clip_shows_its_middle_frame_and_counter_on_halfblocks() {
    let dir = tempfile::tempdir().unwrap();
    let clip = load_clip(&write_clip(dir.path(), 5, 8)).unwrap();
    assert_eq!((clip.frames.len(), clip.fps, clip.size), (5, 8.0, (48, 32)));
    let mut a = video_app(Form::default(), Some(Picker::halfblocks()));
    a.handle(AppEvent::Video(Box::new(clip)));
    assert!(!a.animating(), "halfblocks hold one frame");
    let s = screen(&mut a, 160, 48);
    assert!(
        s.contains("frame 3/5 · 5f 0.6s @8fps · 7_a-red-fox.mp4"),
        "{s}"
    );
    assert!(
        s.contains('▀') || s.contains('▄'),
        "the frame is drawn:\n{s}"
    );
    assert!(
        !load_clip(&dir.path().join("missing.mp4"))
            .unwrap_err()
            .is_empty()
    );
}

#[test]
fn a_clip_plays_where_the_terminal_shows_images() {
    let dir = tempfile::tempdir().unwrap();
    let clip = load_clip(&write_clip(dir.path(), 9, 16)).unwrap();
    let mut picker = Picker::halfblocks();
    picker.set_protocol_type(ratatui_image::picker::ProtocolType::Kitty);
    let mut a = video_app(Form::default(), Some(picker));
    a.handle(AppEvent::Video(Box::new(clip)));
    assert!(a.animating());
    let start = std::time::Instant::now();
    assert!(screen(&mut a, 160, 48).contains("frame 1/9"));
    assert!(a.animate(start + std::time::Duration::from_millis(400)));
    assert!(!screen(&mut a, 160, 48).contains("frame 1/9"));
    // Space in the focused preview pauses it; Right steps a frame.
    key(&mut a, KeyCode::Esc, KeyModifiers::NONE);
    while a.focus() != PaneId::Preview {
        key(&mut a, KeyCode::Tab, KeyModifiers::NONE);
    }
    key(&mut a, KeyCode::Char(' '), KeyModifiers::NONE);
    assert!(!a.animating());
    let paused = screen(&mut a, 160, 48);
    assert!(paused.contains("paused (Space)"), "{paused}");
    key(&mut a, KeyCode::Right, KeyModifiers::NONE);
    assert_ne!(
        screen(&mut a, 160, 48),
        paused,
        "Right shows the next frame"
    );
    key(&mut a, KeyCode::Char(' '), KeyModifiers::NONE);
    assert!(a.animating(), "Space plays on");
}
