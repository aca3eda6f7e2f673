//! FLUX through the real `--headless` binary: diffusers' images reproduced from the same tiny
//! weights and unpacked noise (`--init-latents`), txt2img, img2img, true CFG and a GGUF
//! transformer (`--transformer`); and every bad input (sizes, flags of the wrong family, broken
//! or foreign GGUF files, latents of the wrong shape) refused with exit 2 and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::parity;
use crate::run::{Run, fixture, json_lines};

fn reference(model: &str, name: &str) -> serde_json::Value {
    parity::reference_json_lenient(&fixture(model).join(format!("reference/pipeline_{name}.json")))
}

/// Runs the binary as diffusers ran (the reference's `cli` block) and returns the mean absolute
/// difference (0-255).
pub(crate) fn run_like_diffusers(model: &str, name: &str) -> f64 {
    let r = reference(model, name);
    let cli = &r["cli"];
    let s = |k: &str| cli[k].as_str().map(str::to_owned);
    let dir = fixture(model);
    let run = Run::new();
    let mut cmd = run.command();
    cmd.args(["--json", "--dtype", "f32", "--seed", "0"])
        .arg("--model")
        .arg(&dir)
        .args(["--prompt", &s("prompt").unwrap()])
        .args(["--steps", &cli["steps"].to_string()])
        .args(["--width", &cli["width"].to_string()])
        .args(["--height", &cli["height"].to_string()])
        .args([
            "--max-sequence-length",
            &cli["max_sequence_length"].to_string(),
        ])
        .arg("--init-latents")
        .arg(fixture(&s("noise").unwrap()));
    if r["guidance_used"].as_bool() == Some(true) {
        cmd.args(["--guidance", &cli["guidance_scale"].to_string()]);
    }
    if let Some(negative) = s("negative_prompt") {
        cmd.args(["--negative", &negative])
            .args(["--true-cfg", &cli["true_cfg_scale"].to_string()]);
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
    if let Some(lora) = r["lora"].as_str() {
        cmd.arg("--lora")
            .arg(format!("{}@{}", fixture(lora).display(), r["lora_scale"]));
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{model} {name}: exit {:?}\n{}",
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
    eprintln!("{model} {name}: mean abs diff {mad:.4} (0-255)");
    mad
}

#[test]
fn headless_flux_images_match_diffusers() {
    for (model, name) in [
        ("flux-schnell-tiny", "cli_txt2img"),
        ("flux-schnell-tiny", "cli_img2img"),
        ("flux-schnell-tiny", "cli_gguf_Q4_0"),
        ("flux-dev-tiny", "cli_txt2img"),
        ("flux-dev-tiny", "cli_true_cfg"),
    ] {
        let mad = run_like_diffusers(model, name);
        assert!(
            mad < parity::IMAGE_TOL_255,
            "{model} {name}: mean abs diff {mad}"
        );
    }
}

/// A headless FLUX job on the schnell fixture with `extra` flags: (exit code, stderr, files written).
fn refused(extra: &[&str]) -> (i32, String, Vec<PathBuf>) {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("flux-schnell-tiny"))
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
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        run.files(),
    )
}

fn assert_refused(extra: &[&str], needles: &[&str]) {
    let (code, stderr, files) = refused(extra);
    assert_eq!(code, 2, "{extra:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{extra:?}: no `{n}` in {stderr}");
    }
    assert!(files.is_empty(), "{extra:?} wrote {files:?}");
}

fn copy_truncated(src: &Path, keep: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(src).unwrap();
    let path = dir.path().join(src.file_name().unwrap());
    std::fs::write(&path, &bytes[..keep.min(bytes.len())]).unwrap();
    (dir, path)
}

