//! `--plan` plans the size a job will really run at: with an `--init-image` and no
//! `--width`/`--height` that is the image's size (scaled down to the limit, rounded to a multiple
//! of 8), and both the plan and the job say so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::run;
use run::{Run, fixture};

fn write_png(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let path = dir.join(name);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    img.save(&path).unwrap();
    path
}

/// `--plan --json` on sd1-tiny with `extra`: the plan and stderr.
fn plan(run: &Run, extra: &[&str]) -> (serde_json::Value, String) {
    let out = run
        .command()
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--prompt", "x", "--plan", "--json", "--dtype", "f32"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // 0 when it fits this machine, 2 when not: the plan is printed either way.
    assert!(matches!(out.status.code(), Some(0 | 2)), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn the_plan_of_an_img2img_job_is_made_at_the_init_images_size() {
    let run = Run::new();
    std::fs::create_dir_all(run.dir.path()).unwrap();
    let photo = write_png(run.dir.path(), "photo.png", 4032, 3024);
    let photo = photo.to_str().unwrap();
    let (from_image, stderr) = plan(&run, &["--init-image", photo]);
    let (explicit, _) = plan(
        &run,
        &["--init-image", photo, "--width", "4032", "--height", "3024"],
    );
    let (small, _) = plan(
        &run,
        &["--init-image", photo, "--width", "64", "--height", "64"],
    );
    assert_eq!(from_image["peak_bytes"], explicit["peak_bytes"]);
    assert!(
        from_image["peak_bytes"].as_u64().unwrap() > 10 * small["peak_bytes"].as_u64().unwrap(),
        "{from_image} vs {small}"
    );
    let warning = from_image["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("4032x3024 is taken from --init-image"),
        "{warning}"
    );
    assert!(stderr.contains("warning: the size 4032x3024"), "{stderr}");
    assert!(explicit.get("warnings").is_none(), "{explicit}");
}

#[test]
fn a_larger_image_is_scaled_to_the_limit_and_the_plan_says_so() {
    let run = Run::new();
    std::fs::create_dir_all(run.dir.path()).unwrap();
    let wide = write_png(run.dir.path(), "wide.png", 8192, 100);
    let (plan, _) = plan(&run, &["--init-image", wide.to_str().unwrap()]);
    let warning = plan["warnings"][0].as_str().unwrap();
    assert!(warning.contains("the size 4096x64"), "{warning}");
    assert!(warning.contains("8192x100, scaled down"), "{warning}");
}

#[test]
fn a_job_at_the_images_size_warns_and_runs_at_that_size() {
    let run = Run::new();
    std::fs::create_dir_all(run.dir.path()).unwrap();
    let odd = write_png(run.dir.path(), "odd.png", 100, 70);
    let out = run
        .command()
        .arg("--model")
        .arg(fixture("sd1-tiny"))
        .args(["--prompt", "x", "--steps", "2", "--init-image"])
        .arg(&odd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the size 96x64 is taken from --init-image")
            && stderr.contains("rounded to a multiple of 8"),
        "{stderr}"
    );
    let png = run
        .files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    assert_eq!(image::image_dimensions(&png).unwrap(), (96, 64));
}
