//! The LTX-Video VAEs against diffusers' AutoencoderKLLTXVideo on tests/fixtures/ltx090-vae-tiny
//! (0.9.0's layout, causal decoder) and ltx095-vae-tiny (0.9.5's: space-to-depth encoder,
//! residual upsamplers, timestep conditioning), made by make_ltx.py: decodes of 2 and 3 latent
//! frames (non-square) and the encoder's moments, each within 2e-5 relative to diffusers' f32
//! output; the latents (and the decode timestep) move the output far beyond that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::ltx::vae::LtxVae;
use pallaidium::engines::nn::compare::max_rel_diff;

use crate::parity::reference_tensors;

const REL_TOL: f32 = 2e-5;
const FIXTURES: [&str; 2] = ["ltx090-vae-tiny", "ltx095-vae-tiny"];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    reference_tensors(&dir(name).join("reference.safetensors"))
}

fn vae(name: &str, with_encoder: bool) -> LtxVae {
    LtxVae::load(
        &dir(name).join("vae"),
        &Device::Cpu,
        DType::F32,
        with_encoder,
        EngineSwitches::default(),
    )
    .unwrap()
}

#[test]
fn ltx_vae_decodes_like_diffusers() {
    for name in FIXTURES {
        let vae = vae(name, false);
        let r = reference(name);
        for t in [2usize, 3] {
            let z = &r[&format!("decode{t}.z")];
            let want = &r[&format!("decode{t}.x")];
            let temb = r.get(&format!("decode{t}.temb"));
            assert_eq!(temb.is_some(), vae.timestep_conditioned());
            let ours = vae.decode(z, temb).unwrap();
            assert_eq!(ours.dim(2).unwrap(), vae.frames_for(t));
            assert_eq!(ours.dims(), want.dims());
            let rel = max_rel_diff(&ours, want).unwrap();
            eprintln!("{name} decode, {t} latent frames: max rel diff {rel:.2e}");
            assert!(rel <= REL_TOL, "{name}, {t} latent frames: rel diff {rel}");
            let other = vae.decode(&(z * -1.0).unwrap(), temb).unwrap();
            let moved = max_rel_diff(&other, want).unwrap();
            assert!(moved > 0.1, "{name}, {t}: other latents moved it {moved}");
            if let Some(temb) = temb {
                // The decode timestep matters and is followed: diffusers' decode at 0.5.
                let t2 = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
                let ours2 = vae.decode(z, Some(&t2)).unwrap();
                let want2 = &r[&format!("decode{t}.x_t2")];
                let rel2 = max_rel_diff(&ours2, want2).unwrap();
                assert!(rel2 <= REL_TOL, "{name}, timestep 0.5: rel diff {rel2}");
                let moved = max_rel_diff(&ours2, want).unwrap();
                assert!(
                    moved > 0.05,
                    "{name}: the timestep moved it {moved} ({temb})"
                );
                assert!(vae.decode(z, None).is_err());
            }
        }
    }
}

#[test]
fn ltx_vae_encodes_like_diffusers() {
    for name in FIXTURES {
        let vae = vae(name, true);
        let r = reference(name);
        let want = &r["encode.h"];
        let ours = vae.encode_moments(&r["encode.x"]).unwrap();
        assert_eq!(ours.dims(), want.dims());
        let rel = max_rel_diff(&ours, want).unwrap();
        eprintln!("{name} encode: max rel diff {rel:.2e}");
        assert!(rel <= REL_TOL, "{name} encoder moments: rel diff {rel}");
        let other = vae
            .encode_moments(&(&r["encode.x"] * 0.5).unwrap())
            .unwrap();
        let moved = max_rel_diff(&other, want).unwrap();
        assert!(
            moved > 0.05,
            "{name}: the frames moved the moments by {moved}"
        );
        // A frame count off the 1 + r n grid is refused.
        let x = r["encode.x"].narrow(2, 0, 2).unwrap();
        assert!(vae.encode_moments(&x).is_err());
    }
}

#[test]
fn ltx_vae_latent_statistics_round_trip() {
    let vae = vae(FIXTURES[1], false);
    let r = reference(FIXTURES[1]);
    let z = Tensor::randn(0f32, 1.0, (1, 4, 2, 3, 5), &Device::Cpu).unwrap();
    let n = vae.normalize(&z).unwrap();
    let back = vae.denormalize(&n).unwrap();
    assert!(max_rel_diff(&back, &z).unwrap() < 1e-6);
    // Channel 2 of the zero latents normalizes to -mean / std.
    let zero = Tensor::zeros((1, 4, 1, 1, 1), DType::F32, &Device::Cpu).unwrap();
    let got: Vec<f32> = vae
        .normalize(&zero)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mean: Vec<f32> = r["latents_mean"].to_vec1().unwrap();
    let std: Vec<f32> = r["latents_std"].to_vec1().unwrap();
    assert!((got[2] + mean[2] / std[2]).abs() < 1e-6, "{got:?}");
}
