//! First-last-frame-to-video through the real `--headless` binary (issue 22, `--last-image`):
//! Wan 2.1 FLF2V-shaped tests/fixtures/wan-flf2v-tiny (wan-i21-tiny with an image embedder over
//! two images' CLIP tokens, `pos_embed_seq_len`). For diffusers' noise (`--init-latents`) and
//! non-square first and last images resized to the clip, the frames equal diffusers'
//! `WanImageToVideoPipeline(image=..., last_image=...)` frames (tests/fixtures/make_wan_i2v.py)
//! within mean |diff| <= 1/255, staged residency too; another last image moves the clip more
//! than that, the last frames most; models that take no last frame refuse it and the FLF2V
//! model needs it (diffusers fails without one); bad input exits 2 with nothing written.

use std::path::PathBuf;

use crate::cli_wan::{assert_refused, frames_diff, run_listed};
use crate::cli_wan_i2v::frame_diff;
use crate::parity;
use crate::run::fixture;

const CASE: &str = "flf2v";

fn cases() -> serde_json::Value {
    parity::reference_json_lenient(&fixture("wan-pipeline/i2v_cases.json"))
}

fn flf2v() -> PathBuf {
    fixture("wan-flf2v-tiny")
}

#[test]
fn headless_wan_flf2v_matches_diffusers() {
    let meta = cases();
    let c = &meta["cases"][CASE];
    let clip = run_listed(&meta, CASE, &[]);
    assert_eq!(clip.progress as u64, c["steps"].as_u64().unwrap());
    let (mp4, pngs) = clip.outputs.split_first().unwrap();
    assert_eq!(mp4.extension().unwrap(), "mp4");
    let mad = frames_diff(CASE, pngs);
    eprintln!("wan flf2v: mean abs diff {mad:.4} (0-255)");
    assert!(mad <= parity::IMAGE_TOL_255, "mean abs diff {mad}");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mp4.with_extension("json")).unwrap())
            .unwrap();
    let text = sidecar.to_string();
    assert!(text.contains("\"img2vid\""), "{text}");
    assert!(text.contains("init_80x64.png"), "{text}");
    assert!(text.contains("\"last_image\""), "{text}");
    assert!(text.contains("init_wide.png"), "{text}");
    assert_eq!(clip.run.files().len(), pngs.len() + 2);
}

/// Another last image moves the clip past the tolerance, its end more than its start (frame
/// 0 is the first image's latent frame; the last image's is the last).
#[test]
fn wan_last_image_moves_the_clip_and_its_end_most() {
    let meta = cases();
    let other = fixture("images/init.png");
    let clip = run_listed(&meta, CASE, &[("--last-image", other.to_str().unwrap())]);
    let pngs = &clip.outputs[1..];
    let mad = frames_diff(CASE, pngs);
    let each: Vec<f64> = (0..pngs.len())
        .map(|i| frame_diff(CASE, &pngs[i], i))
        .collect();
    eprintln!("wan flf2v with another last image: mean abs diff {mad:.4}, frames {each:.3?}");
    assert!(mad > 2.0 * parity::IMAGE_TOL_255, "{mad}");
    let (first, last) = (each[0], each[each.len() - 1]);
    assert!(last > 2.0 * parity::IMAGE_TOL_255, "last frame: {last}");
    assert!(last > first, "first frame {first}, last frame {last}");
}

/// Staged residency (image encoder, VAE encoder, text encoder, transformer, VAE decoder each
/// loaded for its stage) makes the same clip.
#[test]
fn wan_flf2v_staged_matches_diffusers_too() {
    let clip = run_listed(&cases(), CASE, &[("--residency", "staged")]);
    let mad = frames_diff(CASE, &clip.outputs[1..]);
    eprintln!("wan flf2v staged: mean abs diff {mad:.4}");
    assert!(mad <= parity::IMAGE_TOL_255, "staged: {mad}");
}

#[test]
fn wan_last_image_bad_inputs_exit_2_with_nothing_written() {
    let size = ["--frames", "5", "--width", "96", "--height", "64"];
    let first = fixture("images/init_80x64.png");
    let last = fixture("images/init_wide.png");
    let (first, last) = (first.to_str().unwrap(), last.to_str().unwrap());
    let both = |extra: &[&'static str]| {
        let mut args = [&size[..], extra].concat();
        args.extend(["--init-image", first, "--last-image", last]);
        args
    };
    // A last image ends a clip that starts at an init image.
    let mut args = size.to_vec();
    args.extend(["--last-image", last]);
    assert_refused(&flf2v(), &args, &["--last-image", "--init-image"]);
    let mut args = size.to_vec();
    args.extend(["--kind", "img2vid", "--last-image", last]);
    assert_refused(&flf2v(), &args, &["--init-image"]);
    // The FLF2V model needs it (diffusers fails without one).
    let mut args = size.to_vec();
    args.extend(["--init-image", first]);
    assert_refused(&flf2v(), &args, &["first-last-frame", "--last-image"]);
    // Models that take no last frame: Wan 2.1 I2V, Wan 2.2 TI2V, text-to-video, LTX-Video.
    for folder in ["wan-i21-tiny", "wan-ti2v-tiny"] {
        assert_refused(
            &fixture(folder),
            &both(&[]),
            &["takes no last frame", "FLF2V"],
        );
    }
    assert_refused(
        &fixture("wan-t2v-tiny"),
        &both(&[]),
        &["text-to-video only"],
    );
    assert_refused(
        &fixture("ltx-tiny"),
        &[
            "--frames",
            "9",
            "--width",
            "64",
            "--height",
            "64",
            "--init-image",
            first,
            "--last-image",
            last,
        ],
        &["LTX-Video does not take a last frame"],
    );
    // One frame has no last.
    let mut args = vec!["--frames", "1", "--width", "96", "--height", "64"];
    args.extend(["--init-image", first, "--last-image", last]);
    assert_refused(&flf2v(), &args, &["--last-image", "2 frames"]);
    // Unreadable images.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    let missing = dir.path().join("missing.png");
    for path in [&junk, &missing] {
        let mut args = size.to_vec();
        args.extend([
            "--init-image",
            first,
            "--last-image",
            path.to_str().unwrap(),
        ]);
        assert_refused(&flf2v(), &args, &["--last-image"]);
    }
    // Not a video job.
    assert_refused(
        &fixture("sd1-tiny"),
        &["--init-image", first, "--last-image", last],
        &["--last-image is for video jobs"],
    );
}
