//! CLIP's image tower and its preprocessing against transformers on the tiny Wan 2.1
//! image-to-video folder tests/fixtures/wan-i21-tiny (make_wan_i2v.py; references in
//! reference/clip.safetensors): CLIPImageProcessor's pixels for a non-square image (80x64,
//! center-cropped to 64x64), and CLIPVisionModel's `hidden_states[-2]` (what Wan conditions on)
//! for them, f32 within 1e-5 relative; another image moves the features far more.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::nn::text::clip_image::ClipImageProcessor;
use pallaidium::engines::nn::text::clip_vision::VisionTower;

use crate::parity::{assert_close, get, reference_tensors, rel_diff};

const TOL: f32 = 1e-5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan-i21-tiny")
}

fn image(name: &str) -> image::RgbImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name);
    image::open(path).unwrap().to_rgb8()
}

#[test]
fn clip_vision_penultimate_matches_transformers() {
    let r = reference_tensors(&dir().join("reference/clip.safetensors"));
    let processor =
        ClipImageProcessor::load(&dir().join("image_processor/preprocessor_config.json")).unwrap();
    let tower = VisionTower::load(
        &dir().join("image_encoder"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap();
    for (key, name) in [("", "init_80x64.png"), ("other_", "init_wide.png")] {
        let pixels = processor.preprocess(&image(name), &Device::Cpu).unwrap();
        assert_close(
            &format!("{name} pixels"),
            &pixels,
            get(&r, &format!("{key}pixels")),
            TOL,
        );
        let hidden = tower.penultimate(get(&r, &format!("{key}pixels"))).unwrap();
        assert_close(
            &format!("{name} hidden_states[-2]"),
            &hidden,
            get(&r, &format!("{key}hidden")),
            TOL,
        );
    }
    let moved = rel_diff(get(&r, "hidden"), get(&r, "other_hidden"));
    assert!(
        moved > 100.0 * TOL,
        "another image moves the features: {moved}"
    );
    // A picture of the wrong size is refused, not cropped silently.
    let wrong = candle_core::Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert!(tower.penultimate(&wrong).is_err());
}
