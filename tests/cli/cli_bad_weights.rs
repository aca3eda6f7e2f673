//! Broken model folders through the real binary: truncated or corrupt safetensors, a tensor of the
//! wrong shape, pickled weights only. Each is exit 2 with a message naming the file, and nothing is
//! written or queued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "reference" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of sd1-tiny to break.
fn model_copy(home: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let dst = home.join("model");
    copy_dir(&src, &dst);
    dst
}

fn run(home: &Path, model: &Path) -> (Option<i32>, String) {
    let out = Command::cargo_bin("pallaidium")
        .unwrap()
        .env("PALLAIDIUM_HOME", home)
        .args([
            "--headless",
            "--json",
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--model",
        ])
        .arg(model)
        .args([
            "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2", "--out",
        ])
        .arg(home.join("out"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(home: &Path, code: Option<i32>, stderr: &str, names: &str) {
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(names),
        "the message must name {names}: {stderr}"
    );
    assert!(!home.join("out").exists(), "nothing may be written");
}

#[test]
fn a_truncated_weights_file_is_refused_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path());
    let file = model.join("unet/diffusion_pytorch_model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    let (code, stderr) = run(home.path(), &model);
    assert_refused(
        home.path(),
        code,
        &stderr,
        "diffusion_pytorch_model.safetensors",
    );
}

#[test]
fn a_garbage_header_is_refused_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path());
    let file = model.join("vae/diffusion_pytorch_model.safetensors");
    std::fs::write(&file, b"this is not a safetensors file at all").unwrap();
    let (code, stderr) = run(home.path(), &model);
    assert_refused(home.path(), code, &stderr, "vae");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path());
    // Claim more cross-attention width than the weights have: every attention tensor mismatches.
    let config = model.join("unet/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["cross_attention_dim"] = serde_json::json!(48);
    std::fs::write(&config, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let (code, stderr) = run(home.path(), &model);
    assert_refused(home.path(), code, &stderr, "shape");
}

#[test]
fn pickled_weights_are_refused_with_how_to_convert() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path());
    let dir = model.join("text_encoder");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let _ = std::fs::remove_file(dir.join("model.fp16.safetensors"));
    std::fs::write(dir.join("pytorch_model.bin"), b"PK\x03\x04 pickle").unwrap();
    let (code, stderr) = run(home.path(), &model);
    assert_refused(home.path(), code, &stderr, "pytorch_model.bin");
    assert!(
        stderr.contains("safe_serialization=True"),
        "says how to convert: {stderr}"
    );
}
