//! Real-ESRGAN upscaling vs references computed with spandrel's architecture code and
//! `RealESRGANer`'s padding, tiling and alpha logic (tests/fixtures/make_upscale.py): RRDBNet x4
//! (BasicSR names, `params_ema.` prefix), RRDBNet x2 (pixel-unshuffle, original ESRGAN names),
//! SRVGGNetCompact x4 (PReLU); RGB, RGBA and 16-bit inputs; whole and in 8-pixel tiles.

use std::path::PathBuf;

use candle_core::{DType, Device};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::progress::{CancelToken, NullSink};
use pallaidium::engines::upscale::Upscaler;

use crate::parity::image_levels_diff;

/// Mean |ours - theirs| allowed, in 8-bit levels (1/255).
const TOLERANCE: f64 = 1.0;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upscale")
        .join(name)
}

fn load(net: &str) -> Upscaler {
    Upscaler::load(
        &fixture(&format!("{net}.safetensors")),
        &Device::Cpu,
        DType::F32,
        EngineSwitches::default(),
    )
    .unwrap()
}

fn upscale(up: &Upscaler, input: &str, tile: Option<u32>) -> image::DynamicImage {
    let image = image::open(fixture(&format!("in_{input}.png"))).unwrap();
    up.upscale(&image, tile, &NullSink, &CancelToken::new())
        .unwrap()
}

fn check(net: &str, input: &str) {
    let up = load(net);
    for (tile, suffix) in [(None, ""), (Some(8), "_tile8")] {
        let ours = upscale(&up, input, tile);
        let theirs = image::open(fixture(&format!("ref_{net}_{input}{suffix}.png"))).unwrap();
        let d = image_levels_diff(&ours, &theirs);
        assert!(
            d <= TOLERANCE,
            "{net} on {input} (tile {tile:?}): mean |diff| {d:.3} levels"
        );
    }
}

#[test]
fn rrdb_x4_rgb_and_16_bit_match_realesrgan() {
    check("rrdb_x4", "rgb");
    check("rrdb_x4", "16");
}

#[test]
fn rrdb_x2_pixel_unshuffle_odd_sides_and_alpha_match_realesrgan() {
    check("rrdb_x2", "rgb");
    check("rrdb_x2", "rgba");
}

#[test]
fn compact_x4_rgb_and_alpha_match_realesrgan() {
    check("compact_x4", "rgb");
    check("compact_x4", "rgba");
}

/// The comparisons can fail: another network of the same scale, or the same input read as
/// 8-bit, lands far outside the tolerance.
#[test]
fn other_weights_or_depth_are_far_outside_the_tolerance() {
    let theirs = image::open(fixture("ref_rrdb_x4_rgb.png")).unwrap();
    let compact = upscale(&load("compact_x4"), "rgb", None);
    let d = image_levels_diff(&compact, &theirs);
    assert!(d > 20.0 * TOLERANCE, "compact vs rrdb: {d:.2}");
    let deep = image::open(fixture("in_16.png")).unwrap();
    assert_eq!(deep.color(), image::ColorType::Rgb16);
    let as_8bit = image::DynamicImage::ImageRgb8(deep.to_rgb8());
    let up = load("rrdb_x4");
    let from_8 = up
        .upscale(&as_8bit, None, &NullSink, &CancelToken::new())
        .unwrap();
    let from_16 = upscale(&up, "16", None);
    let reference = image::open(fixture("ref_rrdb_x4_16.png")).unwrap();
    assert!(image_levels_diff(&from_16, &reference) <= TOLERANCE);
    // Depth matters less than weights, but still shows (rounding to 8 bits first).
    assert!(image_levels_diff(&from_8, &from_16) > 0.0);
}
