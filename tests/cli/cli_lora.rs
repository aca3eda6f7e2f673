//! `--lora` through the real binary: tiny kohya and PEFT LoRAs (tests/fixtures/make_lora.py)
//! merged into the tiny SD 1.x and SDXL pipelines give diffusers' `load_lora_weights` +
//! `fuse_lora` images; the engine cache never hands a LoRA'd model to a job without it; the PNG
//! records `<lora:NAME:WEIGHT>` and `--from-image` applies the LoRA again; a LoRA of another
//! family, one matching nothing and a pickle are exit 2 with nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::cli_parity::run_headless_with;
use crate::parity;
use crate::run::{Run, fixture};

fn lora(file: &str) -> PathBuf {
    fixture("loras").join(file)
}

/// diffusers' image with the LoRA against its image without: how far the LoRA moves it (0-255).
fn lora_moves(model: &str, fmt: &str) -> f64 {
    reference_moves(model, "euler", &format!("lora_{fmt}"))
}

/// The mean absolute difference (0-255) of two of diffusers' reference images.
fn reference_moves(model: &str, base: &str, with: &str) -> f64 {
    let ref_dir = fixture(model).join("reference");
    let base = parity::reference_tensors(&ref_dir.join(format!("pipeline_{base}.safetensors")));
    let with = parity::reference_tensors(&ref_dir.join(format!("pipeline_{with}.safetensors")));
    parity::mean_abs_diff_255(
        &parity::image_values(parity::get(&base, "image")),
        &parity::image_values(parity::get(&with, "image")),
    )
}

#[test]
fn lora_images_match_diffusers_fuse_lora() {
    for (model, stem) in [("sd1-tiny", "sd1"), ("sdxl-tiny", "sdxl")] {
        for fmt in ["kohya", "peft"] {
            let r = parity::reference_json_lenient(
                &fixture(model).join(format!("reference/pipeline_lora_{fmt}.json")),
            );
            let scale = r["lora_scale"].as_f64().unwrap();
            let moved = lora_moves(model, fmt);
            assert!(
                moved > 5.0 * parity::IMAGE_TOL_255,
                "{model} {fmt}: the LoRA moves diffusers' image by only {moved}"
            );
            let file = lora(&format!("{stem}-{fmt}.safetensors"));
            let flags = ["--lora".to_string(), format!("{}@{scale}", file.display())];
            let mad = run_headless_with(model, &format!("lora_{fmt}"), &flags);
            assert!(
                mad < parity::IMAGE_TOL_255,
                "{model} {fmt}: mean abs diff {mad} (the LoRA moves the image {moved})"
            );
        }
    }
}

#[test]
fn flux_lora_images_match_diffusers_fuse_lora() {
    for fmt in ["peft", "kohya"] {
        let name = format!("cli_lora_{fmt}");
        let moved = reference_moves("flux-schnell-tiny", "cli_txt2img", &name);
        assert!(
            moved > 5.0 * parity::IMAGE_TOL_255,
            "flux {fmt}: the LoRA moves diffusers' image by only {moved}"
        );
        let mad = crate::cli_flux::run_like_diffusers("flux-schnell-tiny", &name);
        assert!(
            mad < parity::IMAGE_TOL_255,
            "flux {fmt}: mean abs diff {mad} (the LoRA moves the image {moved})"
        );
    }
}

