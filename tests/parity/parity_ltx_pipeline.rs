//! The LTX-Video text-to-video pipeline against diffusers' LTXPipeline on tests/fixtures/ltx-tiny
//! (make_ltx_pipeline.py): for diffusers' starting noise, the decoded frames equal diffusers'
//! within mean |diff| <= 1/255 (non-square 64x32, 9 and 17 frames, 4 and 3 steps, guidance 3
//! and 4 against the empty negative prompt); the prompt and the step count move the frames more
//! than that; frame counts off the 4n+1 grid are refused. Case `i2v` is LTXImageToVideoPipeline:
//! the first frame's latents (the encoder's mean) in latent frame 0, timestep 0 on its tokens,
//! only the later frames stepped; the image moves the frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::ltx::pipeline::{FRAME_RATE, LtxLoadOptions, LtxPipeline, LtxRequest};
use pallaidium::engines::progress::{CancelToken, NullSink};
use pallaidium::vocab::Residency;

use crate::parity::reference_json_lenient;

const MEAN_TOL: f64 = 1.0 / 255.0;

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(crate) fn pipeline(residency: Residency) -> LtxPipeline {
    LtxPipeline::load(LtxLoadOptions {
        model_dir: fixture("ltx-tiny"),
        device: Device::Cpu,
        dtype: DType::F32,
        switches: EngineSwitches::default(),
        residency,
        text_encoder_gguf: None,
    })
    .unwrap()
}

pub(crate) fn request(meta: &serde_json::Value, name: &str) -> LtxRequest {
    let c = &meta["cases"][name];
    let n = |k: &str| c[k].as_u64().unwrap() as u32;
    let noise = Tensor::read_npy(fixture(&format!("ltx-pipeline/{name}_noise.npy"))).unwrap();
    LtxRequest {
        prompt: meta["prompt"].as_str().unwrap().into(),
        negative: String::new(),
        steps: n("steps"),
        guidance: c["guidance"].as_f64().unwrap(),
        width: n("width"),
        height: n("height"),
        frames: n("frames"),
        frame_rate: FRAME_RATE,
        seed: 0,
        init_latents: Some(noise),
        max_sequence_length: None,
        decode_timestep: 0.0,
        decode_noise_scale: None,
        image: (c["image"] == true)
            .then(|| Tensor::read_npy(fixture(&format!("ltx-pipeline/{name}_image.npy"))).unwrap()),
        vae_tiling: false,
    }
}

/// Our (1, 3, F, H, W) frames in [-1, 1] as diffusers' (F, H, W, 3) in [0, 1].
pub(crate) fn as_np(video: &Tensor) -> Tensor {
    ((video.squeeze(0).unwrap().permute((1, 2, 3, 0)).unwrap() * 0.5).unwrap() + 0.5)
        .unwrap()
        .clamp(0f32, 1f32)
        .unwrap()
}

pub(crate) fn mean_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let d = (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap();
    f64::from(
        d.abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    )
}

#[test]
fn ltx_pipeline_matches_diffusers_frames() {
    let meta = reference_json_lenient(&fixture("ltx-pipeline/cases.json"));
    let mut pipe = pipeline(Residency::Resident);
    let (sink, cancel) = (NullSink, CancelToken::default());
    for name in ["f9", "f17", "i2v"] {
        let req = request(&meta, name);
        let want = Tensor::read_npy(fixture(&format!("ltx-pipeline/{name}_frames.npy"))).unwrap();
        let ours = as_np(&pipe.generate(&req, &sink, &cancel).unwrap());
        let diff = mean_diff(&ours, &want);
        eprintln!("ltx pipeline {name}: mean |diff| {diff:.2e}");
        assert!(diff <= MEAN_TOL, "{name}: mean |diff| {diff}");
        if name == "f9" {
            let mut other = req.clone();
            other.prompt = "a blue whale sings in the deep ocean".into();
            let moved = mean_diff(
                &as_np(&pipe.generate(&other, &sink, &cancel).unwrap()),
                &want,
            );
            assert!(
                moved > 3.0 * MEAN_TOL,
                "the prompt moved the frames by {moved}"
            );
            let mut other = req.clone();
            other.steps = 2;
            let moved = mean_diff(
                &as_np(&pipe.generate(&other, &sink, &cancel).unwrap()),
                &want,
            );
            assert!(
                moved > 3.0 * MEAN_TOL,
                "the steps moved the frames by {moved}"
            );
            let mut bad = req.clone();
            bad.frames = 8;
            let err = pipe.generate(&bad, &sink, &cancel).unwrap_err();
            assert!(err.to_string().contains("4n+1"), "{err}");
        }
        if name == "i2v" {
            // The first frame conditions the clip: another image moves the frames.
            let mut other = req.clone();
            other.image = Some((req.image.as_ref().unwrap() * -1.0).unwrap());
            let moved = mean_diff(
                &as_np(&pipe.generate(&other, &sink, &cancel).unwrap()),
                &want,
            );
            assert!(
                moved > 3.0 * MEAN_TOL,
                "the image moved the frames by {moved}"
            );
            let mut bad = req.clone();
            bad.image = Some(req.image.as_ref().unwrap().narrow(3, 0, 32).unwrap());
            assert!(pipe.generate(&bad, &sink, &cancel).is_err());
        }
    }
}
