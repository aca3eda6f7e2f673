//! Wan text-to-video through the real `--headless` binary (issue 22): for diffusers' noise
//! (`--init-latents`), the frames saved with `--save-frames` equal diffusers' WanPipeline frames
//! (tests/fixtures/make_wan_pipeline.py) within mean |diff| <= 1/255, non-square, 5 and 9
//! frames, and a Wan 2.2 TI2V-shaped model (per-token timesteps, the 16x VAE); the prompt, guidance and steps move the frames more than that; the MP4 is read back
//! by ffprobe with the frame count, size and fps asked; `info` and `--from-image` read its
//! sidecar; bad input exits 2 with nothing written.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::cli_video_output::{ffmpeg_present, probe};
use crate::parity;
use crate::run::{Run, fixture, json_lines, plan_stages};

fn model() -> PathBuf {
    fixture("wan-t2v-tiny")
}

fn cases() -> serde_json::Value {
    parity::reference_json_lenient(&fixture("wan-pipeline/cases.json"))
}

pub(crate) struct Clip {
    pub(crate) run: Run,
    pub(crate) outputs: Vec<PathBuf>,
    pub(crate) progress: usize,
}

/// Runs case `name` of the references with the flags of `extra` replacing the case's.
fn run_case(name: &str, extra: &[(&str, &str)]) -> Clip {
    run_listed(&cases(), name, extra)
}

/// Runs case `name` of `meta` (a cases.json) with the flags of `extra` replacing the case's (an
/// empty value drops the flag). A case with an `image` (under tests/fixtures/) is an img2vid job
/// on its `folder`, with its `last_image` a first-last-frame one.
pub(crate) fn run_listed(meta: &serde_json::Value, name: &str, extra: &[(&str, &str)]) -> Clip {
    run_in(("wan-pipeline", &model()), meta, name, extra)
}

/// [`run_listed`] for the references under tests/fixtures/`refs` of a case without a `folder`
/// on `default_model`.
pub(crate) fn run_in(
    (refs, default_model): (&str, &Path),
    meta: &serde_json::Value,
    name: &str,
    extra: &[(&str, &str)],
) -> Clip {
    let c = &meta["cases"][name];
    let noise = fixture(&format!("{refs}/{name}_noise.npy"));
    let mut flags: Vec<(String, String)> = vec![
        ("--prompt".into(), meta["prompt"].as_str().unwrap().into()),
        (
            "--init-latents".into(),
            noise.to_string_lossy().into_owned(),
        ),
        ("--fps".into(), "12".into()),
    ];
    match c["image"].as_str() {
        Some(image) => {
            let image = fixture(image).to_string_lossy().into_owned();
            flags.push(("--init-image".into(), image));
            flags.push(("--kind".into(), "img2vid".into()));
        }
        None => flags.push(("--kind".into(), "txt2vid".into())),
    }
    if let Some(last) = c["last_image"].as_str() {
        let last = fixture(last).to_string_lossy().into_owned();
        flags.push(("--last-image".into(), last));
    }
    for k in ["steps", "guidance", "width", "height", "frames"] {
        flags.push((format!("--{k}"), c[k].to_string()));
    }
    for (flag, value) in extra {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(slot) => slot.1 = (*value).to_owned(),
            None => flags.push(((*flag).to_owned(), (*value).to_owned())),
        }
    }
    let run = Run::new();
    let folder = match c["folder"].as_str() {
        Some(folder) => fixture(folder),
        None if c["ti2v"] == true => fixture("wan-ti2v-tiny"),
        None => default_model.to_path_buf(),
    };
    let mut cmd = run.command();
    cmd.args(["--json", "--dtype", "f32", "--seed", "0"])
        .arg("--model")
        .arg(folder)
        .arg("--save-frames");
    for (flag, value) in flags.iter().filter(|(_, v)| !v.is_empty()) {
        cmd.args([flag, value]);
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{name} {extra:?}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output.stdout);
    let progress = lines.iter().filter(|v| v["event"] == "progress").count();
    let done = lines.iter().find(|v| v["event"] == "done").unwrap();
    let outputs = done["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    Clip {
        run,
        outputs,
        progress,
    }
}

/// Mean |ours - diffusers| on the 0-255 scale over every frame of case `name`.
pub(crate) fn frames_diff(name: &str, pngs: &[PathBuf]) -> f64 {
    frames_diff_in("wan-pipeline", name, pngs)
}

