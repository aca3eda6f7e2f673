//! Parity of BLIP captioning with transformers' BlipProcessor (PIL backend) and
//! BlipForConditionalGeneration on tests/fixtures/blip-tiny (made by tests/fixtures/make_blip.py
//! with torch 2.15 / transformers 5.24), f32 on the CPU.
//!
//! Tolerances: pixel_values 1e-6 absolute (the resize reproduces PIL's integer arithmetic, so the
//! bytes are equal and only the float normalisation may differ by an ulp); vision output and
//! decoder logits 1e-4 relative to the tensor's largest magnitude; token ids and captions exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::text::blip::{BlipCaptioner, CaptionOptions};
use pallaidium::engines::{CancelToken, EngineEvent, progress::NullSink};
use pallaidium::error::Error;
use serde_json::Value;

const REL_TOL: f32 = 1e-4;
const PIXEL_TOL: f32 = 1e-6;

fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blip-tiny");
    assert!(
        dir.join("config.json").is_file(),
        "fixture {} is missing",
        dir.display()
    );
    dir
}

fn reference() -> (HashMap<String, Tensor>, Value) {
    let dir = fixture();
    let tensors = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors");
    let json = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
    (
        tensors,
        serde_json::from_str(&json).expect("reference.json parses"),
    )
}

fn model() -> BlipCaptioner {
    BlipCaptioner::load(&fixture(), &Device::Cpu, DType::F32).expect("fixture loads")
}

fn image(name: &str) -> image::DynamicImage {
    image::open(fixture().join(name)).expect("fixture image")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// max |a - b| (infinite on any NaN or infinity) and max |b|.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    pallaidium::engines::nn::compare::max_abs_diff(a, b).unwrap()
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    let (diff, scale) = max_abs_diff(ours, theirs);
    eprintln!(
        "{what}: max abs diff {diff:e}, max |ref| {scale}, rel {:e}",
        diff / scale
    );
    assert!(
        diff <= REL_TOL * scale.max(1.0),
        "{what}: max abs diff {diff} (scale {scale})"
    );
}

#[test]
fn pixel_values_match_the_pil_processor() {
    let (refs, _) = reference();
    let model = model();
    for (file, key) in [
        ("img_down.png", "pixel_values_down"),
        ("img_up.png", "pixel_values_up"),
    ] {
        let ours = model.pixel_values(&image(file)).unwrap();
        let (diff, _) = max_abs_diff(&ours, &refs[key]);
        eprintln!("{file}: pixel_values max abs diff {diff:e}");
        assert!(diff <= PIXEL_TOL, "{file}: pixel_values differ by {diff}");
    }
}

#[test]
fn vision_output_matches() {
    let (refs, _) = reference();
    let out = model().encode_image(&refs["pixel_values_down"]).unwrap();
    assert_close(
        "vision last_hidden_state",
        &out,
        &refs["vision_last_hidden_state"],
    );
}

#[test]
fn decoder_logits_match() {
    let (refs, json) = reference();
    let model = model();
    let embeds = model.encode_image(&refs["pixel_values_down"]).unwrap();
    for (key, input) in [
        ("logits_uncond", "logits_uncond_input_ids"),
        ("logits_prefix", "logits_prefix_input_ids"),
    ] {
        let logits = model.decoder_logits(&embeds, &ids(&json[input])).unwrap();
        assert_close(key, &logits, &refs[key]);
    }
}

#[test]
fn prompt_is_dec_then_the_prefix_tokens() {
    let (_, json) = reference();
    let model = model();
    let processor = ids(&json["prefix"]["processor_input_ids"]);
    let mut expected = vec![json["bos_token_id"].as_u64().unwrap() as u32];
    expected.extend_from_slice(&processor[1..processor.len() - 1]);
    let text = json["prefix"]["text"].as_str().unwrap();
    assert_eq!(model.prompt_ids(Some(text)).unwrap(), expected);
    assert_eq!(model.prompt_ids(None).unwrap(), expected[..1]);
    assert_eq!(model.prompt_ids(Some("  ")).unwrap(), expected[..1]);
}

#[test]
fn greedy_captions_match_transformers() {
    let (_, json) = reference();
    let model = model();
    let max = json["max_new_tokens"].as_u64().unwrap() as u32;
    let img = image("img_down.png");
    for case in ["uncond", "prefix"] {
        let prefix =
            (case == "prefix").then(|| json["prefix"]["text"].as_str().unwrap().to_string());
        let opts = CaptionOptions {
            max_tokens: max,
            prefix,
        };
        let out = model
            .caption_with_ids(&img, &opts, &NullSink, &CancelToken::new())
            .unwrap();
        assert_eq!(out.ids, ids(&json[case]["ids"]), "{case}: token ids");
        assert_eq!(
            out.text,
            json[case]["caption"].as_str().unwrap(),
            "{case}: caption"
        );
        let plain = model
            .caption(&img, &opts, &NullSink, &CancelToken::new())
            .unwrap();
        assert_eq!(plain, out.text);
    }
}

