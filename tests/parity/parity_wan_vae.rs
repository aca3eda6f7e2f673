//! The Wan VAEs against diffusers' AutoencoderKLWan on tests/fixtures/wan-vae-tiny (2.1, 8x) and
//! wan22-vae-tiny (2.2: residual, 2x2 patches, 16x) (make_wan_vae.py): decodes of 1, 2 and 3
//! latent frames (1, 5 and 9 video frames) at 40x24 / 48x32 pixels, the encoder's
//! moments for 9 frames, and a tiled decode (4-latent tiles every 2), each within mean
//! |diff| <= 1/255 on frames mapped to [0, 1]; the latents move the output far beyond that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::wan::vae::WanVae;

const MEAN_TOL: f32 = 1.0 / 255.0;

const FIXTURES: [(&str, usize); 2] = [("wan-vae-tiny", 8), ("wan22-vae-tiny", 16)];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir(name).join("reference.safetensors"), &Device::Cpu).unwrap()
}

fn vae(name: &str, with_encoder: bool) -> WanVae {
    WanVae::load(
        &dir(name).join("vae"),
        &Device::Cpu,
        DType::F32,
        with_encoder,
        EngineSwitches::default(),
    )
    .unwrap()
}

/// (mean, max) |a - b| with both mapped from [-1, 1] to [0, 1]; NaN anywhere fails.
fn diff01(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert!(
        a.iter().chain(&b).all(|v| v.is_finite()),
        "NaN or infinity in the frames"
    );
    let d: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / 2.0).collect();
    let mean = d.iter().sum::<f32>() / d.len() as f32;
    (mean, d.iter().copied().fold(0.0, f32::max))
}

#[test]
fn wan_vae_decodes_like_diffusers() {
    for (name, ratio) in FIXTURES {
        let vae = vae(name, false);
        let r = reference(name);
        for t in [1usize, 2, 3] {
            let z = &r[&format!("decode{t}.z")];
            let want = &r[&format!("decode{t}.x")];
            let ours = vae.decode(z).unwrap();
            let (_, _, _, h, w) = z.dims5().unwrap();
            assert_eq!(
                ours.dims(),
                &[1, 3, vae.frames_for(t), h * ratio, w * ratio]
            );
            let (mean, max) = diff01(&ours, want);
            eprintln!("{name} decode, {t} latent frames: mean |diff| {mean:.2e}, max {max:.2e}");
            assert!(
                mean <= MEAN_TOL,
                "{name}, {t} latent frames: mean |diff| {mean}"
            );
            // The latents matter: other latents decode far from the reference.
            let other = vae.decode(&(z * -1.0).unwrap()).unwrap();
            let (moved, _) = diff01(&other, want);
            assert!(
                moved > 20.0 * MEAN_TOL,
                "{name}, {t}: other latents moved it {moved}"
            );
        }
    }
}

#[test]
fn wan_vae_encodes_like_diffusers() {
    for (name, _) in FIXTURES {
        let vae = vae(name, true);
        let r = reference(name);
        let want = &r["encode.h"];
        let ours = vae.encode_moments(&r["encode.x"]).unwrap();
        assert_eq!(ours.dims(), want.dims());
        let rel = pallaidium::engines::nn::compare::max_rel_diff(&ours, want).unwrap();
        eprintln!("{name} encode: max rel diff {rel:.2e}");
        assert!(rel <= 1e-4, "{name} encoder moments: rel diff {rel}");
        let other = vae
            .encode_moments(&(&r["encode.x"] * 0.5).unwrap())
            .unwrap();
        let moved = pallaidium::engines::nn::compare::max_rel_diff(&other, want).unwrap();
        assert!(
            moved > 0.05,
            "{name}: the frames moved the moments by {moved}"
        );
    }
}

#[test]
fn wan_vae_tiled_decode_matches_diffusers_tiles() {
    for (name, _) in FIXTURES {
        let vae = vae(name, false);
        let r = reference(name);
        let z = &r["tiled.z"];
        let want = &r["tiled.x"];
        // diffusers' enable_tiling(4r, 4r, 2r, 2r): 4-latent tiles overlapping by 2.
        let ours = vae.tiled_decode(z, 4, 2).unwrap();
        let (mean, max) = diff01(&ours, want);
        eprintln!("{name} tiled decode: mean |diff| {mean:.2e}, max {max:.2e}");
        assert!(mean <= MEAN_TOL, "{name} tiled: mean |diff| {mean}");
        // A tile that covers the latents decodes them whole: equal to the untiled decode.
        let whole = vae.decode(z).unwrap();
        let one_tile = vae.tiled_decode(z, 8, 2).unwrap();
        let (same, _) = diff01(&one_tile, &whole);
        assert!(
            same == 0.0,
            "{name}: one tile differs from the whole decode by {same}"
        );
        // Small tiles on this tiny random VAE (global attention in its mid block) are not the
        // whole decode: the tiling is real.
        let (apart, _) = diff01(&ours, &whole);
        assert!(
            apart > MEAN_TOL,
            "{name}: tiles equal the whole decode ({apart})"
        );
    }
}

#[test]
fn wan_vae_latent_statistics_round_trip() {
    let vae = vae(FIXTURES[0].0, false);
    let z = Tensor::randn(0f32, 1.0, (1, 4, 2, 3, 5), &Device::Cpu).unwrap();
    let n = vae.normalize(&z).unwrap();
    let back = vae.denormalize(&n).unwrap();
    let rel = pallaidium::engines::nn::compare::max_rel_diff(&back, &z).unwrap();
    assert!(rel < 1e-6);
    // Channel 1: (z - (-0.2)) / 0.8.
    let c1 = |t: &Tensor| {
        t.narrow(1, 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for (a, b) in c1(&z).iter().zip(c1(&n)) {
        assert!(((a + 0.2) / 0.8 - b).abs() < 1e-5);
    }
}
