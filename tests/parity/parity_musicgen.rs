//! MusicGen parity with transformers' MusicgenForConditionalGeneration on the tiny random model
//! in tests/fixtures/musicgen-tiny (made by tests/fixtures/make_musicgen.py), f32 on the CPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::audio::musicgen::{MusicGen, MusicOptions};
use pallaidium::engines::progress::NullSink;
use pallaidium::engines::{CancelToken, EngineEvent};
use pallaidium::error::Error;

/// Relative tolerance (max |ours - ref| / max |ref|) for encoder states, logits and audio.
use crate::parity;

const TOL: f32 = 1e-4;

/// The committed fixture, or another folder made by make_musicgen.py (`--codec-32khz --out DIR`
/// checks the codec at musicgen-small's full 32 kHz size): `MUSICGEN_FIXTURE=DIR`.
fn fixture() -> PathBuf {
    let dir = match std::env::var_os("MUSICGEN_FIXTURE") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/musicgen-tiny"),
    };
    assert!(
        dir.join("config.json").is_file(),
        "fixture {} is missing",
        dir.display()
    );
    dir
}

fn load() -> MusicGen {
    MusicGen::load(&fixture(), &Device::Cpu, DType::F32).unwrap()
}

fn reference_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn reference_tensors() -> HashMap<String, Tensor> {
    parity::reference_tensors(&fixture().join("reference.safetensors"))
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    parity::assert_close(what, ours, reference, TOL);
}

fn greedy(guidance: f64) -> MusicOptions {
    MusicOptions {
        duration_s: 1.0,
        guidance,
        seed: 0,
        top_k: 250,
        temperature: 0.0,
    }
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    parity::ids(v)
}

#[test]
fn token_ids_equal_transformers() {
    let model = load();
    let r = reference_json();
    let prompt = r["prompt"].as_str().unwrap();
    assert_eq!(model.tokenize(prompt).unwrap(), ids_of(&r["input_ids"]));
    let prompts = r["extra_prompts"].as_array().unwrap();
    for (p, ids) in prompts.iter().zip(r["extra_ids"].as_array().unwrap()) {
        assert_eq!(
            model.tokenize(p.as_str().unwrap()).unwrap(),
            ids_of(ids),
            "{p}"
        );
    }
}

#[test]
fn encoder_states_match_transformers() {
    let model = load();
    let r = reference_json();
    let ids = model.tokenize(r["prompt"].as_str().unwrap()).unwrap();
    let ours = model.encode_text(&ids).unwrap().squeeze(0).unwrap();
    assert_close(
        "T5 encoder",
        &ours,
        &reference_tensors()["encoder_hidden_states"],
    );
}

