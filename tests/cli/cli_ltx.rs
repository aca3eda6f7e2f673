//! LTX-Video through the real `--headless` binary (issue 22): a tiny LTXPipeline folder
//! (tests/fixtures/ltx-tiny, make_ltx_pipeline.py) with diffusers' noise (`--init-latents`,
//! unpacked) makes diffusers' frames within mean |diff| <= 1/255: text-to-video at 9 frames
//! 96x64 and 17 frames 64x96 (classifier-free guidance), and image-to-video from an 8-bit PNG at
//! `--fps 12` (the frame rate scales the RoPE's time axis, so it moves the clip); the prompt,
//! the image and the frame rate move the frames more than that; the frame and size rules are
//! the folder's (its VAE's ratios), and `--plan` names LTX's stages.

use std::path::PathBuf;

use crate::cli_wan::{Clip, assert_refused, check_mp4, frames_diff_in, run_in};
use crate::parity;
use crate::run::{Run, fixture, plan_stages};

const REFS: &str = "ltx-pipeline";

fn model() -> PathBuf {
    fixture("ltx-tiny")
}

fn cases() -> serde_json::Value {
    parity::reference_json_lenient(&fixture("ltx-pipeline/cases.json"))
}

/// Case `name` through the binary; the case's frame rate (LTXPipeline's 25 unless it says) and,
/// for the `png` case, its first frame.
fn run(name: &str, extra: &[(&str, &str)]) -> Clip {
    let meta = cases();
    let c = &meta["cases"][name];
    let fps = c["fps"].as_u64().unwrap_or(25).to_string();
    let image = fixture(&format!("{REFS}/{name}_image.png"));
    let mut flags: Vec<(&str, &str)> = vec![("--fps", fps.as_str())];
    if c["image"] == "png" {
        flags.push(("--init-image", image.to_str().unwrap()));
    }
    flags.extend_from_slice(extra);
    run_in((REFS, &model()), &meta, name, &flags)
}

fn diff(name: &str, clip: &Clip) -> f64 {
    frames_diff_in(REFS, name, &clip.outputs[1..])
}

#[test]
fn headless_ltx_clips_match_diffusers() {
    let meta = cases();
    for name in ["cli9", "cli17", "png"] {
        let c = &meta["cases"][name];
        let clip = run(name, &[]);
        assert_eq!(clip.progress as u64, c["steps"].as_u64().unwrap(), "{name}");
        let mp4 = &clip.outputs[0];
        assert_eq!(mp4.extension().unwrap(), "mp4", "{name}: the .mp4 first");
        let mad = diff(name, &clip);
        eprintln!("ltx {name}: mean abs diff {mad:.4} (0-255)");
        assert!(mad <= parity::IMAGE_TOL_255, "{name}: mean abs diff {mad}");
        let fps = c["fps"].as_u64().unwrap_or(25) as u32;
        let frames = c["frames"].as_u64().unwrap();
        let size = (c["width"].as_u64().unwrap(), c["height"].as_u64().unwrap());
        check_mp4(mp4, frames, size, fps);
        let sidecar = std::fs::read_to_string(mp4.with_extension("json")).unwrap();
        let kind = if name == "png" { "img2vid" } else { "txt2vid" };
        assert!(sidecar.contains(&format!("\"{kind}\"")), "{sidecar}");
    }
}

/// The prompt, the first frame and the frame rate each move the clip past the tolerance.
#[test]
fn ltx_prompt_image_and_fps_move_the_clip() {
    let moved = diff(
        "cli9",
        &run(
            "cli9",
            &[("--prompt", "a blue whale sings under the arctic ice")],
        ),
    );
    eprintln!("ltx cli9 with another prompt: {moved:.4}");
    assert!(moved > 2.0 * parity::IMAGE_TOL_255, "prompt: {moved}");
    let other = fixture("images/init_wide.png");
    let moved = diff(
        "png",
        &run("png", &[("--init-image", other.to_str().unwrap())]),
    );
    eprintln!("ltx png with another image: {moved:.4}");
    assert!(moved > 2.0 * parity::IMAGE_TOL_255, "image: {moved}");
    let moved = diff("png", &run("png", &[("--fps", "25")]));
    eprintln!("ltx png at 25 fps: {moved:.4}");
    assert!(moved > parity::IMAGE_TOL_255, "fps: {moved}");
}

/// A timestep-conditioned VAE decoding at `--decode-timestep 0.05` without fresh noise
/// (`--decode-noise-scale 0`) matches diffusers; the default timestep 0 moves the frames.
#[test]
fn ltx_decode_timestep_matches_diffusers() {
    let flags = [("--decode-timestep", "0.05"), ("--decode-noise-scale", "0")];
    let clip = run("dt", &flags);
    let mad = diff("dt", &clip);
    eprintln!("ltx dt: mean abs diff {mad:.4}");
    assert!(mad <= parity::IMAGE_TOL_255, "decode timestep: {mad}");
    let sidecar = std::fs::read_to_string(clip.outputs[0].with_extension("json")).unwrap();
    assert!(sidecar.contains("\"decode_timestep\": 0.05"), "{sidecar}");
    let moved = diff("dt", &run("dt", &[]));
    eprintln!("ltx dt at timestep 0: {moved:.4}");
    assert!(moved > 2.0 * parity::IMAGE_TOL_255, "timestep 0: {moved}");
    // Fresh noise (seeded, not torch's) moves them too.
    let noisy = diff("dt", &run("dt", &[("--decode-timestep", "0.05")]));
    assert!(noisy > parity::IMAGE_TOL_255, "noise 0.05: {noisy}");
    let wan = fixture("wan-t2v-tiny");
    assert_refused(
        &wan,
        &["--frames", "5", "--decode-timestep", "0.03"],
        &["--decode-timestep", "LTX-Video"],
    );
    assert_refused(
        &model(),
        &["--frames", "9", "--decode-noise-scale", "1.5"],
        &["--decode-noise-scale"],
    );
}

