//! Whole FLUX pipelines against diffusers' FluxPipeline / FluxImg2ImgPipeline on the tiny
//! fixtures: every reference of flux-schnell-tiny, flux-dev-tiny and flux-k-tiny (txt2img and
//! img2img, non-square, embedded guidance, true CFG, static and dynamic shift, T5 lengths, GGUF
//! transformers, their matrices dequantized with diffusers' arithmetic) from the same unpacked
//! noise; the GGUF transformers again in the CPU's default 8-bit mode with its own tolerance; the
//! fixtures' power; the GGUF T5 kept quantized; staged and resident runs alike.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::flux::transformer::GgufMatmul;
use pallaidium::engines::flux::{FluxLoadOptions, FluxPipeline};
use pallaidium::engines::nn::lora::LoraSpec;
use pallaidium::engines::nn::text::t5;
use pallaidium::engines::nn::text::t5_quantized::QuantizedT5Encoder;
use pallaidium::engines::progress::{CancelToken, NullSink};
use pallaidium::engines::sd::GenerateRequest;
use pallaidium::vocab::{Residency, Scheduler};

use crate::parity;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn pipeline(model: &str, transformer: Option<PathBuf>, residency: Residency) -> FluxPipeline {
    load(fixtures().join(model), transformer, residency)
}

/// GGUF matrices dequantized with diffusers' arithmetic (the parity tolerance's mode).
fn load(model_dir: PathBuf, transformer: Option<PathBuf>, residency: Residency) -> FluxPipeline {
    load_as(
        model_dir,
        transformer,
        residency,
        GgufMatmul::Dequant,
        vec![],
    )
}

fn load_as(
    model_dir: PathBuf,
    transformer: Option<PathBuf>,
    residency: Residency,
    matmul: GgufMatmul,
    loras: Vec<LoraSpec>,
) -> FluxPipeline {
    FluxPipeline::load(FluxLoadOptions {
        model_dir,
        transformer,
        text_encoder_2: None,
        device: Device::Cpu,
        dtype: DType::F32,
        residency,
        switches: EngineSwitches {
            gguf_matmul: Some(matmul),
            ..Default::default()
        },
        loras,
    })
    .unwrap()
}

