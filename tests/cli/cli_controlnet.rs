//! `--controlnet` through the real binary: bad inputs are exit 2 with a message naming the problem
//! and nothing written (a missing folder, a folder that is not a ControlNet, an SD 1.x ControlNet
//! on SDXL, an unreadable control image, counts that do not pair, numbers out of range).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::cli_lora::outputs_of;
use crate::cli_parity::run_headless_with;
use crate::run::{Run, fixture};

fn net(name: &str) -> PathBuf {
    fixture("controlnets").join(name)
}

/// Exit 2, the message naming each of `names`, nothing written.
fn refused(model: &str, flags: &[String], names: &[&str]) {
    let run = Run::new();
    let out = run
        .command()
        .arg("--model")
        .arg(fixture(model))
        .args(["--width", "96", "--height", "64", "--steps", "2"])
        .args(["--prompt", "x"])
        .args(flags)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
    for name in names {
        assert!(stderr.contains(name), "`{name}` not in: {stderr}");
    }
    assert!(run.files().is_empty(), "{flags:?} wrote {:?}", run.files());
}

fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(f, v)| [f.to_string(), v.clone()])
        .collect()
}

fn path(p: PathBuf) -> String {
    p.to_str().unwrap().to_owned()
}

#[test]
fn bad_controlnet_inputs_are_exit_2_with_nothing_written() {
    let sd1 = path(net("sd1-a"));
    let image = path(net("control_wide.png"));
    let with = |extra: &[(&str, String)]| {
        let mut all = vec![
            ("--controlnet", sd1.clone()),
            ("--control-image", image.clone()),
        ];
        all.extend_from_slice(extra);
        flags(&all)
    };
    // A folder that does not exist, and one that is a UNet, not a ControlNet.
    let missing = path(net("no-such-net"));
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", missing),
            ("--control-image", image.clone()),
        ]),
        &["--controlnet", "no-such-net", "no such folder"],
    );
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", path(fixture("sd1-tiny/unet"))),
            ("--control-image", image.clone()),
        ]),
        &["not a ControlNet", "UNet2DConditionModel"],
    );
    // An SD 1.x ControlNet on SDXL, and SDXL's on SD 1.x.
    refused(
        "sdxl-tiny",
        &with(&[]),
        &["a ControlNet for Sd1", "Sdxl model"],
    );
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", path(net("sdxl"))),
            ("--control-image", image.clone()),
        ]),
        &["a ControlNet for Sdxl", "Sd1 model"],
    );
    // A control image that is missing, or not an image.
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", sd1.clone()),
            ("--control-image", "nope.png".into()),
        ]),
        &["--control-image", "nope.png"],
    );
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", sd1.clone()),
            ("--control-image", path(net("sd1-a/config.json"))),
        ]),
        &["--control-image", "not a decodable image"],
    );
    // Counts that do not pair.
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", sd1.clone()),
            ("--controlnet", sd1.clone()),
            ("--control-image", image.clone()),
        ]),
        &["--controlnet is given 2 times but --control-image 1 times"],
    );
    refused(
        "sd1-tiny",
        &flags(&[
            ("--controlnet", sd1.clone()),
            ("--controlnet", sd1.clone()),
            ("--control-image", image.clone()),
            ("--control-image", image.clone()),
            ("--control-scale", "1".into()),
            ("--control-scale", "1".into()),
            ("--control-scale", "1".into()),
        ]),
        &["--control-scale is given 3 times but --controlnet 2 times"],
    );
    refused(
        "sd1-tiny",
        &flags(&[("--control-image", image.clone())]),
        &["--control-image needs --controlnet"],
    );
    // Numbers out of range.
    refused(
        "sd1-tiny",
        &with(&[("--control-scale", "11".into())]),
        &["--control-scale 11"],
    );
    refused(
        "sd1-tiny",
        &with(&[("--control-end", "1.5".into())]),
        &["--control-end 1.5"],
    );
    refused(
        "sd1-tiny",
        &with(&[
            ("--control-start", "0.8".into()),
            ("--control-end", "0.2".into()),
        ]),
        &["--control-start 0.8 must be less than --control-end 0.2"],
    );
    refused(
        "sd1-tiny",
        &with(&[
            ("--control-preprocess", "canny".into()),
            ("--canny-low", "300".into()),
            ("--canny-high", "100".into()),
        ]),
        &["--canny-low 300"],
    );
    refused(
        "sd1-tiny",
        &with(&[("--control-preprocess", "sobel".into())]),
        &["--control-preprocess", "canny or none"],
    );
}