/// Staged residency (T5, the transformer and the VAE each loaded for its stage, the VAE's
/// encoder for the first frame only) with the decode asked tiled makes the same clips (the
/// tiny clips fit one 512-pixel tile, as in diffusers).
#[test]
fn ltx_staged_and_tiled_match_diffusers_too() {
    for name in ["cli17", "png"] {
        let clip = run(name, &[("--residency", "staged"), ("--vae-tiling", "on")]);
        let mad = diff(name, &clip);
        assert!(mad <= parity::IMAGE_TOL_255, "{name} staged: {mad}");
    }
}

/// T5 from a Q8_0 GGUF of the same encoder (as a 16 GB Mac runs T5-XXL): near diffusers' dense
/// frames (3.4/255 measured: the tiny random transformer amplifies the 8-bit T5 states; another
/// prompt moves them 21.7), and the sidecar names the file; a GGUF of another architecture is
/// refused.
#[test]
fn ltx_takes_its_t5_from_a_gguf() {
    let gguf = fixture("flux-schnell-tiny/gguf/t5-encoder-Q8_0.gguf");
    let clip = run("cli9", &[("--text-encoder-2", gguf.to_str().unwrap())]);
    let mad = diff("cli9", &clip);
    eprintln!("ltx cli9 with a Q8_0 T5: {mad:.4}");
    assert!(mad < 8.0, "Q8_0 T5: {mad}");
    let sidecar = std::fs::read_to_string(clip.outputs[0].with_extension("json")).unwrap();
    assert!(sidecar.contains("t5-encoder-Q8_0.gguf"), "{sidecar}");
    let qwen = fixture("qwen2-tiny-gguf/qwen2-tiny-f32.gguf");
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(model())
        .args(["--prompt", "x", "--steps", "1", "--frames", "9"])
        .args(["--width", "96", "--height", "64"])
        .arg("--text-encoder-2")
        .arg(&qwen)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("qwen2-tiny-f32.gguf"), "{stderr}");
    assert!(
        !run.files()
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "mp4")),
        "{:?}",
        run.files()
    );
}

#[test]
fn ltx_bad_inputs_exit_2_with_nothing_written() {
    let ltx = model();
    // The tiny VAE packs 4 frames a latent at 8x (the released ones 8 at 32x).
    assert_refused(
        &ltx,
        &["--frames", "8"],
        &["LTX-Video makes 4n+1", "try 5 or 9"],
    );
    assert_refused(
        &ltx,
        &["--frames", "9", "--width", "100", "--height", "64"],
        &["multiple of 8", "try 96"],
    );
    assert_refused(
        &ltx,
        &["--kind", "img2vid", "--frames", "9"],
        &["--init-image"],
    );
    assert_refused(
        &ltx,
        &["--frames", "9", "--text-encoder-2", "t5.safetensors"],
        &["--text-encoder-2", "LTX-Video takes its T5"],
    );
    let noise = fixture("ltx-pipeline/cli17_noise.npy");
    assert_refused(
        &ltx,
        &[
            "--frames",
            "9",
            "--width",
            "96",
            "--height",
            "64",
            "--init-latents",
            noise.to_str().unwrap(),
        ],
        &["--init-latents", "shape"],
    );
}

#[test]
fn ltx_plan_names_its_stages_and_writes_nothing() {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(model())
        .args(["--prompt", "x", "--plan", "--json", "--dtype", "f32"])
        .args(["--width", "96", "--height", "64", "--frames", "9"])
        .args(["--residency", "staged"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stages = plan_stages(&plan);
    assert_eq!(
        stages,
        [
            "load text encoder",
            "encode prompt (T5)",
            "load transformer",
            "denoise (transformer)",
            "load vae",
            "vae decode"
        ],
        "{plan}"
    );
    assert!(plan["peak_bytes"].as_u64().unwrap() > 0, "{plan}");
    // Image-to-video encodes the first frame first, with the VAE's encoder.
    let image = fixture("ltx-pipeline/png_image.png");
    let output = run
        .command()
        .arg("--model")
        .arg(model())
        .args(["--prompt", "x", "--plan", "--json", "--dtype", "f32"])
        .args(["--width", "96", "--height", "64", "--frames", "9"])
        .args(["--residency", "staged", "--init-image"])
        .arg(&image)
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stages = plan_stages(&plan);
    assert_eq!(
        &stages[..3],
        [
            "load vae (encoder)",
            "encode first frame (VAE)",
            "load text encoder"
        ],
        "{plan}"
    );
    assert!(run.files().is_empty());
}
