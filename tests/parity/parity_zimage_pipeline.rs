//! Z-Image against diffusers' ZImagePipeline on tests/fixtures/zimage-tiny: the prompt features
//! (Qwen3 `hidden_states[-2]` at the real tokens, 16 and 512 tokens, truncation included), the
//! schedule, and every whole-image reference (non-square both ways, 4 and 8 steps, CFG with a
//! negative prompt, the static shift overridden, 16 Qwen3 tokens, Q8_0 and Q4_0 GGUF
//! transformers, Q8_0 and Q4_0 Qwen3 GGUFs) from the same noise; the fixture's power (each knob moves the image by more than
//! the tolerance); staged and resident runs alike.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler};
use pallaidium::engines::flux::transformer::GgufMatmul;
use pallaidium::engines::nn::text::qwen::QwenEncoder;
use pallaidium::engines::nn::text::qwen_config::QwenConfig;
use pallaidium::engines::progress::{CancelToken, NullSink};
use pallaidium::engines::sd::GenerateRequest;
use pallaidium::engines::zimage::tokenizer::QwenTokenizer;
use pallaidium::engines::zimage::{ZImageLoadOptions, ZImagePipeline, prompt};
use pallaidium::vocab::{Residency, Scheduler};

use crate::parity;

const MODEL: &str = "zimage-tiny";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(MODEL)
}

/// GGUF matrices dequantized with diffusers' arithmetic (the parity tolerance's mode).
fn load(model_dir: PathBuf, transformer: Option<PathBuf>, residency: Residency) -> ZImagePipeline {
    load_as(model_dir, transformer, None, residency, GgufMatmul::Dequant)
}

fn load_as(
    model_dir: PathBuf,
    transformer: Option<PathBuf>,
    text_encoder: Option<PathBuf>,
    residency: Residency,
    matmul: GgufMatmul,
) -> ZImagePipeline {
    ZImagePipeline::load(ZImageLoadOptions {
        model_dir,
        transformer,
        text_encoder,
        device: Device::Cpu,
        dtype: DType::F32,
        residency,
        switches: EngineSwitches {
            gguf_matmul: Some(matmul),
            ..Default::default()
        },
    })
    .unwrap()
}

/// The request diffusers' call describes (reference JSON), with its saved noise.
fn request(r: &serde_json::Value) -> GenerateRequest {
    let noise = parity::first_word(&r["noise"]).unwrap();
    let map = candle_core::safetensors::load(fixture().join("reference").join(noise), &Device::Cpu)
        .unwrap();
    GenerateRequest {
        prompt: r["prompt"].as_str().unwrap().to_owned(),
        negative: r["negative_prompt"].as_str().unwrap_or_default().to_owned(),
        steps: r["steps"].as_u64().unwrap() as u32,
        guidance: r["guidance_scale"].as_f64().unwrap(),
        width: r["width"].as_u64().unwrap() as u32,
        height: r["height"].as_u64().unwrap() as u32,
        max_sequence_length: r["max_sequence_length"].as_u64().map(|n| n as usize),
        init_latents: Some(map["latents"].clone()),
        scheduler: Scheduler::FlowEuler,
        ..GenerateRequest::default()
    }
}

