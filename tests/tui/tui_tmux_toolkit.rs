//! The editing toolkit end to end in tmux: two LoRA files in the folder `[loras] dir` of
//! config.toml names, the LoRA picker turns one on at weight 0.8 (typed), the upscale-after
//! toggle set to x2 (the tiny RRDBNet as --upscaler), Ctrl-G on the tiny SD1 model: the
//! finished PNG's `parameters` carry `<lora:style:0.8>` and the x2 step, and it is twice the size.
// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::tmux;
use tmux::{Tmux, fixture, pngs, quit, wait_for_tui};

#[test]
fn lora_picker_and_upscale_toggle_reach_the_png() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("my loras");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("loras/sd1-peft.safetensors"),
        dir.join("detail.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        fixture("loras/sd1-kohya.safetensors"),
        dir.join("style.safetensors"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[loras]\ndir = {:?}\n", dir.display().to_string()),
    )
    .unwrap();
    let tmux = Tmux::start(160, 48);
    tmux.wait_for("the shell", Duration::from_secs(10), |s| {
        !s.trim().is_empty()
    });
    tmux.send_line(&format!(
        "cd {home} && PALLAIDIUM_HOME={home} HF_HUB_CACHE={home}/hub \
         PALLAIDIUM_PREVIEW_PROTOCOL=none {bin} --device cpu --out {home}/out --model {model} \
         --steps 2 --width 64 --height 64 --seed 7 --prompt 'a red fox' --upscaler {up}; \
         echo EXIT=$?",
        home = home.path().display(),
        bin = env!("CARGO_BIN_EXE_pallaidium"),
        model = fixture("sd1-tiny").display(),
        up = fixture("upscale/rrdb_x2.safetensors").display(),
    ));
    wait_for_tui(&tmux);
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt field left", Duration::from_secs(10), |s| {
        s.contains("Enter/i edits")
    });
    tmux.keys(&["Tab"]);
    for _ in 0..10 {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["Enter"]);
    tmux.wait_for("the LoRA picker", Duration::from_secs(20), |s| {
        s.contains("LoRAs: 0 on")
            && s.contains("detail.safetensors")
            && s.contains("style.safetensors")
    });
    tmux.keys(&["Down", "Space"]);
    tmux.keys(&["-l", "0.8"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("style at 0.8", Duration::from_secs(10), |s| {
        s.contains("LoRAs: 1 on") && s.contains("[x]   0.8 style.safetensors")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the loras field", Duration::from_secs(10), |s| {
        s.contains("style@0.8")
    });
    tmux.keys(&["Down", "Right"]);
    tmux.wait_for("upscale x2", Duration::from_secs(10), |s| {
        s.contains("x2 after the job")
    });
    tmux.keys(&["C-g"]);
    let screen = tmux.wait_for("the job to finish", Duration::from_secs(300), |s| {
        s.contains("job 1 done") || s.contains("failed") || s.contains("not queued")
    });
    assert!(screen.contains("job 1 done"), "the job failed:\n{screen}");
    assert!(
        screen.contains("a red fox <lora:style:0.8> ↑x2"),
        "the queue line shows the LoRA and the upscale:\n{screen}"
    );
    let outputs = pngs(&home.path().join("out"));
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let meta = pallaidium::jobs::output::png_meta::read_parameters(&outputs[0]).unwrap();
    let parameters = meta.parameters.unwrap();
    for field in [
        "<lora:style:0.8>",
        "Postprocess upscale by: 2",
        "Size: 64x64",
    ] {
        assert!(parameters.contains(field), "{field} in {parameters}");
    }
    let image = image::open(&outputs[0]).unwrap();
    assert_eq!((image.width(), image.height()), (128, 128));
    quit(&tmux);
}
