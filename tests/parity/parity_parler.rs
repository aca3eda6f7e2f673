//! Parity of the Parler-TTS engine with the parler_tts package (0.2.3, transformers 4.46.1) on the
//! tiny random-weight model in tests/fixtures/parler-tiny (made by make_parler.py), f32 on the CPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::audio::parler::{ParlerTts, SpeechOptions};
use pallaidium::engines::progress::NullSink;
use pallaidium::engines::{CancelToken, EngineEvent};
use pallaidium::error::Error;

const TOL: f32 = 1e-4;
/// Waveforms pass through a stack of convolutions, snakes and tanh whose f32 summation order
/// differs from torch's: measured up to 5.2e-5 of the peak, allowed 2e-4.
const AUDIO_TOL: f32 = 2e-4;

use crate::parity;

fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parler-tiny");
    assert!(
        dir.join("config.json").is_file(),
        "fixture {} is missing",
        dir.display()
    );
    dir
}

fn load() -> ParlerTts {
    ParlerTts::load(&fixture(), &Device::Cpu, DType::F32).unwrap()
}

fn reference() -> HashMap<String, Tensor> {
    parity::reference_tensors(&fixture().join("reference.safetensors"))
}

fn cases() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn get<'a>(r: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    parity::get(r, key)
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f32) {
    parity::assert_close(what, ours, reference, tol);
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    parity::ids(v)
}

fn grid(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as u32).collect())
        .collect()
}

fn greedy_opts(max_length: usize) -> SpeechOptions {
    // max_length columns = frames + codebooks (4); the fixture's codec runs at 200 frames/s.
    SpeechOptions {
        seed: 0,
        temperature: 0.0,
        max_seconds: (max_length - 4) as f64 / 200.0,
    }
}

#[test]
fn token_ids_match_the_t5_tokenizer() {
    let tts = load();
    for case in cases()["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let description = case["description"].as_str().unwrap();
        assert_eq!(
            tts.tokenize(text).unwrap(),
            ids(&case["text_ids"]),
            "{text}"
        );
        assert_eq!(
            tts.tokenize(description).unwrap(),
            ids(&case["description_ids"])
        );
    }
}

#[test]
fn encoder_output_matches() {
    let tts = load();
    let r = reference();
    for (i, case) in cases()["cases"].as_array().unwrap().iter().enumerate() {
        let enc = tts
            .encode_description(case["description"].as_str().unwrap())
            .unwrap();
        assert_close(
            "T5 encoder",
            &enc.squeeze(0).unwrap(),
            get(&r, &format!("case{i}.encoder")),
            TOL,
        );
    }
}

#[test]
fn decoder_logits_of_the_first_steps_match() {
    let tts = load();
    let r = reference();
    for (i, case) in cases()["cases"].as_array().unwrap().iter().enumerate() {
        let inputs = grid(get(&r, &format!("case{i}.logits_inputs")));
        let logits = tts
            .teacher_forced_logits(
                case["text"].as_str().unwrap(),
                case["description"].as_str().unwrap(),
                &inputs,
            )
            .unwrap();
        assert_close(
            "decoder logits",
            &logits,
            get(&r, &format!("case{i}.logits")),
            TOL,
        );
    }
}

#[test]
fn greedy_codes_and_audio_match_generate() {
    let tts = load();
    let r = reference();
    let meta = cases();
    let max_length = meta["max_length"].as_u64().unwrap() as usize;
    let mut stopped_early = 0;
    for (i, case) in meta["cases"].as_array().unwrap().iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let description = case["description"].as_str().unwrap();
        let opts = greedy_opts(max_length);
        let codes = tts
            .generate_codes(text, description, &opts, &NullSink, &CancelToken::new())
            .unwrap();
        assert_eq!(
            codes.raw,
            grid(get(&r, &format!("case{i}.raw"))),
            "case {i}: raw grid"
        );
        assert_eq!(
            codes.frames,
            grid(get(&r, &format!("case{i}.codes"))),
            "case {i}: frames"
        );
        if codes.raw[0].len() < max_length {
            stopped_early += 1;
        }
        let clip = tts
            .speak(text, description, &opts, &NullSink, &CancelToken::new())
            .unwrap();
        assert_eq!(clip.sample_rate, 800);
        let ours = Tensor::new(clip.samples.as_slice(), &Device::Cpu).unwrap();
        assert_close(
            "audio",
            &ours,
            get(&r, &format!("case{i}.audio")),
            AUDIO_TOL,
        );
    }
    assert!(stopped_early > 0, "no reference exercised end-of-speech");
}

