//! Whole-pipeline parity: our txt2img / img2img / inpainting against diffusers' own output on the
//! same tiny random-weight models, the same prompts and the same initial noise
//! (tests/fixtures/*/reference/pipeline_*.json say exactly how each reference was made).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::progress::{CancelToken, EngineEvent};
use pallaidium::engines::sd::{GenerateRequest, LoadOptions, SdPipeline};
use pallaidium::vocab::Residency;

use crate::parity;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_tensor(path: &Path, key: &str) -> Tensor {
    let map = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    map.get(key)
        .unwrap_or_else(|| panic!("{key} missing in {}", path.display()))
        .clone()
}

fn pipeline(model: &str, residency: Residency) -> SdPipeline {
    SdPipeline::load(&LoadOptions {
        model_dir: fixtures().join(model),
        device: Device::Cpu,
        dtype: DType::F32,
        residency,
        prefer_fp16_variant: false,
        switches: Default::default(),
        loras: vec![],
    })
    .unwrap()
}

fn request(reference: &serde_json::Value, noise: Tensor) -> GenerateRequest {
    let s = |k: &str| reference[k].as_str().unwrap_or_default().to_string();
    let image_at = |k: &str| {
        reference.get(k).and_then(|v| v.as_str()).map(|p| {
            let file = p.split_whitespace().next().unwrap();
            image::open(fixtures().join(file)).unwrap()
        })
    };
    GenerateRequest {
        prompt: s("prompt"),
        negative: s("negative_prompt"),
        steps: reference["steps"].as_u64().unwrap() as u32,
        guidance: reference["guidance_scale"].as_f64().unwrap(),
        seed: 0,
        width: reference["width"].as_u64().unwrap() as u32,
        height: reference["height"].as_u64().unwrap() as u32,
        batch: 1,
        scheduler: pallaidium::vocab::Scheduler::parse(&s("scheduler_name")).unwrap(),
        init_image: image_at("init_image").map(|i| i.to_rgb8()),
        strength: reference
            .get("strength")
            .and_then(|v| v.as_f64())
            .unwrap_or(1.0),
        mask: image_at("mask_image").map(|i| i.to_luma8()),
        init_latents: Some(noise),
        ..GenerateRequest::default()
    }
}

fn read_reference(path: &Path) -> serde_json::Value {
    parity::reference_json_lenient(path)
}

fn check(model: &str, name: &str, residency: Residency) {
    let dir = fixtures().join(model).join("reference");
    let reference = read_reference(&dir.join(format!("pipeline_{name}.json")));
    // img2img/inpaint: the noise diffusers drew; txt2img: the initial latents.
    let noise_file = ["noise", "init_latents_file"]
        .iter()
        .find_map(|k| reference.get(*k).and_then(|v| v.as_str()))
        .map(|s| s.split_whitespace().next().unwrap().to_string())
        .unwrap_or_else(|| panic!("{model} {name}: no noise or init_latents_file"));
    let noise = load_tensor(&dir.join(noise_file), "latents");
    let req = request(&reference, noise);
    let mut pipe = pipeline(model, residency);
    let steps = std::sync::Mutex::new(Vec::new());
    let sink = |e: EngineEvent| {
        if let EngineEvent::Progress { step, .. } = e {
            steps.lock().unwrap().push(step);
        }
    };
    let images = pipe.generate(&req, &sink, &CancelToken::new()).unwrap();
    assert_eq!(images.len(), 1);
    let expected = load_tensor(&dir.join(format!("pipeline_{name}.safetensors")), "image");
    let mad = parity::image_mean_abs_diff(images[0].image.as_raw(), &expected);
    eprintln!("{model} {name}: mean abs diff {mad:.4} (0-255)");
    assert!(
        mad < parity::IMAGE_TOL_255,
        "{model} {name}: mean abs diff {mad} >= {} (0-255 scale)",
        parity::IMAGE_TOL_255
    );
    let steps = steps.into_inner().unwrap();
    assert!(!steps.is_empty(), "no progress events");
    assert_eq!(
        steps,
        (1..=steps.len() as u32).collect::<Vec<_>>(),
        "progress steps out of order"
    );
}

#[test]
fn sd1_txt2img_every_deterministic_scheduler() {
    for name in [
        "ddim",
        "ddim_10",
        "euler",
        "euler_nocfg",
        "dpmpp2m",
        "dpmpp2m-karras",
        "unipc",
        "euler_prompt2",
    ] {
        check("sd1-tiny", name, Residency::Resident);
    }
}

#[test]
fn sd1_portrait_is_the_transposed_size() {
    check("sd1-tiny", "euler_portrait", Residency::Resident);
}

#[test]
fn sd1_staged_matches_resident() {
    check("sd1-tiny", "euler", Residency::Staged);
}

#[test]
fn sd1_img2img() {
    check("sd1-tiny", "img2img_ddim", Residency::Resident);
}

#[test]
fn sd1_inpaint_by_mask_blending() {
    check("sd1-tiny", "inpaint4_ddim", Residency::Resident);
}

#[test]
fn sd1_inpainting_model_nine_channels() {
    check("sd1-inpaint-tiny", "inpaint9_ddim", Residency::Resident);
}

#[test]
fn sd2_v_prediction() {
    for name in ["ddim", "euler"] {
        check("sd2-tiny", name, Residency::Resident);
    }
}

#[test]
fn sdxl_txt2img() {
    for name in ["euler", "dpmpp2m-karras", "euler_portrait"] {
        check("sdxl-tiny", name, Residency::Resident);
    }
}

#[test]
fn cancelled_job_stops_and_returns_cancelled() {
    let dir = fixtures().join("sd1-tiny/reference");
    let noise = load_tensor(&dir.join("init_latents.safetensors"), "latents");
    let reference = read_reference(&dir.join("pipeline_ddim_10.json"));
    let req = request(&reference, noise);
    let mut pipe = pipeline("sd1-tiny", Residency::Resident);
    let cancel = CancelToken::new();
    let seen = std::sync::atomic::AtomicU32::new(0);
    let sink = |e: EngineEvent| {
        if let EngineEvent::Progress { step, .. } = e {
            seen.store(step, std::sync::atomic::Ordering::SeqCst);
            if step == 2 {
                cancel.cancel();
            }
        }
    };
    let err = pipe.generate(&req, &sink, &cancel).unwrap_err();
    assert!(matches!(err, pallaidium::Error::Cancelled), "{err}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "must stop within one step"
    );
}

#[test]
fn previews_arrive_during_the_run() {
    let dir = fixtures().join("sd1-tiny/reference");
    let noise = load_tensor(&dir.join("init_latents.safetensors"), "latents");
    let reference = read_reference(&dir.join("pipeline_ddim_10.json"));
    let mut req = request(&reference, noise);
    req.preview_every = 3;
    let mut pipe = pipeline("sd1-tiny", Residency::Resident);
    let previews = std::sync::Mutex::new(Vec::new());
    let sink = |e: EngineEvent| {
        if let EngineEvent::Preview(p) = e {
            previews.lock().unwrap().push(p);
        }
    };
    pipe.generate(&req, &sink, &CancelToken::new()).unwrap();
    let previews = previews.into_inner().unwrap();
    assert_eq!(previews.len(), 3, "steps 3, 6, 9 of 10");
    assert_eq!((previews[0].width, previews[0].height), (12, 8));
}
