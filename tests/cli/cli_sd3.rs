//! SD 3.5 through the real `--headless` binary: diffusers' images reproduced from
//! tests/fixtures/sd3-tiny and the same noise (`--init-latents`, the unpacked (1, 16, H/8, W/8)):
//! txt2img with CFG and a negative prompt, `--no-t5`, img2img and a Q4_0 GGUF transformer
//! (`--transformer`); bad inputs refused with exit 2 and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::parity;
use crate::run::{Run, fixture, json_lines};

const MODEL: &str = "sd3-tiny";

fn reference(name: &str) -> serde_json::Value {
    parity::reference_json_lenient(&fixture(MODEL).join(format!("reference/pipeline_{name}.json")))
}

/// Runs the binary as diffusers ran (the reference's `cli` block); the mean |diff| (0-255).
fn run_like_diffusers(name: &str) -> f64 {
    let r = reference(name);
    let cli = &r["cli"];
    let s = |k: &str| cli[k].as_str().map(str::to_owned);
    let dir = fixture(MODEL);
    let run = Run::new();
    let mut cmd = run.command();
    cmd.args(["--json", "--dtype", "f32", "--seed", "0"])
        .arg("--model")
        .arg(&dir)
        .args(["--prompt", &s("prompt").unwrap()])
        .args(["--steps", &cli["steps"].to_string()])
        .args(["--guidance", &cli["guidance_scale"].to_string()])
        .args(["--width", &cli["width"].to_string()])
        .args(["--height", &cli["height"].to_string()])
        .args([
            "--max-sequence-length",
            &cli["max_sequence_length"].to_string(),
        ])
        .arg("--init-latents")
        .arg(fixture(&s("noise").unwrap()));
    if let Some(negative) = s("negative_prompt") {
        cmd.args(["--negative", &negative]);
    }
    if cli["no_t5"].as_bool() == Some(true) {
        cmd.arg("--no-t5");
    }
    if let Some(image) = s("init_image") {
        cmd.arg("--init-image")
            .arg(fixture(&image))
            .args(["--strength", &cli["strength"].to_string()]);
    }
    if let Some(gguf) = s("gguf") {
        // diffusers' arithmetic (the 1/255 parity mode); the CPU's default 8-bit matmul has its
        // own tolerance in the parity tests.
        cmd.arg("--transformer")
            .arg(fixture(&gguf))
            .env("PALLAIDIUM_GGUF_MATMUL", "dequant");
    }
    if let Some(t5) = r["text_encoder_gguf"].as_str() {
        cmd.arg("--text-encoder-2").arg(fixture(t5));
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{name}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let done = json_lines(&output.stdout)
        .into_iter()
        .find(|v| v["event"] == "done")
        .unwrap();
    let png = PathBuf::from(done["outputs"][0].as_str().unwrap());
    let ours = image::open(&png).unwrap().to_rgb8();
    let expected =
        parity::reference_tensors(&dir.join(format!("reference/pipeline_{name}.safetensors")));
    let mad = parity::image_mean_abs_diff(ours.as_raw(), parity::get(&expected, "image"));
    eprintln!("{MODEL} {name}: mean abs diff {mad:.4} (0-255)");
    mad
}

#[test]
fn headless_sd3_images_match_diffusers() {
    for name in [
        "cli_txt2img",
        "cli_no_t5",
        "cli_img2img",
        "cli_gguf_Q4_0",
        "cli_t5_gguf_Q4_0",
    ] {
        let mad = run_like_diffusers(name);
        assert!(mad < parity::IMAGE_TOL_255, "{name}: mean abs diff {mad}");
    }
}

fn assert_refused(extra: &[&str], needles: &[&str]) {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture(MODEL))
        .args([
            "--prompt",
            "x",
            "--steps",
            "1",
            "--max-sequence-length",
            "8",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{extra:?}: no `{n}` in {stderr}");
    }
    let files = run.files();
    assert!(files.is_empty(), "{extra:?} wrote {files:?}");
}

#[test]
fn bad_sd3_inputs_exit_2_with_nothing_written() {
    // Sides in multiples of 16 (8x VAE, 2x2 patches).
    assert_refused(&["--width", "72", "--height", "64"], &["multiple of 16"]);
    // FLUX-only flags.
    assert_refused(
        &["--true-cfg", "2", "--width", "64", "--height", "64"],
        &["--true-cfg"],
    );
    // A UNet scheduler.
    assert_refused(
        &["--scheduler", "ddim", "--width", "64", "--height", "64"],
        &["--scheduler ddim"],
    );
    // A FLUX GGUF as the transformer.
    let flux = fixture("flux-schnell-tiny/gguf/transformer-Q8_0.gguf");
    assert_refused(
        &[
            "--transformer",
            flux.to_str().unwrap(),
            "--width",
            "64",
            "--height",
            "64",
        ],
        &["sd3"],
    );
    // T5 from a GGUF of another architecture (Z-Image's Qwen3), or with --no-t5.
    let qwen = fixture("zimage-tiny/gguf/qwen3-Q8_0.gguf");
    let size = ["--width", "64", "--height", "64"];
    assert_refused(
        &[&size[..], &["--text-encoder-2", qwen.to_str().unwrap()]].concat(),
        &["--text-encoder-2", "qwen3-Q8_0.gguf", "t5encoder"],
    );
    let t5 = fixture("sd3-tiny/gguf/t5-encoder-Q4_0.gguf");
    assert_refused(
        &[
            &size[..],
            &["--text-encoder-2", t5.to_str().unwrap(), "--no-t5"],
        ]
        .concat(),
        &["--text-encoder-2", "--no-t5"],
    );
    // Noise of the wrong shape.
    let noise = fixture("sd3-tiny/reference/noise_txt2img.npy");
    assert_refused(
        &[
            "--init-latents",
            noise.to_str().unwrap(),
            "--width",
            "80",
            "--height",
            "64",
        ],
        &["--init-latents"],
    );
}

#[test]
fn no_t5_is_refused_for_flux() {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("flux-schnell-tiny"))
        .args([
            "--prompt", "x", "--steps", "1", "--width", "64", "--height", "64", "--no-t5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--no-t5"), "{stderr}");
}
