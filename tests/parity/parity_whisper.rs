//! Parity of Whisper speech to text with transformers (WhisperFeatureExtractor,
//! WhisperForConditionalGeneration.generate) on the tiny random-weight model in
//! tests/fixtures/whisper-tiny (made by tests/fixtures/make_whisper.py), in f32 on the CPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, IndexOp, Tensor};
use pallaidium::engines::audio::decode::read_audio;
use pallaidium::engines::media::AudioClip;
use pallaidium::engines::progress::NullSink;
use pallaidium::engines::text::whisper::{TranscribeOptions, Transcription, WhisperEngine, mel};
use pallaidium::engines::{CancelToken, EngineEvent};
use pallaidium::error::Error;
use serde_json::Value;

use crate::parity;

const TOL: f32 = 1e-4;

fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/whisper-tiny");
    assert!(
        dir.join("config.json").is_file(),
        "fixture {} is missing",
        dir.display()
    );
    dir
}

fn clip() -> AudioClip {
    read_audio(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/speech.wav"))
        .unwrap()
}

fn engine() -> WhisperEngine {
    WhisperEngine::load(&fixture(), &Device::Cpu, DType::F32).unwrap()
}

fn tensors() -> HashMap<String, Tensor> {
    parity::reference_tensors(&fixture().join("reference.safetensors"))
}

fn meta() -> Value {
    parity::reference_json(&fixture().join("reference.json"))
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    parity::assert_close(what, ours, reference, TOL);
}

fn features_tensor(mel: &mel::LogMel) -> Tensor {
    Tensor::from_slice(&mel.data, (mel.n_mels, mel.frames), &Device::Cpu).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// Our segments (tokens exactly, times to the float) and text against one transformers run.
fn assert_same_run(name: &str, ours: &Transcription, engine: &WhisperEngine) {
    let meta = meta();
    let run = &meta["runs"][name];
    let segments = run["segments"].as_array().unwrap();
    let got: Vec<Vec<u32>> = ours.segments.iter().map(|s| s.tokens.clone()).collect();
    let want: Vec<Vec<u32>> = segments.iter().map(|s| ids(&s["tokens"])).collect();
    assert_eq!(
        got, want,
        "{name}: tokens differ from transformers' generate"
    );
    for (i, (o, r)) in ours.segments.iter().zip(segments).enumerate() {
        let (start, end) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
        assert!(
            (o.start_s - start).abs() < 1e-9,
            "{name} segment {i}: start {} vs {start}",
            o.start_s
        );
        assert!(
            (o.end_s - end).abs() < 1e-9,
            "{name} segment {i}: end {} vs {end}",
            o.end_s
        );
        let text = engine.decode_text(&o.tokens).unwrap();
        assert_eq!(text, r["text"].as_str().unwrap(), "{name} segment {i} text");
    }
    let text: String = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .filter(|t| !t.trim().is_empty())
        .collect();
    let ours_text: String = ours
        .transcript
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(ours_text, text, "{name}: transcript text");
}

#[test]
fn features_match_the_feature_extractor() {
    let refs = tensors();
    let mel = mel::log_mel(&clip().samples, 80);
    assert_eq!((mel.n_mels, mel.frames), (80, 3000));
    let f = features_tensor(&mel);
    let head = meta()["features_head_frames"].as_u64().unwrap() as usize;
    assert_close(
        "features (speech)",
        &f.i((.., ..head)).unwrap(),
        &refs["features_head"],
    );
    assert_close(
        "features (padding)",
        &f.i((.., 2990..)).unwrap(),
        &refs["features_tail"],
    );
    // The engine's own path (reading, no resampling at 16 kHz) gives the same.
    assert_eq!(engine().features(&clip()), mel);
}

#[test]
fn encoder_output_matches() {
    let refs = tensors();
    let engine = engine();
    let mel = engine.features(&clip());
    let enc = engine.encode(&mel.window(0, 3000, 3000)).unwrap();
    assert_eq!(enc.dims(), &[1500, 32]);
    assert_close(
        "encoder (first 160)",
        &enc.i(..160).unwrap(),
        &refs["encoder_head"],
    );
    assert_close(
        "encoder (last 5)",
        &enc.i(1495..).unwrap(),
        &refs["encoder_tail"],
    );
}

#[test]
fn decoder_logits_match_for_the_first_steps() {
    let refs = tensors();
    let engine = engine();
    let mel = engine.features(&clip());
    let enc = engine.encode(&mel.window(0, 3000, 3000)).unwrap();
    let tokens = ids(&meta()["logits_input_ids"]);
    let logits = engine.decoder_logits(&enc, &tokens).unwrap();
    assert_close("decoder logits", &logits, &refs["logits"]);
}

#[test]
fn greedy_with_timestamps_equals_generate() {
    let engine = engine();
    let ours = engine
        .transcribe_detailed(
            &clip(),
            &TranscribeOptions::default(),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    let meta = meta();
    assert_eq!(
        ours.init_tokens,
        ids(&meta["init_tokens_detected"]),
        "detected language + task"
    );
    assert_eq!(
        ours.language_id,
        meta["detected_language_id"].as_u64().map(|v| v as u32)
    );
    assert_same_run("timestamps", &ours, &engine);
    assert_eq!(ours.transcript.language.as_deref(), Some("en"));
}

#[test]
fn greedy_without_timestamps_equals_generate() {
    let engine = engine();
    let ours = engine
        .transcribe_without_timestamps(
            &clip(),
            &TranscribeOptions::default(),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_same_run("no_timestamps", &ours, &engine);
}

#[test]
fn translation_from_a_given_language_equals_generate() {
    let engine = engine();
    let opts = TranscribeOptions {
        language: Some("de".into()),
        translate: true,
        max_tokens: None,
    };
    let ours = engine
        .transcribe_detailed(&clip(), &opts, &NullSink, &CancelToken::new())
        .unwrap();
    let meta = meta();
    let de = 324; // <|de|> in the fixture's vocabulary
    assert_eq!(
        ours.init_tokens,
        vec![meta["sot"].as_u64().unwrap() as u32, de, 330]
    );
    assert_same_run("translate_de", &ours, &engine);
    assert_eq!(ours.transcript.language.as_deref(), Some("de"));
}

#[test]
fn max_tokens_caps_every_window_like_max_new_tokens() {
    let engine = engine();
    let opts = TranscribeOptions {
        language: Some("French".into()),
        translate: false,
        max_tokens: Some(5),
    };
    let ours = engine
        .transcribe_without_timestamps(&clip(), &opts, &NullSink, &CancelToken::new())
        .unwrap();
    assert_same_run("french_no_timestamps_max5", &ours, &engine);
}

#[test]
fn long_audio_is_decoded_window_after_window() {
    let meta = meta();
    let refs = tensors();
    let engine = engine();
    let short = clip();
    let seconds = meta["long_seconds"].as_f64().unwrap();
    let n = (seconds * 16_000.0) as usize;
    let samples: Vec<f32> = short.samples.iter().copied().cycle().take(n).collect();
    let long = AudioClip {
        samples,
        sample_rate: 16_000,
    };
    let mel = engine.features(&long);
    assert_eq!(
        mel.frames as u64,
        meta["runs"]["long_form"]["frames"].as_u64().unwrap()
    );
    let f = features_tensor(&mel);
    assert_close(
        "long-form features",
        &f.i((.., 3000..3100)).unwrap(),
        &refs["long_features_window2_head"],
    );
    let ours = engine
        .transcribe_detailed(
            &long,
            &TranscribeOptions::default(),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_same_run("long_form", &ours, &engine);
    assert!(
        ours.segments.last().unwrap().end_s > 30.0,
        "the second window was decoded"
    );
}

#[test]
fn events_follow_the_tokens_and_cancel_stops() {
    let engine = engine();
    let events = Mutex::new(Vec::new());
    let sink = |e: EngineEvent| events.lock().unwrap().push(e);
    let t = engine
        .transcribe(
            &clip(),
            &TranscribeOptions::default(),
            &sink,
            &CancelToken::new(),
        )
        .unwrap();
    let events = events.into_inner().unwrap();
    let steps: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Progress { step, steps, .. } => Some((*step, *steps)),
            _ => None,
        })
        .collect();
    let tokens = meta()["runs"]["timestamps"]["sequences"]
        .as_array()
        .unwrap()
        .len() as u32;
    // One progress event per generated token (plus the end-of-text of each window).
    assert!(
        steps.len() as u32 >= tokens,
        "{} progress events for {tokens} tokens",
        steps.len()
    );
    assert!(
        steps
            .windows(2)
            .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 >= w[0].1)
    );
    assert!(steps.iter().all(|(s, n)| s <= n));
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Text { delta } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    let joined: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, joined, "one Text event per segment");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EngineEvent::Loading { stage } if stage == "decoder"))
    );

    let cancel = CancelToken::new();
    cancel.cancel();
    let err = engine
        .transcribe(&clip(), &TranscribeOptions::default(), &NullSink, &cancel)
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
}

