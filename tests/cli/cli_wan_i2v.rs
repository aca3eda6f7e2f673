//! Image-to-video through the real `--headless` binary (issue 22, `--kind img2vid`), Wan 2.2 TI2V
//! (wan-ti2v-tiny) and Wan 2.1 I2V (wan-i21-tiny, with its CLIP image encoder): for diffusers'
//! noise (`--init-latents`) and a non-square init image resized to the clip, the frames equal
//! diffusers' `WanImageToVideoPipeline` frames (tests/fixtures/make_wan_i2v.py) within mean
//! |diff| <= 1/255; the init image moves the clip more than that; TI2V's first frame is
//! the init image's own (the VAE's reconstruction of it: the same whatever the prompt, while the
//! later frames follow the prompt); `--init-image` alone makes an img2vid job on such a model;
//! bad input exits 2 with nothing written.
//!
//! The tiny VAE is random, so its reconstruction of the image does not look like the image; with
//! trained weights the first frame is the init image.

use std::path::PathBuf;

use candle_core::Tensor;

use crate::cli_wan::{assert_refused, frames_diff, run_listed};
use crate::parity;
use crate::run::fixture;

fn cases() -> serde_json::Value {
    parity::reference_json_lenient(&fixture("wan-pipeline/i2v_cases.json"))
}

fn ti2v() -> PathBuf {
    fixture("wan-ti2v-tiny")
}

/// Mean |ours - diffusers| on the 0-255 scale over frame `i` of case `name`.
pub(crate) fn frame_diff(name: &str, png: &PathBuf, i: usize) -> f64 {
    let reference = Tensor::read_npy(fixture(&format!("wan-pipeline/{name}_frames.npy"))).unwrap();
    let theirs: Vec<f32> = reference
        .get(i)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let img = image::open(png).unwrap().to_rgb8();
    let ours: Vec<f32> = img.as_raw().iter().map(|&b| f32::from(b) / 255.0).collect();
    parity::mean_abs_diff_255(&ours, &theirs)
}

#[test]
fn headless_wan_img2vid_matches_diffusers() {
    let meta = cases();
    for name in ["ti2v_img", "i21_img"] {
        let c = &meta["cases"][name];
        let clip = run_listed(&meta, name, &[]);
        assert_eq!(clip.progress as u64, c["steps"].as_u64().unwrap(), "{name}");
        let (mp4, pngs) = clip.outputs.split_first().unwrap();
        assert_eq!(mp4.extension().unwrap(), "mp4");
        let mad = frames_diff(name, pngs);
        eprintln!("wan {name}: mean abs diff {mad:.4} (0-255)");
        assert!(mad <= parity::IMAGE_TOL_255, "{name}: mean abs diff {mad}");
        let sidecar = std::fs::read_to_string(mp4.with_extension("json")).unwrap();
        assert!(sidecar.contains("\"img2vid\""), "{sidecar}");
        assert!(sidecar.contains("init_80x64.png"), "{sidecar}");
        assert_eq!(clip.run.files().len(), pngs.len() + 2, "{name}");
    }
}

/// Another init image moves every frame well past the tolerance; the same image without
/// `--kind` (implied by `--init-image` on an image-to-video model) is the same job.
#[test]
fn wan_init_image_moves_the_clip_and_implies_img2vid() {
    let meta = cases();
    let other = fixture("images/init_wide.png");
    for name in ["ti2v_img", "i21_img"] {
        let clip = run_listed(&meta, name, &[("--init-image", other.to_str().unwrap())]);
        let mad = frames_diff(name, &clip.outputs[1..]);
        eprintln!("wan {name} with another init image: mean abs diff {mad:.4}");
        assert!(mad > 2.0 * parity::IMAGE_TOL_255, "{name}: {mad}");
        let first = frame_diff(name, &clip.outputs[1], 0);
        assert!(
            first > 2.0 * parity::IMAGE_TOL_255,
            "{name} first frame: {first}"
        );
    }
    let implied = run_listed(&meta, "ti2v_img", &[("--kind", "")]);
    assert!(frames_diff("ti2v_img", &implied.outputs[1..]) <= parity::IMAGE_TOL_255);
}

/// The first frame is the image's: another prompt leaves it as diffusers made it and moves the
/// later frames.
#[test]
fn wan_first_frame_is_the_init_images() {
    let meta = cases();
    let clip = run_listed(
        &meta,
        "ti2v_img",
        &[("--prompt", "a blue whale sings under the arctic ice")],
    );
    let pngs = &clip.outputs[1..];
    let first = frame_diff("ti2v_img", &pngs[0], 0);
    assert!(first <= parity::IMAGE_TOL_255, "first frame: {first}");
    let last = frame_diff("ti2v_img", &pngs[pngs.len() - 1], pngs.len() - 1);
    assert!(last > 2.0 * parity::IMAGE_TOL_255, "last frame: {last}");
}

/// Staged residency (the image encoder and the VAE's encoder loaded for their stage only) makes
/// the same clips.
#[test]
fn wan_img2vid_staged_matches_diffusers_too() {
    for name in ["ti2v_img", "i21_img"] {
        let clip = run_listed(&cases(), name, &[("--residency", "staged")]);
        let mad = frames_diff(name, &clip.outputs[1..]);
        assert!(mad <= parity::IMAGE_TOL_255, "{name} staged: {mad}");
    }
}

#[test]
fn wan_img2vid_bad_inputs_exit_2_with_nothing_written() {
    let model = ti2v();
    let size = ["--frames", "5", "--width", "96", "--height", "64"];
    let with = |extra: &[&'static str]| [&size[..], extra].concat();
    assert_refused(
        &model,
        &with(&["--kind", "img2vid"]),
        &["img2vid", "--init-image"],
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    let junk = junk.to_str().unwrap().to_owned();
    let missing = dir.path().join("missing.png");
    let missing = missing.to_str().unwrap().to_owned();
    for path in [&junk, &missing] {
        let mut args = with(&["--kind", "img2vid"]);
        args.extend(["--init-image", path.as_str()]);
        assert_refused(&model, &args, &["--init-image"]);
    }
    let png = fixture("images/init.png");
    let mut args = with(&["--kind", "txt2vid"]);
    args.extend(["--init-image", png.to_str().unwrap()]);
    assert_refused(&model, &args, &["--init-image", "img2vid"]);
    // A text-to-video model refuses the image (tests/cli/cli_wan.rs checks its message).
    let mut args = with(&[]);
    args.extend(["--init-image", png.to_str().unwrap()]);
    assert_refused(&fixture("wan-t2v-tiny"), &args, &["text-to-video only"]);
    // Wan 2.1 I2V makes video from an image only.
    let i21 = fixture("wan-i21-tiny");
    assert_refused(&i21, &with(&[]), &["image-to-video", "--init-image"]);
    assert_refused(&i21, &with(&["--kind", "txt2vid"]), &["--init-image"]);
}
