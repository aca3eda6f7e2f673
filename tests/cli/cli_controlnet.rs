//! `--controlnet` through the real binary: bad inputs are exit 2 with a message naming the problem
//! and nothing written (a missing folder, a folder that is not a ControlNet, an SD 1.x ControlNet
//! on SDXL, an unreadable control image, counts that do not pair, numbers out of range).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

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
