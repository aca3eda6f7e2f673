//! Black-box tests of upscaling through `pallaidium --headless`: `--kind upscale` (and `--image`
//! alone) with the tiny Real-ESRGAN fixtures writes the upscaled PNG (alpha kept) equal to the
//! reference, with its parameters stored; `--upscale 2` after a tiny SD txt2img writes the larger
//! image carrying both jobs' parameters; bad models, scales and images exit 2 with nothing written.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli_audio_text::{bad_input, run_ok};
use crate::parity::image_levels_diff;
use crate::run::{Run, fixture};

fn up(name: &str) -> PathBuf {
    fixture(&format!("upscale/{name}"))
}

/// The paths of the `done` event.
fn outputs(events: &[Value]) -> Vec<PathBuf> {
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event in {events:?}"));
    done["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect()
}

fn stored(path: &Path) -> pallaidium::jobs::output::png_meta::StoredParams {
    pallaidium::jobs::output::png_meta::read_parameters(path).unwrap()
}

#[test]
fn kind_upscale_writes_the_reference_image_with_alpha_and_parameters() {
    for tile in [None, Some("32")] {
        let run = Run::new();
        let mut cmd = run.command();
        cmd.args(["--kind", "upscale", "--image"])
            .arg(up("in_rgba.png"))
            .arg("--model")
            .arg(up("compact_x4.safetensors"));
        if let Some(t) = tile {
            cmd.args(["--tile", t]);
        }
        let files = outputs(&run_ok(&mut cmd));
        assert_eq!(files.len(), 1);
        assert_eq!(run.files(), files, "only the PNG is written");
        let ours = image::open(&files[0]).unwrap();
        assert_eq!(ours.color(), image::ColorType::Rgba8);
        let theirs = image::open(up("ref_compact_x4_rgba.png")).unwrap();
        assert!(image_levels_diff(&ours, &theirs) <= 1.0);
        let meta = stored(&files[0]);
        let parameters = meta.parameters.unwrap();
        assert!(
            parameters.contains("Postprocess upscale by: 4"),
            "{parameters}"
        );
        let spec = meta.spec.unwrap();
        assert_eq!(spec.kind, pallaidium::vocab::JobKind::Upscale);
    }
}

#[test]
fn image_alone_means_upscale_and_the_x2_model_sets_the_scale() {
    let run = Run::new();
    let files = outputs(&run_ok(
        run.command()
            .arg("--image")
            .arg(up("in_rgb.png"))
            .arg("--model")
            .arg(up("rrdb_x2.safetensors")),
    ));
    let ours = image::open(&files[0]).unwrap();
    assert_eq!((ours.width(), ours.height()), (46, 34));
    let theirs = image::open(up("ref_rrdb_x2_rgb.png")).unwrap();
    assert!(image_levels_diff(&ours, &theirs) <= 1.0);
}

#[test]
fn upscale_after_txt2img_writes_the_larger_image_with_both_jobs_parameters() {
    let run = Run::new();
    let mut cmd = run.command();
    cmd.arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--prompt", "a red fox", "--width", "64", "--height", "64"])
        .args([
            "--steps",
            "2",
            "--seed",
            "7",
            "--upscale",
            "2",
            "--upscaler",
        ])
        .arg(up("rrdb_x2.safetensors"));
    let files = outputs(&run_ok(&mut cmd));
    assert_eq!(files.len(), 1);
    let image = image::open(&files[0]).unwrap();
    assert_eq!((image.width(), image.height()), (128, 128));
    let meta = stored(&files[0]);
    let parameters = meta.parameters.unwrap();
    for field in [
        "Steps: 2",
        "Seed: 7",
        "Size: 64x64",
        "Postprocess upscale by: 2",
    ] {
        assert!(parameters.contains(field), "{field} in {parameters}");
    }
    let spec = meta.spec.unwrap();
    let step = spec.image().unwrap().upscale.clone().unwrap();
    assert_eq!(step.scale, 2);
    assert!(
        step.model.ends_with("rrdb_x2.safetensors"),
        "{}",
        step.model
    );
    // The same job without the step: the generated image itself, smaller and different.
    let plain = Run::new();
    let files = outputs(&run_ok(
        plain
            .command()
            .arg("--model")
            .arg(fixture("sd1-tiny"))
            .args(["--prompt", "a red fox", "--width", "64", "--height", "64"])
            .args(["--steps", "2", "--seed", "7"]),
    ));
    let small = image::open(&files[0]).unwrap();
    assert_eq!((small.width(), small.height()), (64, 64));
}

#[test]
fn pickled_weights_are_refused_with_the_conversion() {
    let run = Run::new();
    let pth = run.dir.path().join("RealESRGAN_x4plus.pth");
    std::fs::write(&pth, b"PK\x03\x04 not really a zip").unwrap();
    bad_input(
        run.command()
            .args(["--kind", "upscale", "--image"])
            .arg(up("in_rgb.png"))
            .arg("--model")
            .arg(&pth),
        "params_ema",
        &run,
    );
}

#[test]
fn bad_scales_models_and_images_exit_2_with_nothing_written() {
    let run = Run::new();
    let job = |args: &[&str]| {
        let mut cmd = run.command();
        cmd.args(["--kind", "upscale", "--image"])
            .arg(up("in_rgb.png"));
        cmd.args(args);
        cmd
    };
    let x2 = up("rrdb_x2.safetensors");
    let x2 = x2.to_str().unwrap();
    bad_input(
        &mut job(&["--scale", "3", "--model", x2]),
        "must be 2 or 4",
        &run,
    );
    bad_input(
        &mut job(&["--scale", "4", "--model", x2]),
        "upscales by 2",
        &run,
    );
    bad_input(
        &mut job(&["--model", x2, "--tile", "8"]),
        "at least 32",
        &run,
    );
    // Not an upscaler: another network's safetensors.
    let other = fixture("sd1-tiny/vae/diffusion_pytorch_model.safetensors");
    bad_input(
        &mut job(&["--model", other.to_str().unwrap()]),
        "Real-ESRGAN",
        &run,
    );
    // The default upscaler is not in the (offline, empty) cache.
    bad_input(&mut job(&[]), "realesrgan-x4plus", &run);
    let garbage = run.dir.path().join("broken.png");
    std::fs::write(&garbage, b"\x89PNG\r\n\x1a\nnot an image").unwrap();
    bad_input(
        run.command()
            .args(["--kind", "upscale", "--model", x2, "--image"])
            .arg(&garbage),
        "--image",
        &run,
    );
    bad_input(
        run.command().args(["--kind", "upscale", "--model", x2]),
        "--image PATH",
        &run,
    );
    // The step after an image job.
    let sd = fixture("sd1-tiny");
    let image_job = |extra: &[&str]| {
        let mut cmd = run.command();
        cmd.arg("--model").arg(&sd);
        cmd.args([
            "--prompt", "x", "--width", "64", "--height", "64", "--steps", "1",
        ]);
        cmd.args(extra);
        cmd
    };
    bad_input(
        &mut image_job(&["--upscale", "3", "--upscaler", x2]),
        "must be 2 or 4",
        &run,
    );
    let x4 = up("compact_x4.safetensors");
    bad_input(
        &mut image_job(&["--upscale", "2", "--upscaler", x4.to_str().unwrap()]),
        "upscales by 4",
        &run,
    );
    bad_input(&mut image_job(&["--scale", "2"]), "--upscale", &run);
}

#[test]
fn plan_names_the_tile_size() {
    let run = Run::new();
    let out = run
        .command()
        .args([
            "--kind", "upscale", "--plan", "--json", "--tile", "64", "--image",
        ])
        .arg(up("in_rgb.png"))
        .arg("--model")
        .arg(up("rrdb_x4.safetensors"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tiles of 64 px"), "{text}");
}

#[test]
fn serve_takes_an_upscale_job_with_its_image_uploaded_and_never_by_path() {
    use serde_json::json;

    use crate::serve::{Server, b64};

    let server = Server::start(&[], &[]);
    let model = up("compact_x4.safetensors");
    let named = server.post_json(
        "/api/v1/jobs",
        &json!({"job": {"kind": "upscale", "model": model, "image": up("in_rgb.png")}}),
    );
    assert_eq!(named.status, 422, "{}", named.message());
    assert!(named.message().contains("job.image"), "{}", named.message());
    let bytes = std::fs::read(up("in_rgba.png")).unwrap();
    let reply = server.post_json(
        "/api/v1/jobs",
        &json!({"job": {"kind": "upscale", "model": model}, "files": {"image": b64(&bytes)}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.message());
    let job = reply.json();
    assert_eq!(job["spec"]["kind"], "upscale");
    let id = job["id"].as_i64().unwrap();
    let events = server.events(&format!("/api/v1/jobs/{id}/events"), None, 1000);
    let last = &events.last().unwrap().data;
    assert_eq!(last["event"], "done", "{events:?}");
    let output = server.get(&format!("/api/v1/jobs/{id}/outputs/0"));
    assert_eq!(output.status, 200);
    let ours = image::load_from_memory(&output.body).unwrap();
    let theirs = image::open(up("ref_compact_x4_rgba.png")).unwrap();
    assert!(image_levels_diff(&ours, &theirs) <= 1.0);
}

#[test]
fn a_job_file_takes_upscale_keys_with_paths_relative_to_it() {
    let run = Run::new();
    let dir = run.dir.path().join("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "in_rgb.png",
        "rrdb_x2.safetensors",
        "compact_x4.safetensors",
    ] {
        std::fs::copy(up(name), dir.join(name)).unwrap();
    }
    let file = dir.join("jobs.toml");
    std::fs::write(
        &file,
        "[[job]]\nkind = \"upscale\"\nimage = \"in_rgb.png\"\nmodel = \"compact_x4.safetensors\"\n\n\
         [[job]]\nmodel = \"rrdb_x2.safetensors\"\nimage = \"in_rgb.png\"\nscale = 2\ntile = 32\n",
    )
    .unwrap();
    let events = run_ok(run.command().arg("--jobs").arg(&file));
    let sizes: Vec<(u32, u32)> = events
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| {
            let path = e["outputs"][0].as_str().unwrap();
            let img = image::open(path).unwrap();
            (img.width(), img.height())
        })
        .collect();
    assert_eq!(sizes, vec![(92, 68), (46, 34)], "{events:?}");
}

#[test]
fn from_image_runs_a_stored_upscale_again() {
    let run = Run::new();
    let first = outputs(&run_ok(
        run.command()
            .arg("--image")
            .arg(up("in_rgb.png"))
            .arg("--model")
            .arg(up("rrdb_x4.safetensors")),
    ));
    let again = outputs(&run_ok(run.command().arg("--from-image").arg(&first[0])));
    assert_ne!(first[0], again[0]);
    let (a, b) = (
        image::open(&first[0]).unwrap(),
        image::open(&again[0]).unwrap(),
    );
    assert_eq!(a.as_bytes(), b.as_bytes());
}