#[test]
fn unknown_languages_are_bad_input_listing_valid_ones() {
    let engine = engine();
    let opts = TranscribeOptions {
        language: Some("klingon".into()),
        ..Default::default()
    };
    let err = engine
        .transcribe(&clip(), &opts, &NullSink, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("klingon") && msg.contains("en") && msg.contains("de"),
        "{msg}"
    );
    // Names and tokens work as well as codes.
    for name in ["german", "<|de|>", "DE"] {
        let opts = TranscribeOptions {
            language: Some(name.into()),
            max_tokens: Some(2),
            ..Default::default()
        };
        let t = engine
            .transcribe_detailed(&clip(), &opts, &NullSink, &CancelToken::new())
            .unwrap();
        assert_eq!(t.language_id, Some(324), "{name}");
    }
}

fn copy_fixture(to: &Path) {
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn load_error(dir: &Path) -> String {
    match WhisperEngine::load(dir, &Device::Cpu, DType::F32) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => {
            assert!(matches!(e, Error::BadInput { .. }), "not bad input: {e}");
            e.to_string()
        }
    }
}

#[test]
fn bad_weights_and_files_are_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_error(dir.path());
    assert!(msg.contains("model.safetensors"), "{msg}");

    std::fs::remove_file(&weights).unwrap();
    let msg = load_error(dir.path());
    assert!(msg.contains("no weights"), "{msg}");

    std::fs::copy(fixture().join("model.safetensors"), &weights).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    let msg = load_error(dir.path());
    assert!(msg.contains("tokenizer.json"), "{msg}");

    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let msg = load_error(dir.path());
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn weights_of_another_shape_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let cfg_path = dir.path().join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["encoder_ffn_dim"] = Value::from(64);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let msg = load_error(dir.path());
    assert!(
        msg.contains("model.safetensors") && msg.contains("fc1"),
        "{msg}"
    );
}