/// The request diffusers' call describes (reference JSON), with its saved noise.
fn request(model: &str, r: &serde_json::Value) -> GenerateRequest {
    let dir = fixtures().join(model).join("reference");
    let noise = parity::first_word(&r["noise"]).unwrap();
    let map = candle_core::safetensors::load(dir.join(noise), &Device::Cpu).unwrap();
    let init_image = parity::first_word(&r["init_image"])
        .map(|p| image::open(fixtures().join(p)).unwrap().to_rgb8());
    GenerateRequest {
        prompt: r["prompt"].as_str().unwrap().to_owned(),
        negative: r["negative_prompt"].as_str().unwrap_or_default().to_owned(),
        true_cfg: r["true_cfg_scale"].as_f64(),
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

/// The GGUF transformer file a reference used, relative to the model's folder.
fn gguf_of(r: &serde_json::Value) -> Option<String> {
    parity::first_word(&r["transformer"])
        .filter(|t| t.ends_with(".gguf"))
        .or_else(|| r["cli"]["gguf"].as_str().map(|g| format!("../{g}")))
}

/// Runs every reference of `model` and returns (name, mean abs diff 0-255).
fn run_all(model: &str) -> Vec<(String, f64)> {
    let mut dense: Option<FluxPipeline> = None;
    let mut out = Vec::new();
    for (name, r) in parity::pipeline_references(&fixtures().join(model)) {
        let gguf = gguf_of(&r);
        let req = request(model, &r);
        let run = |p: &mut FluxPipeline| p.generate(&req, &NullSink, &CancelToken::new());
        let images = match (gguf, r.get("scheduler_override")) {
            // A LoRA reference (make_lora.py): the LoRA file at the scale diffusers fused.
            _ if r.get("lora").is_some() => {
                let lora = LoraSpec {
                    path: fixtures().join(r["lora"].as_str().unwrap()),
                    weight: r["lora_scale"].as_f64().unwrap(),
                };
                let dir = fixtures().join(model);
                run(&mut load_as(
                    dir,
                    None,
                    Residency::Resident,
                    GgufMatmul::Dequant,
                    vec![lora],
                ))
            }
            (Some(file), _) => {
                let path = fixtures().join(model).join(file);
                run(&mut pipeline(model, Some(path), Residency::Staged))
            }
            (None, Some(_)) => {
                let (_tmp, dir) =
                    parity::with_scheduler(&fixtures().join(model), &r["scheduler_config_used"]);
                run(&mut load(dir, None, Residency::Resident))
            }
            (None, None) => {
                run(dense.get_or_insert_with(|| pipeline(model, None, Residency::Resident)))
            }
        }
        .unwrap_or_else(|e| panic!("{model} {name}: {e}"));
        assert_eq!(images.len(), 1);
        let mad = parity::image_mean_abs_diff(
            images[0].image.as_raw(),
            &parity::pipeline_image(&fixtures().join(model), &name),
        );
        eprintln!("{model} {name}: mean abs diff {mad:.4} (0-255)");
        out.push((name, mad));
    }
    out
}

fn check_all(model: &str, at_least: usize) {
    let results = run_all(model);
    assert!(results.len() >= at_least, "{model}: {results:?}");
    for (name, mad) in results {
        assert!(
            mad.is_finite() && mad < parity::IMAGE_TOL_255,
            "{model} {name}: {mad}"
        );
    }
}

#[test]
fn flux_schnell_pipelines_match_diffusers() {
    check_all("flux-schnell-tiny", 10);
}

#[test]
fn flux_dev_pipelines_match_diffusers() {
    check_all("flux-dev-tiny", 8);
}

#[test]
fn flux_k_quant_pipeline_matches_diffusers() {
    check_all("flux-k-tiny", 1);
}

/// The 8-bit modes' image tolerance (mean |diff| on the 0-255 scale) against diffusers' GGUF
/// images; below the smallest effect of a prompt, step count or guidance change (asserted).
const EIGHT_BIT_IMAGE_TOL_255: f64 = 2.0;

/// Every GGUF reference (schnell's Q8_0 and Q4_0, the CLI's Q4_0, flux-k-tiny's Q2_K..Q6_K)
/// through the CPU's default `Quantized` mode: within EIGHT_BIT_IMAGE_TOL_255 of diffusers'
/// GGUF image, and that tolerance below every fixture-power effect.
#[test]
fn flux_gguf_pipelines_in_the_quantized_mode_stay_near_diffusers() {
    let mut checked = 0;
    for model in ["flux-schnell-tiny", "flux-k-tiny"] {
        for (name, r) in parity::pipeline_references(&fixtures().join(model)) {
            let Some(file) = gguf_of(&r) else { continue };
            let path = fixtures().join(model).join(file);
            let mut p = load_as(
                fixtures().join(model),
                Some(path),
                Residency::Staged,
                GgufMatmul::Quantized,
                vec![],
            );
            let images = p
                .generate(&request(model, &r), &NullSink, &CancelToken::new())
                .unwrap();
            let mad = parity::image_mean_abs_diff(
                images[0].image.as_raw(),
                &parity::pipeline_image(&fixtures().join(model), &name),
            );
            eprintln!("{model} {name} (Quantized): mean abs diff {mad:.4} (0-255)");
            assert!(
                mad.is_finite() && mad < EIGHT_BIT_IMAGE_TOL_255,
                "{model} {name}: {mad}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} GGUF references");
    let smallest = smallest_fixture_effect();
    assert!(
        smallest > EIGHT_BIT_IMAGE_TOL_255,
        "a prompt/step/guidance change moves an image by only {smallest}"
    );
}

/// The smallest mean |diff| (0-255) between a fixture's base image and one made with another
/// prompt, step count, guidance, true CFG, shift or T5 length.
fn smallest_fixture_effect() -> f64 {
    fixture_effects()
        .into_iter()
        .map(|(_, mad)| mad)
        .fold(f64::INFINITY, f64::min)
}

fn fixture_effects() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (model, base, others) in [
        (
            "flux-schnell-tiny",
            "txt2img",
            vec!["prompt2", "steps2", "seq256", "img2img"],
        ),
        (
            "flux-dev-tiny",
            "txt2img",
            vec!["prompt2", "guidance7", "true_cfg", "steps4", "static_shift"],
        ),
    ] {
        let a = parity::image_values(&parity::pipeline_image(&fixtures().join(model), base));
        for other in others {
            let b = parity::image_values(&parity::pipeline_image(&fixtures().join(model), other));
            out.push((
                format!("{model} {other} vs {base}"),
                parity::mean_abs_diff_255(&a, &b),
            ));
        }
    }
    out
}

/// The fixtures can fail a test: prompt, guidance, true CFG, steps, shift and T5 length each move
/// diffusers' image by several levels, more than the 1-level tolerance.
#[test]
fn the_flux_fixtures_have_the_power_to_fail() {
    for (what, mad) in fixture_effects() {
        assert!(mad > 3.0 * parity::IMAGE_TOL_255, "{what}: {mad}");
    }
}

/// Staged residency (each network loaded for its stage, then dropped) makes the same image.
#[test]
fn staged_and_resident_flux_runs_agree() {
    let r = parity::reference_json_lenient(
        &fixtures().join("flux-dev-tiny/reference/pipeline_true_cfg.json"),
    );
    let req = request("flux-dev-tiny", &r);
    let mut images = Vec::new();
    for residency in [Residency::Resident, Residency::Staged] {
        let mut p = pipeline("flux-dev-tiny", None, residency);
        images.push(p.generate(&req, &NullSink, &CancelToken::new()).unwrap());
    }
    assert_eq!(images[0][0].image, images[1][0].image);
}

/// The GGUF T5 kept quantized (dequantized per layer) equals transformers on the dequantized
/// weights, and differs from the f32 encoder (so the check can fail).
#[test]
fn quantized_t5_matches_transformers_on_the_gguf() {
    let dir = fixtures().join("flux-schnell-tiny");
    let config = t5::load_config(&dir.join("text_encoder_2/config.json")).unwrap();
    let t5 = QuantizedT5Encoder::load(
        &dir.join("gguf/t5-encoder-Q8_0.gguf"),
        &config,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let reference = parity::reference_tensors(&dir.join("reference/t5_gguf.safetensors"));
    let ids = parity::get(&reference, "input_ids_16")
        .to_dtype(DType::U32)
        .unwrap();
    let expected = parity::get(&reference, "t5_hidden_16");
    for row in 0..ids.dim(0).unwrap() {
        let ids_row: Vec<u32> = ids.get(row).unwrap().to_vec1().unwrap();
        let ours = t5.encode(&ids_row).unwrap().squeeze(0).unwrap();
        parity::assert_close(
            &format!("quantized T5 prompt {row}"),
            &ours,
            &expected.get(row).unwrap(),
            parity::TENSOR_REL_TOL,
        );
    }
    assert!(t5.stored_bytes() > 0);
}

/// FLUX's 16-channel VAE (no quant convs) decodes and encodes as diffusers' AutoencoderKL.
#[test]
fn flux_vae_matches_diffusers() {
    use pallaidium::engines::sd::vae::Vae;
    for model in ["flux-schnell-tiny", "flux-dev-tiny"] {
        let dir = fixtures().join(model);
        let vae = Vae::load(&dir.join("vae"), &Device::Cpu, DType::F32, false).unwrap();
        let r = parity::reference_tensors(&dir.join("reference/vae.safetensors"));
        let cancel = CancelToken::new();
        let decoded = vae
            .decode_watched(parity::get(&r, "latents"), None, &cancel)
            .unwrap();
        parity::assert_close(
            &format!("{model} VAE decode"),
            &decoded,
            parity::get(&r, "decoded"),
            parity::TENSOR_REL_TOL,
        );
        let mean = vae
            .encode_mean_watched(parity::get(&r, "image"), None, &cancel)
            .unwrap();
        parity::assert_close(
            &format!("{model} VAE encode"),
            &mean,
            parity::get(&r, "encoded_mean"),
            parity::TENSOR_REL_TOL,
        );
    }
}