#[test]
fn codec_alone_matches() {
    let tts = load();
    let r = reference();
    let samples = tts.decode_frames(&grid(get(&r, "codec.codes"))).unwrap();
    let ours = Tensor::new(samples.as_slice(), &Device::Cpu).unwrap();
    assert_close("DAC decode", &ours, get(&r, "codec.audio"), AUDIO_TOL);
}

#[test]
fn sampling_is_seeded_and_reports_progress() {
    let tts = load();
    let opts = |seed| SpeechOptions {
        seed,
        temperature: 1.0,
        max_seconds: 0.1,
    };
    let run = |seed| {
        tts.speak(
            "Hey, how are you?",
            "",
            &opts(seed),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap()
    };
    let a = run(11);
    assert_eq!(a, run(11), "same seed, same audio");
    let b = run(12);
    assert_ne!(a.samples, b.samples, "another seed, other audio");

    let events = std::sync::Mutex::new(Vec::new());
    let sink = |e: EngineEvent| events.lock().unwrap().push(e);
    tts.speak(
        "Hey!",
        "A calm voice.",
        &opts(3),
        &sink,
        &CancelToken::new(),
    )
    .unwrap();
    let events = events.into_inner().unwrap();
    let steps: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Progress { step, steps, .. } => {
                assert_eq!(*steps, 23, "planned steps: 20 frames + 4 - 1");
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert!(
        steps.len() >= 3 && steps.windows(2).all(|w| w[0] < w[1]),
        "{steps:?}"
    );
    assert!(events.contains(&EngineEvent::Loading {
        stage: "codec".into()
    }));
}

#[test]
fn empty_text_is_bad_input_and_cancel_stops() {
    let tts = load();
    let opts = greedy_opts(20);
    let err = tts
        .speak("  ", "voice", &opts, &NullSink, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = tts
        .speak("Hello", "", &opts, &NullSink, &cancel)
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
}

fn copy_fixture(to: &Path) {
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn bad_weights_are_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = ParlerTts::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .expect("truncated loads");
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::remove_file(&weights).unwrap();
    let err = ParlerTts::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .expect("missing loads");
    assert!(matches!(err, Error::BadInput { .. }), "{err}");

    copy_fixture(dir.path());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = ParlerTts::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .expect("no tokenizer");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    copy_fixture(dir.path());
    std::fs::write(dir.path().join("config.json"), "{\"decoder\": {}}").unwrap();
    let err = ParlerTts::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .expect("bad config");
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

/// A checkpoint whose DAC convolutions are stored fused (plain `weight`, as Parler mini v1.1)
/// decodes the same audio.
#[test]
fn fused_codec_weights_load_too() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let path = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let mut fused: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &tensors {
        if let Some(base) = name.strip_suffix(".weight_v") {
            let g = &tensors[&format!("{base}.weight_g")];
            let norm = t
                .sqr()
                .unwrap()
                .sum_keepdim((1, 2))
                .unwrap()
                .sqrt()
                .unwrap();
            let w = t.broadcast_mul(g).unwrap().broadcast_div(&norm).unwrap();
            fused.insert(format!("{base}.weight"), w);
        } else if !name.ends_with(".weight_g") {
            fused.insert(name.clone(), t.clone());
        }
    }
    candle_core::safetensors::save(&fused, &path).unwrap();
    let tts = ParlerTts::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let r = reference();
    let samples = tts.decode_frames(&grid(get(&r, "codec.codes"))).unwrap();
    let ours = Tensor::new(samples.as_slice(), &Device::Cpu).unwrap();
    assert_close("fused DAC decode", &ours, get(&r, "codec.audio"), AUDIO_TOL);
}

/// The job runner shares engines behind `Arc` across threads.
#[test]
fn engine_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ParlerTts>();
}

/// Half precision runs end to end (masks, caches and the f32 T5 in f16 all fit together).
#[test]
fn half_precision_runs() {
    for dtype in [DType::F16, DType::BF16] {
        let tts = ParlerTts::load(&fixture(), &Device::Cpu, dtype).unwrap();
        let clip = tts
            .speak(
                "Hey, how are you doing today?",
                "",
                &greedy_opts(28),
                &NullSink,
                &CancelToken::new(),
            )
            .unwrap();
        assert!(!clip.samples.is_empty(), "{dtype:?}");
        assert!(
            clip.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
            "{dtype:?}"
        );
    }
}