/// [`frames_diff`] against the references under tests/fixtures/`refs`.
pub(crate) fn frames_diff_in(refs: &str, name: &str, pngs: &[PathBuf]) -> f64 {
    let reference = Tensor::read_npy(fixture(&format!("{refs}/{name}_frames.npy"))).unwrap();
    let (f, h, w, _) = reference.dims4().unwrap();
    assert_eq!(pngs.len(), f, "{name}: one PNG a frame");
    let theirs: Vec<f32> = reference
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut ours = Vec::with_capacity(theirs.len());
    for png in pngs {
        let img = image::open(png).unwrap().to_rgb8();
        assert_eq!((img.width() as usize, img.height() as usize), (w, h));
        ours.extend(img.as_raw().iter().map(|&b| f32::from(b) / 255.0));
    }
    parity::mean_abs_diff_255(&ours, &theirs)
}

pub(crate) fn check_mp4(mp4: &Path, frames: u64, (w, h): (u64, u64), fps: u32) {
    if !ffmpeg_present() {
        return;
    }
    let info = probe(mp4);
    let s = &info["streams"][0];
    assert_eq!(s["codec_name"], "h264", "{info}");
    assert_eq!(s["width"], w);
    assert_eq!(s["height"], h);
    assert_eq!(s["nb_read_frames"], frames.to_string());
    assert_eq!(s["r_frame_rate"], format!("{fps}/1"));
}

#[test]
fn headless_wan_clips_match_diffusers() {
    let meta = cases();
    for name in ["f5", "f9", "ti2v"] {
        let c = &meta["cases"][name];
        let clip = run_case(name, &[]);
        assert_eq!(clip.progress as u64, c["steps"].as_u64().unwrap(), "{name}");
        let (mp4, pngs) = clip.outputs.split_first().unwrap();
        assert_eq!(mp4.extension().unwrap(), "mp4", "{name}: the .mp4 first");
        assert!(mp4.with_extension("json").is_file(), "{name}: the sidecar");
        let mut sorted = pngs.to_vec();
        sorted.sort();
        assert_eq!(
            sorted, pngs,
            "{name}: frames listed in the order their names sort"
        );
        let mad = frames_diff(name, pngs);
        eprintln!("wan {name}: mean abs diff {mad:.4} (0-255)");
        assert!(mad <= parity::IMAGE_TOL_255, "{name}: mean abs diff {mad}");
        let frames = c["frames"].as_u64().unwrap();
        let size = (c["width"].as_u64().unwrap(), c["height"].as_u64().unwrap());
        check_mp4(mp4, frames, size, 12);
        // The .mp4, its sidecar and the frames: nothing else written.
        assert_eq!(clip.run.files().len(), pngs.len() + 2);
    }
}

/// The prompt, the guidance scale and the step count each move the frames well past the
/// tolerance, so the parity test above can fail.
#[test]
fn wan_prompt_guidance_and_steps_move_the_clip() {
    for extra in [
        ("--prompt", "a blue whale sings under the arctic ice"),
        ("--guidance", "1.0"),
        ("--steps", "2"),
    ] {
        let clip = run_case("f5", &[extra]);
        let mad = frames_diff("f5", &clip.outputs[1..]);
        eprintln!("wan f5 {extra:?}: mean abs diff {mad:.4}");
        assert!(mad > 2.0 * parity::IMAGE_TOL_255, "{extra:?}: {mad}");
    }
}