#[test]
fn a_lora_on_a_gguf_flux_transformer_is_exit_2() {
    let run = Run::new();
    let out = run
        .command()
        .arg("--model")
        .arg(fixture("flux-schnell-tiny"))
        .args([
            "--width", "80", "--height", "64", "--steps", "1", "--prompt", "x",
        ])
        .arg("--transformer")
        .arg(fixture("flux-schnell-tiny/gguf/transformer-Q4_0.gguf"))
        .arg("--lora")
        .arg(lora("flux-peft.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("transformer-Q4_0.gguf"), "{stderr}");
    assert!(run.files().is_empty());
}

fn tiny_job(seed: u64, lora: Option<&str>) -> String {
    let model = fixture("sd1-tiny");
    let mut job = format!(
        "[[job]]\nmodel = {:?}\nprompt = \"a lighthouse\"\nseed = {seed}\nwidth = 64\nheight = 64\nsteps = 2\n",
        model.to_str().unwrap()
    );
    if let Some(l) = lora {
        job.push_str(&format!("lora = [{l:?}]\n"));
    }
    job.push('\n');
    job
}

/// Runs `cmd`, which must succeed; the first output of each finished job.
fn outputs_of(cmd: &mut assert_cmd::Command) -> Vec<PathBuf> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::run::json_lines(&out.stdout)
        .iter()
        .filter(|v| v["event"] == "done")
        .map(|v| PathBuf::from(v["outputs"][0].as_str().unwrap()))
        .collect()
}

fn rgb(path: &std::path::Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

/// One process, one engine cache: base, LoRA'd, base again. The third is the first exactly.
#[test]
fn a_job_without_the_lora_after_one_with_it_gets_the_base_model() {
    let run = Run::new();
    let with = format!("{}@1", lora("sd1-kohya.safetensors").display());
    let jobs = [
        tiny_job(5, None),
        tiny_job(5, Some(&with)),
        tiny_job(5, None),
    ]
    .concat();
    let file = run.dir.path().join("jobs.toml");
    std::fs::write(&file, jobs).unwrap();
    let outputs = outputs_of(run.command().arg("--jobs").arg(&file));
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    let img = |i: usize| rgb(&outputs[i]);
    assert_ne!(img(0), img(1), "the LoRA changes the image");
    assert_eq!(img(0), img(2), "the cached base model is the base model");
}

#[test]
fn the_png_records_the_lora_and_from_image_applies_it_again() {
    let run = Run::new();
    let file = lora("sd1-peft.safetensors");
    let mut cmd = run.command();
    cmd.arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--width", "64", "--height", "64", "--steps", "2"])
        .args(["--prompt", "a lighthouse", "--seed", "5", "--lora"])
        .arg(format!("{}@0.5", file.display()));
    let first = outputs_of(&mut cmd).remove(0);
    let text = png_parameters(&first);
    assert!(
        text.starts_with("a lighthouse <lora:sd1-peft:0.5>\n"),
        "{text}"
    );
    let second = outputs_of(run.command().arg("--from-image").arg(&first)).remove(0);
    let (a, b) = (rgb(&first), rgb(&second));
    assert_eq!(a, b, "the stored LoRA is applied again");
    let third = outputs_of(
        run.command()
            .arg("--from-image")
            .arg(&first)
            .args(["--lora", &format!("{}@0", file.display())]),
    )
    .remove(0);
    assert_ne!(a, rgb(&third), "a flag replaces it");
}

fn png_parameters(path: &std::path::Path) -> String {
    pallaidium::jobs::output::png_meta::read_parameters(path)
        .unwrap()
        .parameters
        .unwrap()
}

/// Exit 2, the message naming `names`, nothing written.
fn refused(lora_value: &str, model: &str, names: &[&str]) {
    let run = Run::new();
    let out = run
        .command()
        .arg("--model")
        .arg(fixture(model))
        .args(["--width", "64", "--height", "64", "--steps", "2"])
        .args(["--prompt", "x", "--lora", lora_value])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "`{name}` not in: {stderr}");
    }
    assert!(run.files().is_empty(), "nothing is written");
}

#[test]
fn a_lora_of_another_family_is_exit_2_naming_file_and_key() {
    let sdxl = lora("sdxl-kohya.safetensors");
    refused(
        sdxl.to_str().unwrap(),
        "sd1-tiny",
        &["sdxl-kohya.safetensors", "lora_", "matches no layer"],
    );
    let sd1 = lora("sd1-peft.safetensors");
    refused(
        sd1.to_str().unwrap(),
        "sdxl-tiny",
        &["sd1-peft.safetensors", "matches no layer"],
    );
}

#[test]
fn a_lora_matching_nothing_or_pickled_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stray.safetensors");
    let dev = candle_core::Device::Cpu;
    let t = |shape: (usize, usize)| {
        candle_core::Tensor::ones(shape, candle_core::DType::F32, &dev).unwrap()
    };
    let tensors = std::collections::HashMap::from([
        (
            "lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight".to_string(),
            t((4, 16)),
        ),
        (
            "lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight".to_string(),
            t((16, 4)),
        ),
    ]);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    refused(
        path.to_str().unwrap(),
        "sd1-tiny",
        &[
            "stray.safetensors",
            "lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight",
        ],
    );
    let pickle = dir.path().join("style.ckpt");
    std::fs::write(&pickle, b"not really").unwrap();
    refused(
        pickle.to_str().unwrap(),
        "sd1-tiny",
        &["style.ckpt", "pickled"],
    );
}

/// `REPO:FILE` is the file in the Hugging Face cache's snapshot of the repo: the same image as
/// its path.
#[test]
fn a_repo_file_in_the_hugging_face_cache_is_the_same_lora() {
    let run = Run::new();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = run.home.join("hf/hub/models--someone--tiny-lora");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::copy(
        lora("sd1-kohya.safetensors"),
        snapshot.join("style.safetensors"),
    )
    .unwrap();
    let image = |value: &str| {
        let mut cmd = run.command();
        cmd.arg("--model")
            .arg(fixture("sd1-tiny"))
            .args(["--width", "64", "--height", "64", "--steps", "2"])
            .args(["--prompt", "a lighthouse", "--seed", "5", "--lora", value]);
        rgb(&outputs_of(&mut cmd).remove(0))
    };
    let by_path = image(&format!("{}@0.7", lora("sd1-kohya.safetensors").display()));
    assert_eq!(image("someone/tiny-lora:style.safetensors@0.7"), by_path);
    refused(
        "someone/other:style.safetensors",
        "sd1-tiny",
        &["someone/other", "not in the Hugging Face cache"],
    );
}