#[test]
fn guided_greedy_generation_matches_transformers() {
    let model = load();
    let r = reference_json();
    let refs = reference_tensors();
    let steps = r["max_new_tokens"].as_u64().unwrap() as usize;
    let out = model
        .generate_codes(
            r["prompt"].as_str().unwrap(),
            steps,
            &greedy(r["guidance_scale"].as_f64().unwrap()),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    let raw = Tensor::stack(&out.raw_logits, 0).unwrap();
    assert_close(
        "raw decoder logits (cond + uncond)",
        &raw,
        &refs["raw_logits"],
    );
    let guided: Vec<Vec<Vec<f32>>> = out.guided_logits.clone();
    let (s, k, v) = (guided.len(), guided[0].len(), guided[0][0].len());
    let flat: Vec<f32> = guided.into_iter().flatten().flatten().collect();
    let guided = Tensor::from_vec(flat, (s, k, v), &Device::Cpu).unwrap();
    assert_close("logits after guidance", &guided, &refs["cfg_scores"]);
    let expected: Vec<Vec<u32>> = r["codes"].as_array().unwrap().iter().map(ids_of).collect();
    assert_eq!(
        out.codes, expected,
        "greedy codes differ from transformers'"
    );
}

#[test]
fn unguided_greedy_codes_match_transformers() {
    let model = load();
    let r = reference_json();
    let steps = r["unguided_max_new_tokens"].as_u64().unwrap() as usize;
    let out = model
        .generate_codes(
            r["prompt"].as_str().unwrap(),
            steps,
            &greedy(1.0),
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    // One batch row a codebook: no unconditional half.
    assert_eq!(out.raw_logits[0].dims()[0], model.num_codebooks());
    let expected: Vec<Vec<u32>> = r["unguided_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids_of)
        .collect();
    assert_eq!(out.codes, expected, "greedy codes without guidance differ");
}

/// Half precision runs the decoder in f16 (T5 and the codec stay f32): it must run end to end
/// and stay close to f32 (same first frames on this tiny model is too strict to ask).
#[test]
fn half_precision_runs_end_to_end() {
    let model = MusicGen::load(&fixture(), &Device::Cpu, DType::F16).unwrap();
    let clip = model
        .generate("drums", &greedy(3.0), &NullSink, &CancelToken::new())
        .unwrap();
    assert_eq!(clip.samples.len(), model.sample_rate() as usize);
    assert!(clip.samples.iter().all(|v| v.is_finite()));
}

#[test]
fn codec_waveform_matches_transformers() {
    let model = load();
    let r = reference_json();
    let codes: Vec<Vec<u32>> = r["codes"].as_array().unwrap().iter().map(ids_of).collect();
    let samples = model.decode_codes(&codes).unwrap();
    let n = samples.len();
    let ours = Tensor::from_vec(samples, n, &Device::Cpu).unwrap();
    assert_close("EnCodec waveform", &ours, &reference_tensors()["audio"]);
}

#[test]
fn generate_end_to_end_gives_the_reference_audio_trimmed_to_the_duration() {
    let model = load();
    let r = reference_json();
    let frames = r["codes"][0].as_array().unwrap().len();
    let opts = MusicOptions {
        duration_s: frames as f64 / model.frame_rate() as f64,
        ..greedy(3.0)
    };
    let events = Mutex::new(Vec::new());
    let sink = |e: EngineEvent| events.lock().unwrap().push(e);
    let clip = model
        .generate(
            r["prompt"].as_str().unwrap(),
            &opts,
            &sink,
            &CancelToken::new(),
        )
        .unwrap();
    let rate = r["sampling_rate"].as_u64().unwrap() as u32;
    assert_eq!(clip.sample_rate, rate);
    let n = clip.samples.len();
    assert_eq!(n, (opts.duration_s * f64::from(rate)).round() as usize);
    let ours = Tensor::from_vec(clip.samples, n, &Device::Cpu).unwrap();
    assert_close("generated audio", &ours, &reference_tensors()["audio"]);
    let progress: Vec<(u32, u32)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Progress { step, steps, .. } => Some((*step, *steps)),
            _ => None,
        })
        .collect();
    let steps = r["max_new_tokens"].as_u64().unwrap() as u32;
    assert_eq!(
        progress,
        (1..=steps).map(|s| (s, steps)).collect::<Vec<_>>()
    );

    // A shorter clip is trimmed to its duration, not rounded up to whole frames.
    let short = MusicOptions {
        duration_s: 0.05,
        ..greedy(3.0)
    };
    let clip = model
        .generate(
            "a calm piano melody",
            &short,
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(clip.samples.len(), rate as usize / 20);
}

#[test]
fn same_seed_same_audio_other_seed_other_audio() {
    let model = load();
    let opts = |seed| MusicOptions {
        duration_s: 0.3,
        guidance: 3.0,
        seed,
        top_k: 250,
        temperature: 1.0,
    };
    let run = |seed| {
        model
            .generate(
                "lofi hip hop beat",
                &opts(seed),
                &NullSink,
                &CancelToken::new(),
            )
            .unwrap()
            .samples
    };
    let a = run(1);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

#[test]
fn defaults_come_from_generation_config() {
    let d = load().generation_defaults();
    assert_eq!(d.guidance, 3.0);
    assert_eq!(d.top_k, 250);
    assert_eq!(d.temperature, 1.0);
    assert_eq!(d.duration_s, 8.0);
}

fn assert_bad_input<T>(r: pallaidium::error::Result<T>, needle: &str) {
    match r {
        Err(Error::BadInput { message }) => {
            assert!(
                message.contains(needle),
                "{message:?} does not name {needle:?}"
            )
        }
        Err(e) => panic!("expected BadInput naming {needle}, got {e:?}"),
        Ok(_) => panic!("expected BadInput naming {needle}, got Ok"),
    }
}

#[test]
fn absurd_requests_are_bad_input() {
    let model = load();
    for d in [0.0, -1.0, 301.0, f64::NAN, f64::INFINITY] {
        let opts = MusicOptions {
            duration_s: d,
            ..greedy(3.0)
        };
        assert_bad_input(
            model.generate("drums", &opts, &NullSink, &CancelToken::new()),
            "duration",
        );
    }
    assert_bad_input(
        model.generate("  ", &greedy(3.0), &NullSink, &CancelToken::new()),
        "empty",
    );
    let opts = MusicOptions {
        temperature: -1.0,
        ..greedy(3.0)
    };
    assert_bad_input(
        model.generate("drums", &opts, &NullSink, &CancelToken::new()),
        "temperature",
    );
}

#[test]
fn cancel_stops_generation() {
    let model = load();
    let cancel = CancelToken::new();
    cancel.cancel();
    let r = model.generate("drums", &greedy(3.0), &NullSink, &cancel);
    assert!(matches!(r, Err(Error::Cancelled)), "{:?}", r.err());

    // Cancelled while decoding: stops within a step.
    let cancel = CancelToken::new();
    let last = Mutex::new(0u32);
    let sink = |e: EngineEvent| {
        if let EngineEvent::Progress { step, .. } = e {
            *last.lock().unwrap() = step;
            if step == 2 {
                cancel.cancel();
            }
        }
    };
    let r = model.generate("drums", &greedy(3.0), &sink, &cancel);
    assert!(matches!(r, Err(Error::Cancelled)), "{:?}", r.err());
    assert_eq!(*last.lock().unwrap(), 2);
}

#[test]
fn the_engine_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MusicGen>();
}

/// transformers 5 saves weight norm as torch parametrizations (original0 = g, original1 = v)
/// where the published checkpoints have weight_g / weight_v: both must load the same.
#[test]
fn parametrized_weight_norm_names_load_the_same_codec() {
    let tmp = copy_fixture();
    let weights = tmp.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let renamed: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .replace("weight_g", "parametrizations.weight.original0")
                .replace("weight_v", "parametrizations.weight.original1");
            (k, v)
        })
        .collect();
    candle_core::safetensors::save(&renamed, &weights).unwrap();
    let model = MusicGen::load(tmp.path(), &Device::Cpu, DType::F32).unwrap();
    let r = reference_json();
    let codes: Vec<Vec<u32>> = r["codes"].as_array().unwrap().iter().map(ids_of).collect();
    let samples = model.decode_codes(&codes).unwrap();
    assert_eq!(samples, load().decode_codes(&codes).unwrap());
}

fn copy_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

#[test]
fn bad_weights_are_bad_input_naming_the_file() {
    // Truncated weights.
    let tmp = copy_fixture();
    let weights = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    assert_bad_input(
        MusicGen::load(tmp.path(), &Device::Cpu, DType::F32),
        "model.safetensors",
    );

    // Missing weights.
    std::fs::remove_file(&weights).unwrap();
    assert_bad_input(
        MusicGen::load(tmp.path(), &Device::Cpu, DType::F32),
        "model.safetensors",
    );

    // A config that does not match the weights (a tensor missing / of another shape).
    let tmp = copy_fixture();
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["decoder"]["num_hidden_layers"] = 3.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    assert_bad_input(
        MusicGen::load(tmp.path(), &Device::Cpu, DType::F32),
        "model.safetensors",
    );

    // No tokenizer, no config.
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    assert_bad_input(
        MusicGen::load(tmp.path(), &Device::Cpu, DType::F32),
        "tokenizer.json",
    );
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    assert_bad_input(
        MusicGen::load(tmp.path(), &Device::Cpu, DType::F32),
        "config.json",
    );
}