#[test]
fn empty_audio_is_bad_input() {
    let engine = engine();
    let empty = AudioClip {
        samples: vec![],
        sample_rate: 16_000,
    };
    let err = engine
        .transcribe(
            &empty,
            &TranscribeOptions::default(),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
}

#[test]
fn english_only_models_start_with_sot_alone_and_refuse_other_languages() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let config = meta()["english_only_generation_config"].clone();
    std::fs::write(
        dir.path().join("generation_config.json"),
        config.to_string(),
    )
    .unwrap();
    let engine = WhisperEngine::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    assert!(!engine.is_multilingual());
    let ours = engine
        .transcribe_detailed(
            &clip(),
            &TranscribeOptions::default(),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(
        ours.init_tokens,
        vec![meta()["sot"].as_u64().unwrap() as u32]
    );
    assert_eq!(ours.language_id, None);
    assert_eq!(ours.transcript.language.as_deref(), Some("en"));
    assert_same_run("english_only", &ours, &engine);
    for opts in [
        TranscribeOptions {
            translate: true,
            ..Default::default()
        },
        TranscribeOptions {
            language: Some("de".into()),
            ..Default::default()
        },
    ] {
        let err = engine
            .transcribe(&clip(), &opts, &NullSink, &CancelToken::new())
            .unwrap_err();
        assert!(
            matches!(err, Error::BadInput { .. }) && err.to_string().contains("English-only"),
            "{err}"
        );
    }
    let none = TranscribeOptions {
        max_tokens: Some(0),
        ..Default::default()
    };
    let err = engine
        .transcribe(&clip(), &none, &NullSink, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    let english = TranscribeOptions {
        language: Some("en".into()),
        max_tokens: Some(3),
        ..Default::default()
    };
    assert!(
        engine
            .transcribe(&clip(), &english, &NullSink, &CancelToken::new())
            .is_ok()
    );
}

#[test]
fn other_sample_rates_are_resampled_to_nearly_the_same_features() {
    let engine = engine();
    let clip = clip();
    let reference = engine.features(&clip);
    let up = pallaidium::engines::audio::decode::resample(&clip, 44_100);
    let ours = engine.features(&up);
    assert_eq!(ours.frames, reference.frames);
    // The top mel bands (above ~7.1 kHz) lose what the anti-aliasing filter's transition band
    // removes (it starts at 0.94 x 8 kHz): compare the 77 bands below.
    let rows = 77 * reference.frames;
    let diffs: Vec<f32> = ours.data[..rows]
        .iter()
        .zip(&reference.data[..rows])
        .map(|(a, b)| (a - b).abs())
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let (max, _) = pallaidium::engines::nn::compare::max_abs_diff_slices(
        &ours.data[..rows],
        &reference.data[..rows],
    );
    eprintln!("16k -> 44.1k -> 16k features: mean |diff| {mean:e}, max {max:e}");
    assert!(mean < 1e-4 && max < 0.03, "mean {mean}, max {max}");
    // And the whole engine takes the 44.1 kHz clip.
    let t = engine
        .transcribe(
            &up,
            &TranscribeOptions {
                max_tokens: Some(4),
                ..Default::default()
            },
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(t.language.as_deref(), Some("en"));
}

#[test]
fn half_precision_runs_close_to_f32() {
    let refs = tensors();
    // Measured: f16 2.5e-3, bf16 2e-2 (bf16 keeps 8 bits of mantissa).
    for (dtype, tol) in [(DType::F16, 0.01), (DType::BF16, 0.05)] {
        let engine = WhisperEngine::load(&fixture(), &Device::Cpu, dtype).unwrap();
        let mel = engine.features(&clip());
        let enc = engine.encode(&mel.window(0, 3000, 3000)).unwrap();
        let enc = enc.to_dtype(DType::F32).unwrap();
        let d = parity::rel_diff(&enc.i(..160).unwrap(), &refs["encoder_head"]);
        eprintln!("{dtype:?} encoder: relative difference {d:e}");
        assert!(d < tol, "{dtype:?}: {d}");
        let opts = TranscribeOptions {
            max_tokens: Some(4),
            ..Default::default()
        };
        engine
            .transcribe(&clip(), &opts, &NullSink, &CancelToken::new())
            .unwrap();
    }
}

#[test]
fn a_language_pinned_by_forced_decoder_ids_is_used_without_detection() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let config = meta()["forced_french_generation_config"].clone();
    std::fs::write(
        dir.path().join("generation_config.json"),
        config.to_string(),
    )
    .unwrap();
    let engine = WhisperEngine::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let opts = TranscribeOptions {
        max_tokens: Some(8),
        ..Default::default()
    };
    let ours = engine
        .transcribe_detailed(&clip(), &opts, &NullSink, &CancelToken::new())
        .unwrap();
    let sot = meta()["sot"].as_u64().unwrap() as u32;
    assert_eq!(
        ours.init_tokens,
        vec![sot, 328, 331],
        "<|fr|> <|transcribe|>"
    );
    assert_eq!(ours.transcript.language.as_deref(), Some("fr"));
    assert_same_run("forced_french", &ours, &engine);
}

#[test]
fn without_generation_config_the_tokenizer_tells_the_languages() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    std::fs::remove_file(dir.path().join("generation_config.json")).unwrap();
    let engine = WhisperEngine::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    assert!(engine.is_multilingual());
    let opts = TranscribeOptions {
        language: Some("ja".into()),
        max_tokens: Some(3),
        ..Default::default()
    };
    let t = engine
        .transcribe_detailed(&clip(), &opts, &NullSink, &CancelToken::new())
        .unwrap();
    assert_eq!(t.language_id, Some(329));
    assert_eq!(t.init_tokens, vec![321, 329, 331]);
}