#[test]
fn zimage_prompt_features_match_the_pipeline() {
    let dir = fixture();
    let tokenizer = QwenTokenizer::from_dir(&dir.join("tokenizer")).unwrap();
    let encoder = QwenEncoder::load(&dir.join("text_encoder"), &Device::Cpu, DType::F32).unwrap();
    let tokens = parity::reference_json(&dir.join("reference/tokens.json"));
    let prompts: Vec<String> = tokens["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let reference = parity::reference_tensors(&dir.join("reference/text.safetensors"));
    let mut checked = 0;
    for (key, want) in &reference {
        let mut parts = key.split('_').skip(1);
        let n: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        let got = prompt::encode(&tokenizer, &encoder, &prompts[i], n, DType::F32).unwrap();
        assert_eq!(got.dims(), want.dims(), "{key}");
        parity::assert_close(key, &got, want, 1e-4);
        checked += 1;
    }
    assert!(checked >= 25, "{checked} prompt references");
}

/// Qwen3 from a llama.cpp GGUF (Q8_0) gives the features transformers gives on the same file's
/// dequantized weights; they differ from the folder's f32 encoder by far more than the tolerance
/// (so the file is what is read), and the Q4_0 file's image (run_all) moves by several levels.
#[test]
fn zimage_prompt_features_from_a_qwen3_gguf_match_transformers() {
    let dir = fixture();
    let tokenizer = QwenTokenizer::from_dir(&dir.join("tokenizer")).unwrap();
    let config = QwenConfig::load(&dir.join("text_encoder/config.json")).unwrap();
    let encoder = QwenEncoder::load_gguf(
        &dir.join("gguf/qwen3-Q8_0.gguf"),
        config,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let tokens = parity::reference_json(&dir.join("reference/tokens.json"));
    let prompts = tokens["prompts"].as_array().unwrap();
    let reference =
        parity::reference_tensors(&dir.join("reference/qwen_gguf_text_Q8_0.safetensors"));
    let f32_folder = parity::reference_tensors(&dir.join("reference/text.safetensors"));
    assert!(reference.len() >= 10, "{} references", reference.len());
    for (key, want) in &reference {
        let i: usize = key.rsplit('_').next().unwrap().parse().unwrap();
        let got = prompt::encode(
            &tokenizer,
            &encoder,
            prompts[i].as_str().unwrap(),
            512,
            DType::F32,
        )
        .unwrap();
        parity::assert_close(key, &got, want, 1e-4);
        let folder = &f32_folder[key];
        let drift = parity::rel_diff(want, folder);
        assert!(
            drift > 1e-3,
            "{key}: Q8_0 moves the features by only {drift}"
        );
    }
    // Another architecture's GGUF, or a Qwen3 of another depth, is refused naming the file.
    for (file, want) in [
        ("gguf/transformer-Q8_0.gguf", "qwen3"),
        ("../flux-schnell-tiny/gguf/t5-encoder-Q8_0.gguf", "qwen3"),
    ] {
        let config = QwenConfig::load(&dir.join("text_encoder/config.json")).unwrap();
        let err =
            QwenEncoder::load_gguf(&dir.join(file), config, &Device::Cpu, DType::F32).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(
            err.to_string().contains(want) && err.to_string().contains(".gguf"),
            "{err}"
        );
    }
    let mut shallow = QwenConfig::load(&dir.join("text_encoder/config.json")).unwrap();
    shallow.num_hidden_layers = 2;
    let err = QwenEncoder::load_gguf(
        &dir.join("gguf/qwen3-Q8_0.gguf"),
        shallow,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap_err();
    assert!(err.to_string().contains("3 Qwen3 blocks"), "{err}");
}

#[test]
fn zimage_schedule_matches_the_pipeline() {
    let dir = fixture();
    let config = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json")).unwrap();
    let r = parity::reference_json(&dir.join("reference/schedule.json"));
    let rows = r["rows"].as_array().unwrap();
    assert!(rows.len() >= 9);
    for row in rows {
        let steps = row["steps"].as_u64().unwrap() as usize;
        let seq = row["image_seq_len"].as_u64().unwrap() as usize;
        let s = FlowMatchEuler::for_zimage(&config, steps, seq).unwrap();
        // diffusers' values are float32: compared as such, exactly.
        let want = |k: &str| -> Vec<f32> {
            row[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
        assert_eq!(f32s(s.timesteps()), want("timesteps"), "{steps} steps");
        assert_eq!(f32s(s.sigmas()), want("sigmas"), "{steps} steps");
    }
}

/// Every whole-image reference: (name, mean abs diff in 0-255 levels).
fn run_all() -> Vec<(String, f64)> {
    let mut dense: Option<ZImagePipeline> = None;
    let mut out = Vec::new();
    for (name, r) in parity::pipeline_references(&fixture()) {
        let gguf = parity::first_word(&r["transformer"]).filter(|t| t.ends_with(".gguf"));
        let req = request(&r);
        let run = |p: &mut ZImagePipeline| p.generate(&req, &NullSink, &CancelToken::new());
        // A Qwen3 GGUF reference names its file from tests/fixtures.
        let qwen = r["text_encoder_gguf"]
            .as_str()
            .map(|f| fixture().join("..").join(f));
        let images = match (gguf, r.get("scheduler_override")) {
            _ if qwen.is_some() => run(&mut load_as(
                fixture(),
                None,
                qwen,
                Residency::Staged,
                GgufMatmul::Dequant,
            )),
            (Some(file), _) => run(&mut load(
                fixture(),
                Some(fixture().join(file)),
                Residency::Staged,
            )),
            (None, Some(_)) => {
                let (_tmp, dir) = parity::with_scheduler(&fixture(), &r["scheduler_config_used"]);
                run(&mut load(dir, None, Residency::Resident))
            }
            (None, None) => {
                run(dense.get_or_insert_with(|| load(fixture(), None, Residency::Resident)))
            }
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(images.len(), 1);
        let want = parity::pipeline_image(&fixture(), &name);
        let (h, w) = (want.dim(1).unwrap(), want.dim(2).unwrap());
        assert_eq!(
            (
                images[0].image.height() as usize,
                images[0].image.width() as usize
            ),
            (h, w),
            "{name}"
        );
        let mad = parity::image_mean_abs_diff(images[0].image.as_raw(), &want);
        eprintln!("{name}: mean abs diff {mad:.4} (0-255)");
        out.push((name, mad));
    }
    out
}

#[test]
fn zimage_images_match_diffusers_and_each_knob_moves_them() {
    let results = run_all();
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "txt2img",
        "portrait",
        "prompt2",
        "steps4",
        "cfg",
        "shift1",
        "seq16",
        "gguf_Q8_0",
        "qwen_gguf_Q8_0",
        "cli_qwen_gguf_Q4_0",
    ] {
        assert!(names.contains(&want), "missing reference {want}: {names:?}");
    }
    for (name, mad) in &results {
        assert!(
            mad.is_finite() && *mad <= 1.0,
            "{name}: {mad} levels from diffusers"
        );
    }
    // The fixture can tell a wrong prompt, step count, guidance, shift or token length apart:
    // each moves diffusers' image by several levels, far beyond the tolerance.
    let r = parity::reference_json_lenient(&fixture().join("reference/pipeline_txt2img.json"));
    let power = r["power"].as_object().unwrap();
    for knob in ["prompt2", "steps4", "cfg", "seq16", "shift1"] {
        let levels = power[knob].as_f64().unwrap() * 255.0;
        assert!(
            levels > 3.0,
            "{knob} moves the image by only {levels} levels"
        );
    }
}

#[test]
fn zimage_staged_equals_resident_and_cancel_stops() {
    let (_, r) = parity::pipeline_references(&fixture())
        .into_iter()
        .find(|(n, _)| n == "txt2img")
        .unwrap();
    let req = request(&r);
    let a = load(fixture(), None, Residency::Staged)
        .generate(&req, &NullSink, &CancelToken::new())
        .unwrap();
    let b = load(fixture(), None, Residency::Resident)
        .generate(&req, &NullSink, &CancelToken::new())
        .unwrap();
    assert_eq!(a[0].image.as_raw(), b[0].image.as_raw());
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = load(fixture(), None, Residency::Resident)
        .generate(&req, &NullSink, &cancel)
        .err()
        .unwrap();
    assert!(err.to_string().to_lowercase().contains("cancel"), "{err}");
}

#[test]
fn zimage_batches_use_one_seed_each_and_refuse_bad_input() {
    let mut p = load(fixture(), None, Residency::Resident);
    let req = GenerateRequest {
        prompt: "a red fox".into(),
        steps: 2,
        guidance: 0.0,
        width: 64,
        height: 48,
        batch: 2,
        seed: 7,
        scheduler: Scheduler::FlowEuler,
        ..GenerateRequest::default()
    };
    let two = p.generate(&req, &NullSink, &CancelToken::new()).unwrap();
    assert_eq!((two[0].seed, two[1].seed), (7, 8));
    assert_ne!(two[0].image.as_raw(), two[1].image.as_raw());
    let one = p
        .generate(
            &GenerateRequest {
                batch: 1,
                seed: 8,
                ..req.clone()
            },
            &NullSink,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(one[0].image.as_raw(), two[1].image.as_raw());
    for bad in [
        GenerateRequest {
            width: 72,
            ..req.clone()
        },
        GenerateRequest {
            init_latents: Some(Tensor::zeros((1, 16, 5, 8), DType::F32, &Device::Cpu).unwrap()),
            ..req.clone()
        },
    ] {
        let err = p
            .generate(&bad, &NullSink, &CancelToken::new())
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2, "{err}");
    }
}

/// The GGUF references through the CPU's default `Quantized` mode (8-bit activations): near
/// diffusers' GGUF images, within a tolerance below what a different prompt or step count does.
#[test]
fn zimage_gguf_images_in_the_quantized_mode_stay_near_diffusers() {
    const TOL_255: f64 = 2.0;
    let mut checked = 0;
    for (name, r) in parity::pipeline_references(&fixture()) {
        let Some(file) = parity::first_word(&r["transformer"]).filter(|t| t.ends_with(".gguf"))
        else {
            continue;
        };
        let mut p = load_as(
            fixture(),
            Some(fixture().join(file)),
            None,
            Residency::Staged,
            GgufMatmul::Quantized,
        );
        let images = p
            .generate(&request(&r), &NullSink, &CancelToken::new())
            .unwrap();
        let want = parity::pipeline_image(&fixture(), &name);
        let mad = parity::image_mean_abs_diff(images[0].image.as_raw(), &want);
        eprintln!("{name} (Quantized): mean abs diff {mad:.4} (0-255)");
        assert!(mad.is_finite() && mad < TOL_255, "{name}: {mad}");
        checked += 1;
    }
    assert!(checked >= 2, "{checked} GGUF references");
    let r = parity::reference_json_lenient(&fixture().join("reference/pipeline_txt2img.json"));
    for knob in ["prompt2", "steps4"] {
        let levels = r["power"][knob].as_f64().unwrap() * 255.0;
        assert!(levels > 2.0 * TOL_255, "{knob}: {levels} levels");
    }
}
