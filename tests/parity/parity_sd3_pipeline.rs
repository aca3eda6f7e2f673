//! Whole SD 3.5 pipelines against diffusers' StableDiffusion3Pipeline and
//! StableDiffusion3Img2ImgPipeline on tests/fixtures/sd3-tiny: every pipeline reference (64x48 and
//! the command line's 80x64, CFG with and without a negative prompt, guidance 1 (no CFG), 4 and 6
//! steps, no T5, img2img, the Q4_0 GGUF transformer) from the same noise, mean |diff| <= 1/255;
//! and the fixture's power: prompt, guidance, steps, negative prompt and T5 each move diffusers'
//! image by several levels.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::progress::{CancelToken, NullSink};
use pallaidium::engines::sd::GenerateRequest;
use pallaidium::engines::sd3::{Sd3LoadOptions, Sd3Pipeline};
use pallaidium::vocab::{Residency, Scheduler};

use crate::parity;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference_dir() -> PathBuf {
    fixtures().join("sd3-tiny/reference")
}

fn first_word(v: &serde_json::Value) -> Option<String> {
    v.as_str()?.split_whitespace().next().map(str::to_owned)
}

fn pipeline(no_t5: bool, transformer: Option<PathBuf>, residency: Residency) -> Sd3Pipeline {
    pipeline_with(no_t5, transformer, None, residency)
}

/// `text_encoder_3`: T5 from a llama.cpp GGUF (`--text-encoder-2`).
fn pipeline_with(
    no_t5: bool,
    transformer: Option<PathBuf>,
    text_encoder_3: Option<PathBuf>,
    residency: Residency,
) -> Sd3Pipeline {
    Sd3Pipeline::load(Sd3LoadOptions {
        model_dir: fixtures().join("sd3-tiny"),
        transformer,
        text_encoder_3,
        no_t5,
        device: Device::Cpu,
        dtype: DType::F32,
        residency,
        switches: parity::exact_gguf_switches(),
    })
    .unwrap()
}

/// The request diffusers' call describes (reference JSON), with its saved noise.
fn request(r: &serde_json::Value) -> GenerateRequest {
    let noise = first_word(&r["noise"]).unwrap();
    let map = candle_core::safetensors::load(reference_dir().join(noise), &Device::Cpu).unwrap();
    let init_image =
        first_word(&r["init_image"]).map(|p| image::open(fixtures().join(p)).unwrap().to_rgb8());
    GenerateRequest {
        prompt: r["prompt"].as_str().unwrap().to_owned(),
        negative: r["negative_prompt"].as_str().unwrap_or_default().to_owned(),
        steps: r["steps"].as_u64().unwrap() as u32,
        guidance: r["guidance_scale"].as_f64().unwrap(),
        width: r["width"].as_u64().unwrap() as u32,
        height: r["height"].as_u64().unwrap() as u32,
        max_sequence_length: r["max_sequence_length"].as_u64().map(|n| n as usize),
        strength: r["strength"].as_f64().unwrap_or(1.0),
        init_image,
        init_latents: Some(map["latents"].clone()),
        scheduler: Scheduler::FlowEuler,
        ..GenerateRequest::default()
    }
}

fn references() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(reference_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name
                .strip_prefix("pipeline_")?
                .strip_suffix(".json")?
                .to_owned();
            Some((stem, parity::reference_json_lenient(&e.path())))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn image_of(name: &str) -> Tensor {
    let path = reference_dir().join(format!("pipeline_{name}.safetensors"));
    parity::get(&parity::reference_tensors(&path), "image").clone()
}

#[test]
fn sd3_pipelines_match_diffusers() {
    let mut with_t5 = pipeline(false, None, Residency::Resident);
    let mut without_t5 = pipeline(true, None, Residency::Resident);
    let mut results = Vec::new();
    for (name, r) in references() {
        let req = request(&r);
        let gguf = r["cli"]["gguf"].as_str().map(|g| fixtures().join(g));
        let no_t5 = r["no_t5"].as_bool().unwrap();
        let run = |p: &mut Sd3Pipeline| p.generate(&req, &NullSink, &CancelToken::new());
        let t5 = r["text_encoder_gguf"].as_str().map(|g| fixtures().join(g));
        let images = match (gguf, no_t5) {
            _ if t5.is_some() => run(&mut pipeline_with(no_t5, None, t5, Residency::Staged)),
            (Some(path), _) => run(&mut pipeline(no_t5, Some(path), Residency::Staged)),
            (None, true) => run(&mut without_t5),
            (None, false) => run(&mut with_t5),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(images.len(), 1);
        let mad = parity::image_mean_abs_diff(images[0].image.as_raw(), &image_of(&name));
        eprintln!("sd3-tiny {name}: mean abs diff {mad:.4} (0-255)");
        results.push((name, mad));
    }
    assert!(results.len() >= 10, "{results:?}");
    for (name, mad) in results {
        assert!(
            mad.is_finite() && mad <= parity::IMAGE_TOL_255,
            "{name}: {mad}"
        );
    }
}

/// The fixture can fail a test: each of these moves diffusers' image by more than 3 levels.
#[test]
fn the_sd3_fixture_has_the_power_to_fail() {
    let base = parity::image_values(&image_of("txt2img"));
    for other in [
        "prompt2",
        "guidance1",
        "steps4",
        "negative",
        "no_t5",
        "img2img",
    ] {
        let b = parity::image_values(&image_of(other));
        let mad = parity::mean_abs_diff_255(&base, &b);
        assert!(
            mad > 3.0 * parity::IMAGE_TOL_255,
            "{other} vs txt2img: {mad}"
        );
    }
    // T5 from the Q4_0 GGUF moves the command line's image: the file is what is read.
    let cli = parity::image_values(&image_of("cli_txt2img"));
    let t5 = parity::image_values(&image_of("cli_t5_gguf_Q4_0"));
    let mad = parity::mean_abs_diff_255(&cli, &t5);
    assert!(mad > 3.0 * parity::IMAGE_TOL_255, "T5 GGUF vs f32: {mad}");
}

/// Staged residency (each network loaded for its stage, then dropped) and a batch of two with
/// the same noise make the reference image.
#[test]
fn sd3_staged_and_batched_runs_match() {
    let (name, r) = references()
        .into_iter()
        .find(|(n, _)| n == "negative")
        .unwrap();
    let mut req = request(&r);
    req.batch = 2;
    let images = pipeline(false, None, Residency::Staged)
        .generate(&req, &NullSink, &CancelToken::new())
        .unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        let mad = parity::image_mean_abs_diff(image.image.as_raw(), &image_of(&name));
        assert!(mad <= parity::IMAGE_TOL_255, "{name}: {mad}");
    }
}
