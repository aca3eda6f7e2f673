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
    // --controlnet NET --control-image IMAGE, then `extra`.
    let pair = |n: String, i: String, extra: &[(&str, &str)]| {
        let mut all = vec![("--controlnet", n), ("--control-image", i)];
        all.extend(extra.iter().map(|(f, v)| (*f, v.to_string())));
        flags(&all)
    };
    let ok = |extra: &[(&str, &str)]| pair(sd1.clone(), image.clone(), extra);
    let two_nets_one_image = flags(&[
        ("--controlnet", sd1.clone()),
        ("--controlnet", sd1.clone()),
        ("--control-image", image.clone()),
    ]);
    let mut three_scales = ok(&[("--controlnet", &sd1), ("--control-image", &image)]);
    for _ in 0..3 {
        three_scales.extend(["--control-scale".to_string(), "1".to_string()]);
    }
    let cases: Vec<(&str, Vec<String>, &[&str])> = vec![
        // A folder that does not exist, and one that is a UNet, not a ControlNet.
        (
            "sd1-tiny",
            pair(path(net("no-such-net")), image.clone(), &[]),
            &["--controlnet", "no-such-net", "no such folder"],
        ),
        (
            "sd1-tiny",
            pair(path(fixture("sd1-tiny/unet")), image.clone(), &[]),
            &["not a ControlNet", "UNet2DConditionModel"],
        ),
        // An SD 1.x ControlNet on SDXL, and SDXL's on SD 1.x.
        (
            "sdxl-tiny",
            ok(&[]),
            &["a ControlNet for Sd1", "Sdxl model"],
        ),
        (
            "sd1-tiny",
            pair(path(net("sdxl")), image.clone(), &[]),
            &["a ControlNet for Sdxl", "Sd1 model"],
        ),
        // A control image that is missing, or not an image.
        (
            "sd1-tiny",
            pair(sd1.clone(), "nope.png".into(), &[]),
            &["--control-image", "nope.png"],
        ),
        (
            "sd1-tiny",
            pair(sd1.clone(), path(net("sd1-a/config.json")), &[]),
            &["--control-image", "not a decodable image"],
        ),
        // Counts that do not pair.
        (
            "sd1-tiny",
            two_nets_one_image,
            &["--controlnet is given 2 times but --control-image 1 times"],
        ),
        (
            "sd1-tiny",
            three_scales,
            &["--control-scale is given 3 times but --controlnet 2 times"],
        ),
        (
            "sd1-tiny",
            flags(&[("--control-image", image.clone())]),
            &["--control-image needs --controlnet"],
        ),
        // Numbers out of range, and an unknown preprocessor.
        (
            "sd1-tiny",
            ok(&[("--control-scale", "11")]),
            &["--control-scale 11"],
        ),
        (
            "sd1-tiny",
            ok(&[("--control-end", "1.5")]),
            &["--control-end 1.5"],
        ),
        (
            "sd1-tiny",
            ok(&[("--control-start", "0.8"), ("--control-end", "0.2")]),
            &["--control-start 0.8 must be less than --control-end 0.2"],
        ),
        (
            "sd1-tiny",
            ok(&[
                ("--control-preprocess", "canny"),
                ("--canny-low", "300"),
                ("--canny-high", "100"),
            ]),
            &["--canny-low 300"],
        ),
        (
            "sd1-tiny",
            ok(&[("--control-preprocess", "sobel")]),
            &["--control-preprocess", "canny or none"],
        ),
    ];
    for (model, flags, names) in cases {
        refused(model, &flags, names);
    }
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