/// The flags the reference JSON records (paths relative to tests/fixtures), with `scale` in place
/// of every --control-scale when given.
fn reference_flags(model: &str, name: &str, scale: Option<&str>) -> Vec<String> {
    let r = crate::parity::reference_json_lenient(
        &fixture(model).join(format!("reference/pipeline_{name}.json")),
    );
    let control: Vec<String> = r["control"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let mut out = vec![];
    let mut it = control.into_iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap();
        let value = match flag.as_str() {
            "--controlnet" | "--control-image" => path(fixture(&value)),
            "--control-scale" => scale.map_or(value, str::to_owned),
            _ => value,
        };
        out.extend([flag, value]);
    }
    out
}

/// Ours against diffusers' ControlNet pipelines (tests/fixtures/make_controlnet.py): SD 1.x
/// txt2img (landscape and portrait), img2img and inpainting (9-channel UNet), SDXL, two
/// ControlNets at once and a start/end window. Each case also runs with the ControlNets at scale
/// 0, which must land far from diffusers' image: the ControlNet moves it.
#[test]
fn controlnet_images_match_diffusers() {
    for (model, name) in [
        ("sd1-tiny", "cn_txt2img"),
        ("sd1-tiny", "cn_portrait"),
        ("sd1-tiny", "cn_two"),
        ("sd1-tiny", "cn_window"),
        ("sd1-tiny", "cn_img2img"),
        ("sd1-inpaint-tiny", "cn_inpaint"),
        ("sdxl-tiny", "cn_txt2img"),
    ] {
        let mad = run_headless_with(model, name, &reference_flags(model, name, None));
        let off = run_headless_with(model, name, &reference_flags(model, name, Some("0")));
        assert!(
            off > 5.0 * crate::parity::IMAGE_TOL_255,
            "{model} {name}: the ControlNet moves the image by only {off}"
        );
        assert!(
            mad <= crate::parity::IMAGE_TOL_255,
            "{model} {name}: mean abs diff {mad} (the ControlNet moves it {off})"
        );
    }
}

/// The window matters: diffusers' windowed image is far from its full-range one.
#[test]
fn the_start_end_window_changes_diffusers_image() {
    let get = |name: &str| {
        let t = crate::parity::reference_tensors(
            &fixture("sd1-tiny").join(format!("reference/pipeline_{name}.safetensors")),
        );
        crate::parity::image_values(crate::parity::get(&t, "image"))
    };
    let moved = crate::parity::mean_abs_diff_255(&get("cn_txt2img"), &get("cn_window"));
    assert!(moved > 5.0 * crate::parity::IMAGE_TOL_255, "{moved}");
}

/// Canny preprocessing in Rust on a photo-like image (resized to the job), the PNG's A1111
/// fields, and `--from-image` making the same image again; a new --control-scale replaces the
/// stored one.
#[test]
fn canny_control_runs_records_and_from_image_repeats_it() {
    let run = Run::new();
    let mut cmd = run.command();
    cmd.arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--width", "96", "--height", "64", "--steps", "2"])
        .args(["--prompt", "a lighthouse", "--seed", "5"])
        .arg("--controlnet")
        .arg(net("sd1-a"))
        .arg("--control-image")
        .arg(fixture("canny/photo.png"))
        .args(["--control-preprocess", "canny", "--canny-low", "50"])
        .args(["--canny-high", "150", "--control-scale", "0.8"]);
    let first = outputs_of(&mut cmd).remove(0);
    let text = pallaidium::jobs::output::png_meta::read_parameters(&first)
        .unwrap()
        .parameters
        .unwrap();
    assert!(
        text.contains(
            "ControlNet 0: \"Module: canny, Model: sd1-a, Weight: 0.8, Guidance Start: 0, \
             Guidance End: 1, Threshold A: 50, Threshold B: 150\""
        ),
        "{text}"
    );
    let rgb = |p: &PathBuf| image::open(p).unwrap().to_rgb8();
    let again = outputs_of(run.command().arg("--from-image").arg(&first)).remove(0);
    assert_eq!(
        rgb(&first),
        rgb(&again),
        "the stored ControlNet is applied again"
    );
    let weaker = outputs_of(
        run.command()
            .arg("--from-image")
            .arg(&first)
            .args(["--control-scale", "0"]),
    )
    .remove(0);
    assert_ne!(
        rgb(&first),
        rgb(&weaker),
        "a flag replaces the stored scale"
    );
}
