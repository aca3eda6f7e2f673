use std::path::PathBuf;

use candle_core::{DType, Device};

use super::*;
use crate::engines::EngineSwitches;
use crate::engines::progress::NullSink;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upscale")
        .join(name)
}

#[test]
fn fixture_networks_load_with_their_scales() {
    for (file, scale) in [
        ("rrdb_x4.safetensors", 4),
        ("rrdb_x2.safetensors", 2),
        ("compact_x4.safetensors", 4),
    ] {
        let up = Upscaler::load(
            &fixture(file),
            &Device::Cpu,
            DType::F32,
            EngineSwitches::default(),
        )
        .unwrap();
        assert_eq!(up.scale(), scale, "{file}");
    }
}

#[test]
fn a_file_that_is_not_safetensors_is_bad_input_naming_it() {
    let err = Upscaler::load(
        &fixture("in_rgb.png"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, crate::Error::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("in_rgb.png"), "{err}");
}

#[test]
fn gray_images_come_out_rgb_and_alpha_stays() {
    let up = Upscaler::load(
        &fixture("compact_x4.safetensors"),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap();
    let cancel = crate::engines::CancelToken::new();
    let gray =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(5, 3, image::Luma([90])));
    let out = up.upscale(&gray, None, &NullSink, &cancel).unwrap();
    assert_eq!((out.width(), out.height()), (20, 12));
    assert!(matches!(out, image::DynamicImage::ImageRgb8(_)));
    let la = image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(
        5,
        3,
        image::LumaA([90, 200]),
    ));
    let out = up.upscale(&la, Some(2), &NullSink, &cancel).unwrap();
    assert!(matches!(out, image::DynamicImage::ImageRgba8(_)));
}