/// `serve` takes a ControlNet job with its control images uploaded (`files.control-image` and
/// `control-image.1`), never by path, and makes the image the headless run makes.
#[test]
fn serve_takes_control_images_uploaded_and_matches_headless() {
    use serde_json::json;

    use crate::serve::{Server, b64};

    let (a, b) = (net("control_wide.png"), net("control_wide_b.png"));
    let sd1 = path(net("sd1-a"));
    let run = Run::new();
    let headless = outputs_of(
        run.command()
            .arg("--model")
            .arg(fixture("sd1-tiny"))
            .args(["--width", "96", "--height", "64", "--steps", "2"])
            .args(["--prompt", "a lighthouse", "--seed", "5"])
            .args(["--controlnet", &sd1, "--controlnet", &sd1])
            .arg("--control-image")
            .arg(&a)
            .arg("--control-image")
            .arg(&b)
            .args(["--control-scale", "0.7", "--control-scale", "1.2"]),
    )
    .remove(0);

    let server = Server::start(&[], &[]);
    let job = json!({
        "model": path(fixture("sd1-tiny")), "width": 96, "height": 64, "steps": 2,
        "prompt": "a lighthouse", "seed": 5, "controlnet": [sd1, sd1],
        "control-scale": [0.7, 1.2],
    });
    let mut by_path = job.clone();
    by_path["control-image"] = json!([path(a.clone()), path(b.clone())]);
    let named = server.post_json("/api/v1/jobs", &json!({ "job": by_path }));
    assert_eq!(named.status, 422, "{}", named.message());
    assert!(
        named.message().contains("files.control-image"),
        "{}",
        named.message()
    );
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let gap = server.post_json(
        "/api/v1/jobs",
        &json!({"job": job, "files": {"control-image.1": b64(&b)}}),
    );
    assert_eq!(gap.status, 422, "{}", gap.message());
    let reply = server.post_json(
        "/api/v1/jobs",
        &json!({"job": job, "files": {"control-image": b64(&a), "control-image.1": b64(&b)}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.message());
    let id = reply.json()["id"].as_i64().unwrap();
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    assert_eq!(events.last().unwrap().data["event"], "done", "{events:?}");
    let output = server.get(&format!("/api/v1/jobs/{id}/outputs/0"));
    assert_eq!(output.status, 200);
    let served = image::load_from_memory(&output.body).unwrap().to_rgb8();
    assert_eq!(served, image::open(&headless).unwrap().to_rgb8());
    let (code, stderr, _) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

/// A run of jobs with the same ControlNet reads it once; a job without one frees it, and the next
/// job that asks loads it again. The kept net changes nothing: the second job's image equals a
/// fresh process's.
#[test]
fn a_controlnet_stays_loaded_between_jobs_that_use_it() {
    let run = Run::new();
    let dir = run.dir.path();
    let job = |prompt: &str, control: bool| {
        let mut text = format!(
            "[[job]]\nmodel = {:?}\nwidth = 96\nheight = 64\nsteps = 2\nseed = 3\nprompt = {prompt:?}\n",
            path(fixture("sd1-tiny"))
        );
        if control {
            text.push_str(&format!(
                "controlnet = [{:?}]\ncontrol-image = [{:?}]\n",
                path(net("sd1-a")),
                path(net("control_wide.png"))
            ));
        }
        text
    };
    let file = dir.join("jobs.toml");
    let all = [
        job("a", true),
        job("b", true),
        job("c", false),
        job("d", true),
    ]
    .concat();
    std::fs::write(&file, all).unwrap();
    let out = run
        .command()
        .env("PALLAIDIUM_LOG", "info")
        .arg("--jobs")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let loads = stderr
        .lines()
        .filter(|l| l.contains("component loaded") && l.contains("stage=\"controlnet\""))
        .count();
    assert_eq!(
        loads, 2,
        "jobs a+b share one load, d loads again:\n{stderr}"
    );
    let outputs: Vec<PathBuf> = crate::run::json_lines(&out.stdout)
        .iter()
        .filter(|v| v["event"] == "done")
        .map(|v| PathBuf::from(v["outputs"][0].as_str().unwrap()))
        .collect();
    assert_eq!(outputs.len(), 4);

    let alone = Run::new();
    let file = alone.dir.path().join("jobs.toml");
    std::fs::write(&file, job("b", true)).unwrap();
    let fresh = outputs_of(alone.command().arg("--jobs").arg(&file)).remove(0);
    let rgb = |p: &PathBuf| image::open(p).unwrap().to_rgb8();
    assert_eq!(rgb(&outputs[1]), rgb(&fresh));
}
