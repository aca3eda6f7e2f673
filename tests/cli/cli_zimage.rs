//! Z-Image through the real `--headless` binary: diffusers' ZImagePipeline images reproduced from
//! the same tiny weights and noise (`--init-latents`), with the folder's transformer and with a
//! Q4_0 GGUF (`--transformer`) and with Qwen3 from a Q4_0 GGUF (`--text-encoder-2`); `--plan` of the fixture; every bad input (sizes, img2img, FLUX's
//! flags, a FLUX GGUF, latents of the wrong shape) refused with exit 2 and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::parity;
use crate::run::{Run, fixture, json_lines, plan_stages};

/// Runs the binary as the reference's `cli` block says; returns the mean absolute difference
/// (0-255) from diffusers' image.
fn run_like_diffusers(name: &str) -> f64 {
    let dir = fixture("zimage-tiny");
    let r = parity::reference_json_lenient(&dir.join(format!("reference/pipeline_{name}.json")));
    let cli = &r["cli"];
    let s = |k: &str| cli[k].as_str().map(str::to_owned);
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
        .args(["--guidance", &cli["guidance_scale"].to_string()])
        .arg("--init-latents")
        .arg(fixture(&s("noise").unwrap()));
    if let Some(gguf) = s("gguf") {
        // diffusers' arithmetic (the 1/255 parity mode); the CPU's default 8-bit matmul has its
        // own tolerance in the parity tests.
        cmd.arg("--transformer")
            .arg(fixture(&gguf))
            .env("PALLAIDIUM_GGUF_MATMUL", "dequant");
    }
    if let Some(qwen) = r["text_encoder_gguf"].as_str() {
        cmd.arg("--text-encoder-2").arg(fixture(qwen));
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{name}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output.stdout);
    let steps = lines.iter().filter(|v| v["event"] == "progress").count();
    assert_eq!(steps as u64, cli["steps"].as_u64().unwrap(), "{name}");
    let done = lines.iter().find(|v| v["event"] == "done").unwrap();
    let png = PathBuf::from(done["outputs"][0].as_str().unwrap());
    let ours = image::open(&png).unwrap().to_rgb8();
    let expected =
        parity::reference_tensors(&dir.join(format!("reference/pipeline_{name}.safetensors")));
    let mad = parity::image_mean_abs_diff(ours.as_raw(), parity::get(&expected, "image"));
    eprintln!("zimage {name}: mean abs diff {mad:.4} (0-255)");
    mad
}

#[test]
fn headless_zimage_images_match_diffusers() {
    for name in ["cli_txt2img", "cli_gguf_Q4_0", "cli_qwen_gguf_Q4_0"] {
        let mad = run_like_diffusers(name);
        assert!(mad < parity::IMAGE_TOL_255, "{name}: mean abs diff {mad}");
    }
}

#[test]
fn zimage_plan_names_its_stages() {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("zimage-tiny"))
        .args(["--prompt", "x", "--plan", "--json", "--dtype", "f32"])
        .args(["--width", "1024", "--height", "768"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stages = plan_stages(&plan);
    assert_eq!(
        stages,
        [
            "encode prompt (Qwen3)",
            "denoise (transformer)",
            "vae decode"
        ],
        "{plan}"
    );
    assert!(run.files().is_empty());
}

/// A headless Z-Image job on the fixture with `extra` flags: it must exit 2, say every one of
/// `needles` and write nothing.
fn assert_refused(extra: &[&str], needles: &[&str]) {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(fixture("zimage-tiny"))
        .args(["--prompt", "x", "--steps", "1"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{extra:?}: no `{n}` in {stderr}");
    }
    assert!(run.files().is_empty(), "{extra:?} wrote {:?}", run.files());
}

#[test]
fn bad_zimage_inputs_exit_2_with_nothing_written() {
    let size = ["--width", "64", "--height", "64"];
    assert_refused(
        &["--width", "72", "--height", "64"],
        &["--width 72", "multiple of 16"],
    );
    assert_refused(
        &[&size[..], &["--scheduler", "ddim"]].concat(),
        &["flow-matching"],
    );
    assert_refused(
        &[&size[..], &["--true-cfg", "4", "--negative", "blur"]].concat(),
        &["--true-cfg", "--guidance"],
    );
    let t5 = fixture("flux-schnell-tiny/gguf/t5-encoder-Q8_0.gguf");
    assert_refused(
        &[&size[..], &["--text-encoder-2", t5.to_str().unwrap()]].concat(),
        &[
            "--text-encoder-2",
            "t5-encoder-Q8_0.gguf",
            "t5encoder",
            "qwen3",
        ],
    );
    let safetensors = fixture("zimage-tiny/text_encoder/model.safetensors");
    assert_refused(
        &[
            &size[..],
            &["--text-encoder-2", safetensors.to_str().unwrap()],
        ]
        .concat(),
        &["--text-encoder-2", "Qwen3 GGUF"],
    );
    let image = fixture("images/init_64x48.png");
    assert_refused(
        &[&size[..], &["--init-image", image.to_str().unwrap()]].concat(),
        &["text-to-image only"],
    );
    // A FLUX transformer GGUF where Z-Image's belongs: the architectures are named.
    let flux = fixture("flux-schnell-tiny/gguf/transformer-Q8_0.gguf");
    assert_refused(
        &[&size[..], &["--transformer", flux.to_str().unwrap()]].concat(),
        &["transformer-Q8_0.gguf", "flux", "lumina2"],
    );
    // SD latents (4 channels) for a Z-Image job.
    let sd_noise = fixture("sd1-tiny/reference/init_latents.npy");
    assert_refused(
        &[&size[..], &["--init-latents", sd_noise.to_str().unwrap()]].concat(),
        &["init_latents.npy", "16"],
    );
}
