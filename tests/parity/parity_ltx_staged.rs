//! LTX-Video's staged residency and tiled VAE decode (issue 22).
//! - Staged generate (T5, then the transformer, then the VAE, each loaded for its stage and
//!   dropped after; image-to-video: the VAE with its encoder first) makes the same frames as
//!   resident generate on tests/fixtures/ltx-tiny, text-to-video and image-to-video, and both
//!   stay within diffusers' frames; the stages are announced in order.
//! - `LtxVae::tiled_decode` against diffusers' own `enable_tiling()` decode of the tiny 0.9.5
//!   VAE (make_ltx_tiled.py: 32-pixel tiles every 24 on 56x80 frames, 3 x 4 tiles): within
//!   2e-5 relative, while the whole decode differs from it far beyond that at the seams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::EngineSwitches;
use pallaidium::engines::ltx::vae::{LtxVae, TILE_SAMPLE, TILE_SAMPLE_STRIDE, VaeTiles};
use pallaidium::engines::nn::compare::{max_abs_diff, max_rel_diff};
use pallaidium::engines::progress::{CancelToken, EngineEvent, NullSink};
use pallaidium::vocab::Residency;

use crate::parity::{reference_json_lenient, reference_tensors};
use crate::parity_ltx_pipeline::{as_np, fixture, mean_diff, pipeline, request};

const REL_TOL: f32 = 2e-5;

#[test]
fn ltx_staged_generate_equals_resident() {
    let meta = reference_json_lenient(&fixture("ltx-pipeline/cases.json"));
    let mut resident = pipeline(Residency::Resident);
    let mut staged = pipeline(Residency::Staged);
    assert_eq!(staged.residency(), Residency::Staged);
    let cancel = CancelToken::default();
    // Text-to-video first: the resident pipeline loads the VAE's encoder lazily for i2v.
    for (name, stages) in [
        ("f9", vec!["text_encoder", "transformer", "vae"]),
        ("i2v", vec!["vae", "text_encoder", "transformer", "vae"]),
    ] {
        let req = request(&meta, name);
        let want = Tensor::read_npy(fixture(&format!("ltx-pipeline/{name}_frames.npy"))).unwrap();
        let ours = resident.generate(&req, &NullSink, &cancel).unwrap();
        let events = Mutex::new(Vec::new());
        let sink = |e: EngineEvent| {
            if let EngineEvent::Loading { stage } = e {
                events.lock().unwrap().push(stage);
            }
        };
        let theirs = staged.generate(&req, &sink, &cancel).unwrap();
        let (diff, _) = max_abs_diff(&ours, &theirs).unwrap();
        eprintln!("ltx {name}: staged vs resident max |diff| {diff:.2e}");
        assert!(
            diff <= 1e-6,
            "{name}: staged differs from resident by {diff}"
        );
        assert_eq!(*events.lock().unwrap(), stages, "{name}");
        let to_diffusers = mean_diff(&as_np(&theirs), &want);
        assert!(to_diffusers <= 1.0 / 255.0, "{name}: {to_diffusers}");
        // Staged runs again (everything reloaded), here with tiling asked: the tiny clip fits
        // one of diffusers' 512-pixel tiles, so it decodes whole, as diffusers does.
        let mut tiled = req.clone();
        tiled.vae_tiling = true;
        let again = staged.generate(&tiled, &NullSink, &cancel).unwrap();
        let (diff, _) = max_abs_diff(&ours, &again).unwrap();
        assert!(
            diff <= 1e-6,
            "{name}: a second staged run differs by {diff}"
        );
        // The comparison can fail: another seed's noise moves the frames.
        let mut other = req.clone();
        other.init_latents = Some((req.init_latents.as_ref().unwrap() * -1.0).unwrap());
        let moved = staged.generate(&other, &NullSink, &cancel).unwrap();
        let (moved, _) = max_abs_diff(&ours, &moved).unwrap();
        assert!(
            moved > 0.05,
            "{name}: other noise moved the frames by {moved}"
        );
    }
}

#[test]
fn ltx_tiled_decode_matches_diffusers_tiled() {
    let r = reference_tensors(&fixture("ltx-vae-tiled/reference.safetensors"));
    let vae = LtxVae::load(
        &fixture("ltx095-vae-tiny/vae"),
        &Device::Cpu,
        DType::F32,
        false,
        EngineSwitches::default(),
    )
    .unwrap();
    let tile: Vec<i64> = r["tile"].to_vec1().unwrap();
    let tiles = VaeTiles {
        sample: tile[0] as usize,
        stride: tile[1] as usize,
    };
    assert_eq!(tiles.in_latents(8).unwrap(), (4, 3));
    let (z, temb, want) = (&r["z"], &r["temb"], &r["x_tiled"]);
    let ours = vae.tiled_decode(z, Some(temb), tiles).unwrap();
    assert_eq!(ours.dims(), want.dims());
    assert_eq!(ours.dims(), [1, 3, 5, 56, 80]);
    let rel = max_rel_diff(&ours, want).unwrap();
    eprintln!("ltx tiled decode vs diffusers tiled: max rel diff {rel:.2e}");
    assert!(rel <= REL_TOL, "tiled decode: rel diff {rel}");
    // The tiles matter: the whole decode differs from it far beyond the tolerance.
    let whole = vae.decode(z, Some(temb)).unwrap();
    let seam = max_rel_diff(&whole, want).unwrap();
    eprintln!("ltx whole decode vs diffusers tiled: max rel diff {seam:.2e}");
    assert!(seam > 100.0 * REL_TOL, "whole vs tiled: {seam}");
    // Latents that fit one tile decode whole: diffusers' default tiles on these latents.
    assert_eq!((TILE_SAMPLE, TILE_SAMPLE_STRIDE), (512, 448));
    assert_eq!(
        VaeTiles::default(),
        VaeTiles {
            sample: 512,
            stride: 448
        }
    );
    let fits = vae
        .tiled_decode(z, Some(temb), VaeTiles::default())
        .unwrap();
    let (diff, _) = max_abs_diff(&fits, &whole).unwrap();
    assert!(diff == 0.0, "one tile: {diff}");
    // Tiles that are not whole latents, or a stride not below the tile, are refused.
    for (sample, stride) in [(30, 24), (32, 20), (32, 32), (32, 0)] {
        let bad = VaeTiles { sample, stride };
        assert!(vae.tiled_decode(z, Some(temb), bad).is_err(), "{bad:?}");
    }
}