#[test]
fn bad_flux_inputs_exit_2_with_nothing_written() {
    assert_refused(
        &["--width", "72", "--height", "64"],
        &["--width 72", "multiple of 16"],
    );
    assert_refused(
        &["--scheduler", "ddim", "--width", "64", "--height", "64"],
        &["flow-matching"],
    );
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("flux-dev-tiny"))
        .args(["--prompt", "x", "--max-sequence-length", "600"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at most 512"));
    assert!(run.files().is_empty());
    let gguf = fixture("flux-schnell-tiny/gguf");
    let t5 = gguf.join("t5-encoder-Q8_0.gguf");
    let transformer = gguf.join("transformer-Q8_0.gguf");
    // Each GGUF where the other belongs: the architectures are named.
    assert_refused(
        &[
            "--width",
            "64",
            "--height",
            "64",
            "--transformer",
            t5.to_str().unwrap(),
        ],
        &["t5-encoder-Q8_0.gguf", "t5encoder", "flux"],
    );
    assert_refused(
        &[
            "--width",
            "64",
            "--height",
            "64",
            "--text-encoder-2",
            transformer.to_str().unwrap(),
        ],
        &["transformer-Q8_0.gguf", "architecture"],
    );
    // Truncated in its data and in its header.
    let size = std::fs::metadata(&transformer).unwrap().len() as usize;
    for keep in [size - 100, 40] {
        let (_dir, cut) = copy_truncated(&transformer, keep);
        assert_refused(
            &[
                "--width",
                "64",
                "--height",
                "64",
                "--transformer",
                cut.to_str().unwrap(),
            ],
            &["transformer-Q8_0.gguf"],
        );
    }
    // SD latents (4 channels) for a FLUX job.
    let sd_noise = fixture("sd1-tiny/reference/init_latents.npy");
    assert_refused(
        &[
            "--width",
            "64",
            "--height",
            "64",
            "--init-latents",
            sd_noise.to_str().unwrap(),
        ],
        &["init_latents.npy", "16"],
    );
    // FLUX flags on an SD model.
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args([
            "--prompt",
            "x",
            "--width",
            "64",
            "--height",
            "64",
            "--true-cfg",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--true-cfg"));
    assert!(run.files().is_empty());
}

#[test]
fn a_flux_plan_on_a_16_gib_budget_stages_and_fits() {
    let output = Run::new()
        .command()
        .args(["--plan", "--json", "--memory-budget", "16GiB"])
        .arg("--model")
        .arg(fixture("flux-schnell-tiny"))
        .args(["--prompt", "x", "--width", "1024", "--height", "1024"])
        .arg("--transformer")
        .arg(fixture("flux-schnell-tiny/gguf/transformer-Q4_0.gguf"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("transformer"), "{text}");
    assert!(
        text.contains("\"fits\":true") || text.contains("fits"),
        "{text}"
    );
}

/// Both GGUFs at once (`--transformer` and `--text-encoder-2`, as a 16 GB Mac runs FLUX): the
/// image is written, close to the all-f32 reference but not equal to it (the quantized T5 and
/// transformer move it), and schnell says it ignores --guidance.
#[test]
fn both_ggufs_run_headless_and_schnell_ignores_guidance() {
    let r = reference("flux-schnell-tiny", "cli_txt2img");
    let cli = &r["cli"];
    let gguf = fixture("flux-schnell-tiny/gguf");
    let run = Run::new();
    let output = run
        .command()
        .args(["--json", "--dtype", "f32", "--seed", "0", "--guidance", "5"])
        .arg("--model")
        .arg(fixture("flux-schnell-tiny"))
        .args(["--prompt", cli["prompt"].as_str().unwrap()])
        .args(["--steps", "4", "--width", "80", "--height", "64"])
        .args(["--max-sequence-length", "16"])
        .arg("--init-latents")
        .arg(fixture(cli["noise"].as_str().unwrap()))
        .arg("--transformer")
        .arg(gguf.join("transformer-Q8_0.gguf"))
        .arg("--text-encoder-2")
        .arg(gguf.join("t5-encoder-Q8_0.gguf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("--guidance is ignored"), "{stderr}");
    let done = json_lines(&output.stdout)
        .into_iter()
        .find(|v| v["event"] == "done")
        .unwrap();
    let png = PathBuf::from(done["outputs"][0].as_str().unwrap());
    let ours = image::open(&png).unwrap().to_rgb8();
    let expected = parity::reference_tensors(&fixture(
        "flux-schnell-tiny/reference/pipeline_cli_txt2img.safetensors",
    ));
    let mad = parity::image_mean_abs_diff(ours.as_raw(), parity::get(&expected, "image"));
    assert!(mad > 0.3 && mad < 40.0, "mean abs diff {mad}");
    // The stored parameters name the files, so --from-image can run it again.
    let info = std::process::Command::new(assert_cmd::cargo::cargo_bin("pallaidium"))
        .args(["info", "--json"])
        .arg(&png)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("transformer-Q8_0.gguf") && text.contains("t5-encoder-Q8_0.gguf"),
        "{text}"
    );
    assert!(text.contains("flow-euler"), "{text}");
}
