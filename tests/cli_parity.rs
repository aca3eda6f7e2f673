//! The real `--headless` binary reproduces diffusers' images: the PNG it writes, from the same
//! weights, prompt, scheduler and initial noise (`--init-latents`), is within 1/255 mean absolute
//! difference of the image diffusers produced (tests/fixtures/*/reference/pipeline_*.json).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use candle_core::Device;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(model: &str, name: &str) -> serde_json::Value {
    let path = fixtures()
        .join(model)
        .join(format!("reference/pipeline_{name}.json"));
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    serde_json::from_str(&text).unwrap()
}

/// Runs the binary as diffusers was run and returns the mean absolute difference (0-255).
fn run_headless(model: &str, name: &str, noise_file: &str, extra: &[&str]) -> f64 {
    let r = reference(model, name);
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
        .arg(dir.join("reference").join(noise_file))
        .arg("--out")
        .arg(&out)
        .args(extra);
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
    let expected = candle_core::safetensors::load(
        dir.join(format!("reference/pipeline_{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap()["image"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(expected.len(), ours.as_raw().len());
    let total: f64 = ours
        .as_raw()
        .iter()
        .zip(&expected)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b) * 255.0).abs())
        .sum();
    total / expected.len() as f64
}

#[test]
fn headless_txt2img_matches_diffusers() {
    for (model, name) in [
        ("sd1-tiny", "dpmpp2m-karras"),
        ("sd2-tiny", "euler"),
        ("sdxl-tiny", "euler"),
    ] {
        let mad = run_headless(model, name, "init_latents.npy", &[]);
        assert!(mad < 1.0, "{model} {name}: mean abs diff {mad}");
    }
}

#[test]
fn headless_img2img_and_inpaint_match_diffusers() {
    let images = fixtures().join("images");
    let init = images.join("init.png");
    let mask = images.join("mask.png");
    let (init, mask) = (init.to_str().unwrap(), mask.to_str().unwrap());
    let mad = run_headless(
        "sd1-tiny",
        "img2img_ddim",
        "noise_img2img_ddim.safetensors",
        &["--init-image", init, "--strength", "0.6"],
    );
    assert!(mad < 1.0, "img2img: mean abs diff {mad}");
    let mad = run_headless(
        "sd1-inpaint-tiny",
        "inpaint9_ddim",
        "noise_inpaint9_ddim.safetensors",
        &["--init-image", init, "--mask", mask, "--strength", "1.0"],
    );
    assert!(mad < 1.0, "inpaint: mean abs diff {mad}");
}
