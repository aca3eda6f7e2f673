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
use crate::tui_snapshots::app;

fn press(a: &mut pallaidium::tui::app::App, code: KeyCode) -> Vec<Command> {
    key(a, code, KeyModifiers::NONE)
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
    let commands = press(&mut a, KeyCode::F(5));
    let spec = commands
        .iter()
        .find_map(|c| match c {
            Command::Submit(s) => Some(s.clone()),
            _ => None,
        })
        .expect("F5 queues");
    assert_eq!(
        spec.lora.as_deref(),
        Some(&["/loras/style.safetensors@0.8".to_owned()][..])
    );
    assert_eq!((spec.upscale, spec.upscaler.as_deref()), (Some(2), None));
}
