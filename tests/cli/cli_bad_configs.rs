//! Model configs whose values an engine divides or indexes by (zero groups, zero heads, zero
//! codebooks, a GGUF header with zero heads) through the real binary: each is exit 2 naming the
//! file and the key, before anything is queued or written. The broken configs are
//! tests/fixtures/bad_models/configs/<case>/ (made by make_bad_configs.py), laid over a copy of
//! the tiny fixture named in the case's FIXTURE file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::run;
use run::{Run, fixture};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        // References are for parity tests; the model does not need them.
        if name.to_string_lossy().starts_with("reference") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The case's fixture copied under the run's folder with the broken config laid over it.
fn broken_model(run: &Run, case: &str) -> PathBuf {
    let case_dir = fixture("bad_models/configs").join(case);
    let base = std::fs::read_to_string(case_dir.join("FIXTURE")).unwrap();
    let model = run.dir.path().join("model");
    copy_dir(&fixture(base.trim()), &model);
    copy_dir(&case_dir, &model);
    std::fs::remove_file(model.join("FIXTURE")).unwrap();
    model
}

/// Exit 2, the message names `file` and `key`, no output and no queue row.
fn assert_refused(run: &Run, args: &[&str], model: &Path, file: &str, key: &str) {
    let out = run
        .command()
        .arg("--model")
        .arg(model)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{file} {key}: {stderr}");
    let named = model.join(file);
    assert!(
        stderr.contains(&named.display().to_string()),
        "the message names {}: {stderr}",
        named.display()
    );
    assert!(stderr.contains(key), "the message names `{key}`: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!run.out.exists(), "nothing may be written");
    let history = run
        .command()
        .args(["--history", "--json"])
        .output()
        .unwrap();
    assert!(
        history.stdout.is_empty(),
        "nothing may be queued: {}",
        String::from_utf8_lossy(&history.stdout)
    );
}

const IMAGE: [&str; 8] = [
    "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2",
];

#[test]
fn sd_unet_vae_and_clip_configs_with_zero_groups_or_heads_are_refused() {
    for (case, file, key) in [
        ("sd1-unet-groups", "unet/config.json", "norm_num_groups"),
        ("sd1-vae-groups", "vae/config.json", "norm_num_groups"),
        (
            "sd1-clip-heads",
            "text_encoder/config.json",
            "num_attention_heads",
        ),
    ] {
        let run = Run::new();
        let model = broken_model(&run, case);
        assert_refused(&run, &IMAGE, &model, file, key);
    }
}

#[test]
fn audio_model_configs_with_zero_heads_or_codebooks_are_refused() {
    let run = Run::new();
    let model = broken_model(&run, "parler-heads");
    assert_refused(
        &run,
        &["--prompt", "Hello.", "--duration", "0.5"],
        &model,
        "config.json",
        "decoder.num_attention_heads",
    );
    let run = Run::new();
    let model = broken_model(&run, "musicgen-codebooks");
    assert_refused(
        &run,
        &["--prompt", "lofi", "--duration", "0.5"],
        &model,
        "config.json",
        "decoder.num_codebooks",
    );
}

#[test]
fn whisper_and_blip_configs_with_zero_heads_are_refused() {
    let run = Run::new();
    let model = broken_model(&run, "whisper-heads");
    let audio = fixture("audio/speech.wav");
    assert_refused(
        &run,
        &["--audio", audio.to_str().unwrap()],
        &model,
        "config.json",
        "encoder_attention_heads",
    );
    let run = Run::new();
    let model = broken_model(&run, "blip-heads");
    let image = fixture("images/init.png");
    assert_refused(
        &run,
        &["--caption", image.to_str().unwrap()],
        &model,
        "config.json",
        "num_attention_heads",
    );
}

#[test]
fn a_gguf_header_with_zero_heads_is_refused() {
    use candle_core::quantized::gguf_file;
    let run = Run::new();
    let source = fixture("qwen2-tiny-gguf/qwen2-tiny-f32.gguf");
    let mut reader = std::fs::File::open(&source).unwrap();
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let tensors: Vec<(String, candle_core::quantized::QTensor)> = content
        .tensor_infos
        .keys()
        .map(|name| {
            let t = content
                .tensor(&mut reader, name, &candle_core::Device::Cpu)
                .unwrap();
            (name.clone(), t)
        })
        .collect();
    let mut metadata = content.metadata.clone();
    metadata.insert(
        "qwen2.attention.head_count".into(),
        gguf_file::Value::U32(0),
    );
    let model = run.dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        fixture("qwen2-tiny-gguf/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    let mut out = std::fs::File::create(model.join("tiny.gguf")).unwrap();
    let meta: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &candle_core::quantized::QTensor)> =
        tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut out, &meta, &refs).unwrap();
    drop(out);
    assert_refused(
        &run,
        &["--kind", "enhance", "--prompt", "a fox"],
        &model,
        "tiny.gguf",
        "qwen2.attention.head_count",
    );
}
