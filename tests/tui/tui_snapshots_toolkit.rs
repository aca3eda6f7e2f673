//! The editing toolkit in the parameters pane: the LoRA picker (files listed, one for another
//! model family marked, one turned on and weighted) and the upscale-after toggle, as drawn and as
//! submitted.
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::tui::app::Command;
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::lora_files::{LoraFamily, LoraFile};

use crate::tui::{key, pane_terminal};
use crate::tui_snapshots::{app, app_with, halfblocks_in_preview};

fn press(a: &mut pallaidium::tui::app::App, code: KeyCode) -> Vec<Command> {
    key(a, code, KeyModifiers::NONE)
}

/// F5: the job the form queues.
fn submit(a: &mut pallaidium::tui::app::App) -> Box<pallaidium::jobs::spec::JobOverrides> {
    press(a, KeyCode::F(5))
        .into_iter()
        .find_map(|c| match c {
            Command::Submit(s) => Some(s),
            _ => None,
        })
        .expect("F5 queues")
}

#[test]
fn lora_picker_weights_and_upscale_reach_the_job() {
    let mut a = app("");
    let family = a.params.current_model().and_then(|m| m.family);
    assert_eq!(family, Some(pallaidium::models::Family::Sd1), "sd15 first");
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Tab);
    for _ in 0..10 {
        press(&mut a, KeyCode::Down);
    }
    let commands = press(&mut a, KeyCode::Enter);
    assert!(
        commands.contains(&Command::ScanLoras),
        "Enter on the loras field lists the files: {commands:?}"
    );
    a.handle(AppEvent::LoraFiles(vec![
        LoraFile {
            path: PathBuf::from("/loras/flux-detail.safetensors"),
            label: "flux-detail.safetensors".into(),
            family: LoraFamily::Flux,
        },
        LoraFile {
            path: PathBuf::from("/loras/style.safetensors"),
            label: "style.safetensors".into(),
            family: LoraFamily::Sd,
        },
    ]));
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Char(' '));
    for _ in 0..4 {
        press(&mut a, KeyCode::Char('-'));
    }
    insta::assert_snapshot!(
        "pane_params_lora_picker",
        pane_terminal(&a.params, 72, 12).backend()
    );
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Right);
    insta::assert_snapshot!(
        "pane_params_loras_upscale",
        pane_terminal(&a.params, 72, 20).backend()
    );
    let spec = submit(&mut a);
    assert_eq!(
        spec.lora.as_deref(),
        Some(&["/loras/style.safetensors@0.8".to_owned()][..])
    );
    assert_eq!((spec.upscale, spec.upscaler.as_deref()), (Some(2), None));
}

fn type_text(a: &mut pallaidium::tui::app::App, text: &str) {
    for c in text.chars() {
        press(a, KeyCode::Char(c));
    }
}

#[test]
fn the_control_image_is_previewed_and_the_controlnet_reaches_the_job() {
    let mut a = app_with("", Some(ratatui_image::picker::Picker::halfblocks()));
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Tab);
    for _ in 0..13 {
        press(&mut a, KeyCode::Down);
    }
    press(&mut a, KeyCode::Enter);
    type_text(&mut a, "cn-sd1");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    // Relative (tests run in the crate's folder), so the snapshot does not hold the checkout's path.
    let image = PathBuf::from("tests/fixtures/controlnets/control_wide.png");
    type_text(&mut a, &image.display().to_string());
    let commands = press(&mut a, KeyCode::Enter);
    let shown = |canny| Command::LoadControl {
        path: image.clone(),
        canny,
    };
    assert!(
        commands.contains(&shown(None)),
        "setting the control image loads it for the preview: {commands:?}"
    );
    assert_eq!(halfblocks_in_preview(&mut a, 160, 48), 0);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Left);
    press(&mut a, KeyCode::Down);
    let commands = press(&mut a, KeyCode::Right);
    let canny = Some((100.0, 200.0));
    assert!(
        commands.contains(&shown(canny)),
        "canny shows the edge map: {commands:?}"
    );
    // What the loop answers LoadControl with.
    let (label, edges) = pallaidium::tui::preview::control::control_preview(&image, canny).unwrap();
    a.handle(AppEvent::Image {
        label,
        image: Box::new(edges),
    });
    assert!(
        halfblocks_in_preview(&mut a, 160, 48) > 0,
        "the preview draws it"
    );
    let screen = format!("{}", crate::tui::render(&mut a, 160, 48).backend());
    assert!(
        screen.contains("canny edges 100/200: control_wide.png"),
        "{screen}"
    );
    insta::assert_snapshot!(
        "pane_params_controlnet",
        pane_terminal(&a.params, 72, 22).backend()
    );
    let spec = submit(&mut a);
    assert_eq!(spec.controlnet, Some(vec!["cn-sd1".to_owned()]));
    assert_eq!(spec.control_image, Some(vec![image]));
    assert_eq!(spec.control_scale, Some(vec![0.95]));
    assert_eq!(
        spec.control_preprocess,
        Some(vec![
            pallaidium::jobs::spec::controlnet::ControlPreprocess::Canny
        ])
    );
}
