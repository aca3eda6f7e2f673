//! The parity tests can fail: every pair of committed references that a parity test tells apart
//! differs by more than twice that test's tolerance (an output within the tolerance of one
//! reference is then outside it for the other), and every comparison helper fails on NaN and
//! infinity. Reads only the committed files (tests/fixtures/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use pallaidium::engines::nn::compare;

use crate::parity;

const MODELS: [&str; 4] = ["sd1-tiny", "sd1-inpaint-tiny", "sd2-tiny", "sdxl-tiny"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One whole-pipeline reference image, portrait ones transposed to landscape.
struct Image {
    name: String,
    dims: Vec<usize>,
    values: Vec<f32>,
}

fn pipeline_references() -> Vec<Image> {
    let mut out = Vec::new();
    for model in MODELS {
        let dir = fixtures().join(model).join("reference");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.starts_with("pipeline_") && name.ends_with(".safetensors")
            })
            .collect();
        files.sort();
        for file in files {
            let name = format!("{model}/{}", file.file_stem().unwrap().to_str().unwrap());
            let json = parity::reference_json_lenient(&file.with_extension("json"));
            let (w, h) = (
                json["width"].as_u64().unwrap(),
                json["height"].as_u64().unwrap(),
            );
            assert_ne!(w, h, "{name}: whole-pipeline references are not square");
            let image = parity::get(&parity::reference_tensors(&file), "image").clone();
            assert_eq!(image.dims(), &[1, h as usize, w as usize, 3], "{name}");
            let image = if h > w {
                image.transpose(1, 2).unwrap().contiguous().unwrap()
            } else {
                image
            };
            out.push(Image {
                name,
                dims: image.dims().to_vec(),
                values: parity::image_values(&image),
            });
        }
    }
    out
}

#[test]
fn every_pair_of_pipeline_references_differs_by_more_than_twice_the_tolerance() {
    let refs = pipeline_references();
    assert!(refs.len() >= 17, "only {} references", refs.len());
    assert!(
        refs.iter()
            .filter(|r| r.name.ends_with("_portrait"))
            .count()
            >= 2,
        "a transposed-size reference per model family"
    );
    let mut closest = (f64::INFINITY, String::new());
    let mut pairs = 0;
    for (i, a) in refs.iter().enumerate() {
        for b in &refs[i + 1..] {
            assert_eq!(a.dims, b.dims, "{} and {}", a.name, b.name);
            let d = parity::mean_abs_diff_255(&a.values, &b.values);
            eprintln!("{} vs {}: {d:.2}", a.name, b.name);
            assert!(
                d.is_finite() && d > 2.0 * parity::IMAGE_TOL_255,
                "{} and {} differ by only {d:.3} (0-255): a parity test within {} of one \
                 cannot tell it from the other",
                a.name,
                b.name,
                parity::IMAGE_TOL_255
            );
            if d < closest.0 {
                closest = (d, format!("{} vs {}", a.name, b.name));
            }
            pairs += 1;
        }
    }
    eprintln!("{pairs} pairs, closest {}: {:.2}", closest.1, closest.0);
}

/// `ours` and `alternative` (what a plausible bug would produce) must differ by more than twice
/// the tensor tolerance.
fn assert_apart(what: &str, a: &Tensor, b: &Tensor) {
    let d = parity::rel_diff(a, b);
    eprintln!("{what}: {d:e}");
    assert!(
        d.is_finite() && d > 2.0 * parity::TENSOR_REL_TOL,
        "{what}: only {d:e} apart"
    );
}