#[test]
fn wan_sidecar_serves_info_and_from_image() {
    let clip = run_case("f5", &[]);
    let mp4 = &clip.outputs[0];
    let info = clip.run.command().arg("info").arg(mp4).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(text.contains("kind: txt2vid"), "{text}");
    assert!(text.contains("5 frames at 12 fps, 96x64"), "{text}");
    // The same job again from the video: the same frames.
    let again = clip
        .run
        .command()
        .args(["--json", "--dtype", "f32", "--from-image"])
        .arg(mp4)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let lines = json_lines(&again.stdout);
    let done = lines.iter().find(|v| v["event"] == "done").unwrap();
    let outs: Vec<PathBuf> = done["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(outs.len(), 6);
    assert!(frames_diff("f5", &outs[1..]) <= parity::IMAGE_TOL_255);
}

/// A headless Wan job with `extra` flags must exit 2, say every one of `needles` and write
/// nothing.
pub(crate) fn assert_refused(model: &Path, extra: &[&str], needles: &[&str]) {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(model)
        .args(["--prompt", "x", "--steps", "1"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{extra:?}: {n:?} not in {stderr}");
    }
    assert!(run.files().is_empty(), "{extra:?}: {:?}", run.files());
}

#[test]
fn wan_bad_inputs_exit_2_with_nothing_written() {
    let wan = model();
    let png = fixture("images/init.png");
    let png = png.to_str().unwrap();
    assert_refused(&wan, &["--frames", "32"], &["4n+1", "try 29 or 33"]);
    assert_refused(&wan, &["--frames", "100001"], &["--frames 100001"]);
    assert_refused(&wan, &["--fps", "0"], &["--fps"]);
    assert_refused(&wan, &["--fps", "100000"], &["--fps 100000"]);
    assert_refused(
        &wan,
        &["--width", "104", "--height", "64"],
        &["multiples of 16"],
    );
    assert_refused(&wan, &["--init-image", png], &["text-to-video only"]);
    assert_refused(&wan, &["--kind", "img2vid"], &["text-to-video only"]);
    assert_refused(&wan, &["--batch", "2"], &["--batch"]);
    let noise = fixture("wan-pipeline/f9_noise.npy");
    let noise = noise.to_str().unwrap();
    assert_refused(
        &wan,
        &[
            "--frames",
            "5",
            "--width",
            "96",
            "--height",
            "64",
            "--init-latents",
            noise,
        ],
        &["--init-latents", "shape"],
    );
    // Video flags on an image model, and a video kind on an image model.
    let sd = fixture("sd1-tiny");
    assert_refused(&sd, &["--frames", "5"], &["--frames", "video"]);
    assert_refused(&sd, &["--kind", "txt2vid"], &["video model"]);
}

/// Staged residency (each component loaded for its stage) makes the same frames.
#[test]
fn wan_staged_matches_diffusers_too() {
    let clip = run_case("f5", &[("--residency", "staged")]);
    let mad = frames_diff("f5", &clip.outputs[1..]);
    assert!(mad <= parity::IMAGE_TOL_255, "staged: {mad}");
}

#[test]
fn wan_plan_names_its_stages_and_writes_nothing() {
    let run = Run::new();
    let output = run
        .command()
        .arg("--model")
        .arg(model())
        .args(["--prompt", "x", "--plan", "--json", "--dtype", "f32"])
        .args(["--width", "96", "--height", "64", "--frames", "9"])
        .args(["--residency", "staged"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stages = plan_stages(&plan);
    assert_eq!(
        stages,
        [
            "load text encoder",
            "encode prompt (UMT5)",
            "load transformer",
            "denoise (transformer)",
            "load vae",
            "vae decode"
        ],
        "{plan}"
    );
    assert_eq!(plan["residency"], "staged", "{plan}");
    assert!(run.files().is_empty());
    // A budget nothing fits in: exit 2 with what would fit.
    let output = run
        .command()
        .arg("--model")
        .arg(model())
        .args([
            "--prompt",
            "x",
            "--plan",
            "--json",
            "--memory-budget",
            "1MB",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not enough memory"), "{stderr}");
}

/// UMT5 from a Q8_0 GGUF (`--text-encoder-2`, kept quantized): the clip is made, close to the
/// dense encoder's (8-bit weights move it a little), and recorded in the sidecar.
#[test]
fn wan_umt5_from_a_gguf() {
    let gguf = fixture("wan-t2v-tiny/gguf/umt5-encoder-Q8_0.gguf");
    let clip = run_case("f5", &[("--text-encoder-2", gguf.to_str().unwrap())]);
    let mad = frames_diff("f5", &clip.outputs[1..]);
    eprintln!("wan f5 with a Q8_0 UMT5: mean abs diff {mad:.4}");
    assert!(mad < 2.0, "Q8_0 UMT5: {mad}");
    let sidecar = std::fs::read_to_string(clip.outputs[0].with_extension("json")).unwrap();
    assert!(sidecar.contains("umt5-encoder-Q8_0.gguf"), "{sidecar}");
}