#[test]
fn the_token_cap_truncates_the_greedy_sequence() {
    let (_, json) = reference();
    let model = model();
    let full = ids(&json["uncond"]["ids"]);
    let opts = CaptionOptions {
        max_tokens: 2,
        prefix: None,
    };
    let out = model
        .caption_with_ids(
            &image("img_down.png"),
            &opts,
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(out.ids, full[..3]);
}

#[test]
fn events_stream_the_caption_token_by_token() {
    let (_, json) = reference();
    let model = model();
    let events = Mutex::new(Vec::new());
    let sink = |e: EngineEvent| events.lock().unwrap().push(e);
    let opts = CaptionOptions {
        max_tokens: json["max_new_tokens"].as_u64().unwrap() as u32,
        prefix: Some(json["prefix"]["text"].as_str().unwrap().to_string()),
    };
    let caption = model
        .caption(&image("img_down.png"), &opts, &sink, &CancelToken::new())
        .unwrap();
    let events = events.into_inner().unwrap();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Text { delta } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, caption);
    let progress: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Progress { step, steps, .. } => Some((*step, *steps)),
            _ => None,
        })
        .collect();
    let generated =
        ids(&json["prefix"]["ids"]).len() - model.prompt_ids(opts.prefix.as_deref()).unwrap().len();
    assert_eq!(progress.len(), generated);
    assert!(
        progress
            .iter()
            .enumerate()
            .all(|(i, (s, n))| *s == i as u32 + 1 && *n == opts.max_tokens)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EngineEvent::Loading { stage } if stage == "text_decoder"))
    );
}

#[test]
fn cancel_stops_the_caption() {
    let model = model();
    let cancel = CancelToken::new();
    let sink = {
        let cancel = cancel.clone();
        move |e: EngineEvent| {
            if matches!(e, EngineEvent::Progress { step: 2, .. }) {
                cancel.cancel();
            }
        }
    };
    let opts = CaptionOptions {
        max_tokens: 12,
        prefix: Some("a picture of".into()),
    };
    let err = model
        .caption(&image("img_down.png"), &opts, &sink, &cancel)
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
}

#[test]
fn empty_images_and_zero_tokens_are_bad_input() {
    let model = model();
    let opts = CaptionOptions {
        max_tokens: 5,
        prefix: None,
    };
    let err = model
        .caption(
            &image::DynamicImage::new_rgb8(0, 0),
            &opts,
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    let opts = CaptionOptions {
        max_tokens: 0,
        prefix: None,
    };
    let err = model
        .caption(
            &image("img_down.png"),
            &opts,
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
}

fn copy_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

fn load_err(dir: &Path) -> String {
    match BlipCaptioner::load(dir, &Device::Cpu, DType::F32) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(Error::BadInput { message }) => message,
        Err(other) => panic!("expected BadInput, got {other}"),
    }
}

#[test]
fn bad_weights_are_bad_input_naming_the_file() {
    // Missing weights.
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("model.safetensors"), "{msg}");

    // Truncated weights.
    let tmp = copy_fixture();
    let file = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("model.safetensors"), "{msg}");

    // A tensor missing: weights of another shape (the config asks for a wider vision model).
    let tmp = copy_fixture();
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["vision_config"]["hidden_size"] = Value::from(64);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("model.safetensors"), "{msg}");

    // A tensor missing from an otherwise valid file.
    let tmp = copy_fixture();
    let file = tmp.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    assert!(
        tensors
            .remove("text_decoder.cls.predictions.bias")
            .is_some()
    );
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("model.safetensors") && msg.contains("cls.predictions.bias"),
        "{msg}"
    );

    // Missing tokenizer and a broken config.
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    assert!(load_err(tmp.path()).contains("tokenizer.json"));
    let tmp = copy_fixture();
    std::fs::write(tmp.path().join("config.json"), "{not json").unwrap();
    assert!(load_err(tmp.path()).contains("config.json"));
}

#[test]
fn f16_runs_and_stays_close() {
    // (candle's CPU matmul has no bf16, so bf16 is left to CUDA/Metal.)
    let (refs, json) = reference();
    let model = BlipCaptioner::load(&fixture(), &Device::Cpu, DType::F16).unwrap();
    let out = model.encode_image(&refs["pixel_values_down"]).unwrap();
    let (diff, scale) = max_abs_diff(&out, &refs["vision_last_hidden_state"]);
    eprintln!("f16: vision max abs diff {diff} (scale {scale})");
    assert!(diff <= 0.01 * scale, "f16 vision output off by {diff}");
    // The decoder runs in f32 whatever the dtype (candle's causal mask is f32).
    let opts = CaptionOptions {
        max_tokens: 4,
        prefix: None,
    };
    let caption = model
        .caption_with_ids(
            &image("img_down.png"),
            &opts,
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(
        caption.ids[0],
        json["bos_token_id"].as_u64().unwrap() as u32
    );
    assert!(caption.ids.len() > 1 && caption.ids.len() <= 5);
}
