//! The real `--headless` binary reproduces diffusers' images: the PNG it writes, from the same
//! weights, prompt, scheduler and initial noise (`--init-latents`), is within 1/255 mean absolute
//! difference of the image diffusers produced (tests/fixtures/*/reference/pipeline_*.json).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

use crate::parity;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(model: &str, name: &str) -> serde_json::Value {
    parity::reference_json_lenient(
        &fixtures()
            .join(model)
            .join(format!("reference/pipeline_{name}.json")),
    )
}

/// The first word of a reference JSON string field (a file name, then a note).
fn file_of(r: &serde_json::Value, key: &str) -> Option<String> {
    r.get(key)?
        .as_str()?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// Runs the binary as diffusers was run (its initial latents or noise, init image, mask and
/// strength from the reference JSON) and returns the mean absolute difference (0-255).
fn run_headless(model: &str, name: &str) -> f64 {
    run_headless_with(model, name, &[])
}

/// `run_headless` with more flags (`--lora FILE@SCALE`).
pub(crate) fn run_headless_with(model: &str, name: &str, flags: &[String]) -> f64 {
    let r = reference(model, name);
    let noise_file = file_of(&r, "noise")
        // txt2img through the .npy copy, so both formats of --init-latents are exercised.
        .or_else(|| file_of(&r, "init_latents_file").map(|f| f.replace(".safetensors", ".npy")))
        .unwrap_or_else(|| panic!("{model} {name}: no noise or init_latents_file"));
    let mut extra: Vec<String> = flags.to_vec();
    for (key, flag) in [("init_image", "--init-image"), ("mask_image", "--mask")] {
        if let Some(file) = file_of(&r, key) {
            extra.push(flag.into());
            extra.push(fixtures().join(file).to_str().unwrap().into());
        }
    }
    if let Some(strength) = r.get("strength") {
        extra.extend(["--strength".into(), strength.to_string()]);
    }
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let dir = fixtures().join(model);
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home.path())
        .args(["--headless", "--json", "--device", "cpu", "--dtype", "f32"])
        .arg("--model")
        .arg(&dir)
        .args(["--prompt", r["prompt"].as_str().unwrap()])
        .args(["--negative", r["negative_prompt"].as_str().unwrap()])
        .args(["--steps", &r["steps"].to_string()])
        .args(["--guidance", &r["guidance_scale"].to_string()])
        .args([
            "--width",
            &r["width"].to_string(),
            "--height",
            &r["height"].to_string(),
        ])
        .args([
            "--scheduler",
            r["scheduler_name"].as_str().unwrap(),
            "--seed",
            "0",
        ])
        .arg("--init-latents")
        .arg(dir.join("reference").join(&noise_file))
        .arg("--out")
        .arg(&out)
        .args(&extra);
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{model} {name}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .unwrap_or_else(|| panic!("no done event in {stdout}"));
    let png = PathBuf::from(done["outputs"][0].as_str().unwrap());
    let ours = image::open(&png).unwrap().to_rgb8();
    let expected =
        parity::reference_tensors(&dir.join(format!("reference/pipeline_{name}.safetensors")));
    let mad = parity::image_mean_abs_diff(ours.as_raw(), parity::get(&expected, "image"));
    eprintln!("{model} {name}: mean abs diff {mad:.4} (0-255)");
    mad
}

#[test]
fn headless_txt2img_matches_diffusers() {
    for (model, name) in [
        ("sd1-tiny", "dpmpp2m-karras"),
        ("sd2-tiny", "euler"),
        ("sdxl-tiny", "euler"),
        ("sdxl-tiny", "euler_portrait"),
    ] {
        let mad = run_headless(model, name);
        assert!(
            mad < parity::IMAGE_TOL_255,
            "{model} {name}: mean abs diff {mad}"
        );
    }
}

#[test]
fn headless_img2img_and_inpaint_match_diffusers() {
    for (model, name) in [
        ("sd1-tiny", "img2img_ddim"),
        ("sd1-inpaint-tiny", "inpaint9_ddim"),
    ] {
        let mad = run_headless(model, name);
        assert!(
            mad < parity::IMAGE_TOL_255,
            "{model} {name}: mean abs diff {mad}"
        );
    }
}