#[test]
fn network_references_tell_their_alternatives_apart() {
    let vae =
        parity::reference_tensors(&fixtures().join("sd1-tiny/reference/vae_tiled.safetensors"));
    let t = |k: &str| parity::get(&vae, k);
    assert_apart("tiled vs whole decode", t("tiled_decoded"), t("decoded"));
    assert_apart(
        "tiled vs whole encode",
        t("tiled_latent_mean"),
        t("latent_mean"),
    );
    let (_, _, h, w) = t("latents").dims4().unwrap();
    assert!(
        h > 8 && w > 8 && h != w,
        "the tiled latent {h}x{w} must tile both ways"
    );
    for model in MODELS {
        let text =
            parity::reference_tensors(&fixtures().join(model).join("reference/text.safetensors"));
        let t = |k: &str| parity::get(&text, k);
        assert_apart(
            &format!("{model} prompt vs negative"),
            t("prompt_embeds"),
            t("negative_prompt_embeds"),
        );
        assert_apart(
            &format!("{model} last vs penultimate"),
            t("last_hidden_state"),
            t("penultimate_hidden_state"),
        );
    }
}

#[test]
fn scheduler_trajectories_of_four_or_more_steps_differ_between_schedulers() {
    // With 1 or 2 steps several schedulers are the same update (DPM++ 2M's first step is
    // DDIM's; Euler Ancestral at sigma 0 is Euler): parity_schedulers tells those apart by their
    // timesteps and sigmas, not their samples. A reference diffusers could not compute in f32
    // (`traj_finite: false`) checks no samples at all.
    let dir = fixtures().join("schedulers");
    let meta = parity::reference_json_lenient(&dir.join("scheduler_refs.json"));
    let tensors = parity::reference_tensors(&dir.join("scheduler_refs.safetensors"));
    let cases: Vec<_> = meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["steps"].as_u64().unwrap() >= 4 && c["traj_finite"].as_bool().unwrap())
        .collect();
    let last = |c: &serde_json::Value| {
        let traj = parity::get(&tensors, &format!("{}/traj", c["key"].as_str().unwrap()));
        traj.get(traj.dim(0).unwrap() - 1).unwrap()
    };
    let mut pairs = 0;
    for (i, a) in cases.iter().enumerate() {
        for b in &cases[i + 1..] {
            if (&a["config"], &a["steps"]) != (&b["config"], &b["steps"]) {
                continue;
            }
            let what = format!("{} vs {}", a["key"], b["key"]);
            assert_apart(&what, &last(a), &last(b));
            pairs += 1;
        }
    }
    assert!(pairs >= 50, "only {pairs} scheduler pairs");
}

/// A NaN or an infinity at the start, in the middle or at the end, on either side.
fn poisoned(good: &[f32]) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for at in [0, good.len() / 2, good.len() - 1] {
            let mut v = good.to_vec();
            v[at] = bad;
            out.push((format!("{bad} at {at}"), v));
        }
    }
    out.push(("all NaN".into(), vec![f32::NAN; good.len()]));
    out
}

#[test]
fn every_comparison_fails_on_nan_and_infinity() {
    let good: Vec<f32> = (0..12).map(|i| i as f32 / 12.0).collect();
    let tensor = |v: &[f32]| Tensor::from_slice(v, (1, 2, 2, 3), &Device::Cpu).unwrap();
    let pixels: Vec<u8> = good.iter().map(|v| (v * 255.0).round() as u8).collect();
    assert!(parity::image_mean_abs_diff(&pixels, &tensor(&good)) < 1.0);
    for (what, bad) in poisoned(&good) {
        for (a, b) in [(&bad, &good), (&good, &bad)] {
            let d = parity::rel_diff(&tensor(a), &tensor(b));
            assert_eq!(d, f32::INFINITY, "rel_diff, {what}");
            assert_eq!(
                parity::mean_abs_diff_255(a, b),
                f64::INFINITY,
                "mean_abs_diff_255, {what}"
            );
            assert_eq!(
                compare::max_rel_diff_slices(a, b),
                f32::INFINITY,
                "max_rel_diff_slices, {what}"
            );
        }
        assert_eq!(
            parity::image_mean_abs_diff(&pixels, &tensor(&bad)),
            f64::INFINITY,
            "image_mean_abs_diff, {what}"
        );
        let failed = std::panic::catch_unwind(|| {
            parity::assert_close("poisoned", &tensor(&bad), &tensor(&good), 1e-4)
        });
        assert!(failed.is_err(), "assert_close passed with {what}");
    }
}
