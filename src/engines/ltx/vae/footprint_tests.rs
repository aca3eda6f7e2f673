use super::*;

/// LTX-Video 0.9.5's VAE (diffusers' config of Lightricks/LTX-Video-0.9.5).
fn ltx095() -> LtxVaeConfig {
    serde_json::from_str(
        r#"{"block_out_channels": [128, 256, 512, 1024, 2048],
            "decoder_block_out_channels": [256, 512, 1024],
            "decoder_layers_per_block": [5, 5, 5, 5],
            "decoder_spatio_temporal_scaling": [true, true, true],
            "decoder_inject_noise": [false, false, false, false],
            "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
                                 "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
            "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
            "layers_per_block": [4, 6, 6, 2, 2],
            "spatio_temporal_scaling": [true, true, true, true],
            "upsample_residual": [true, true, true],
            "upsample_factor": [2, 2, 2],
            "timestep_conditioning": true,
            "spatial_compression_ratio": 32,
            "temporal_compression_ratio": 8}"#,
    )
    .unwrap()
}

/// LTX-Video 0.9.0's (diffusers' defaults).
fn ltx090() -> LtxVaeConfig {
    serde_json::from_str("{}").unwrap()
}

const GIB: f64 = (1u64 << 30) as f64;

#[test]
fn bigger_decodes_need_more_and_tiles_need_less() {
    for cfg in [ltx095(), ltx090()] {
        cfg.check().unwrap();
        assert_eq!(cfg.spatial_ratio(), 32);
        // 768x512, 97 and 161 frames, bf16.
        let short = decode_footprint(&cfg, (13, 16, 24), 2, None);
        let long = decode_footprint(&cfg, (21, 16, 24), 2, None);
        let wide = decode_footprint(&cfg, (13, 22, 40), 2, None);
        assert!(long > short && wide > short, "{short} {long} {wide}");
        // Whole 161 frames at 768x512 take tens of GB in bf16, not bytes or terabytes.
        let gib = long as f64 / GIB;
        let tiled_long = decode_footprint(&cfg, (21, 16, 24), 2, Some((16, 14)));
        eprintln!(
            "768x512x161 bf16: whole {gib:.1} GiB, tiled {:.1} GiB; 1280x704x97: whole {:.1} \
             GiB",
            tiled_long as f64 / GIB,
            wide as f64 / GIB
        );
        assert!((4.0..200.0).contains(&gib), "{gib} GiB");
        // diffusers' tiles (16 latents every 14): a 1280x704 decode needs far less per tile.
        let tiled = decode_footprint(&cfg, (13, 22, 40), 2, Some((16, 14)));
        assert!(tiled < wide / 2, "tiled {tiled} vs whole {wide}");
        // Latents that fit one tile decode whole.
        let fits = decode_footprint(&cfg, (13, 16, 16), 2, Some((16, 14)));
        assert_eq!(fits, decode_footprint(&cfg, (13, 16, 16), 2, None));
        // f32 activations need more than bf16.
        assert!(decode_footprint(&cfg, (13, 16, 24), 4, None) > short);
    }
}

#[test]
fn the_peak_is_in_the_last_up_block() {
    // 0.9.5 at 768x512x161: the last stage is 128 channels x 161 frames x 192x128 pixels; the
    // peak holds several of those activations, well under twenty.
    let cfg = ltx095();
    let act = 128u64 * 161 * 192 * 128 * 2;
    let working = decoder_peak(&cfg, 21, 16 * 24, 2);
    let ratio = working as f64 / act as f64;
    assert!((4.0..20.0).contains(&ratio), "{ratio} activations");
}

/// A 0.9.5-shaped decoder at a quarter of its channels, one resnet a block, zero weights.
#[cfg(target_os = "linux")]
fn scaled() -> LtxVaeConfig {
    let mut cfg = ltx095();
    cfg.block_out_channels = vec![32, 64, 128, 256, 512];
    cfg.decoder_block_out_channels = vec![64, 128, 256];
    cfg.decoder_layers_per_block = vec![1; 4];
    cfg.layers_per_block = vec![1; 5];
    cfg
}

/// Peak RSS growth of CPU decodes against the estimate (f32). Run alone (it measures the
/// process): `cargo test --lib measured_peak -- --ignored --nocapture`.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "measures this process's peak RSS; run alone"]
fn measured_peak_matches_the_estimate() {
    use crate::engines::ltx::vae::{LtxVae, VaeTiles};
    use crate::engines::nn::kernels::Kernels;
    use candle_core::{DType, Device, Tensor};

    let cfg = scaled();
    let dev = Device::Cpu;
    let vb = candle_nn::VarBuilder::zeros(DType::F32, &dev);
    let vae = LtxVae::build(cfg.clone(), vb, false, Kernels::default()).unwrap();
    let t = Tensor::new(&[0.05f32], &dev).unwrap();
    type Case = ((usize, usize, usize), Option<(usize, usize)>);
    let cases: [Case; 4] = [
        ((2, 4, 6), None),
        ((3, 6, 8), None),
        ((3, 8, 12), None),
        ((3, 8, 12), Some((4, 3))),
    ];
    for (latent, tile) in cases {
        let (f, h, w) = latent;
        let z = Tensor::zeros((1, 128, f, h, w), DType::F32, &dev).unwrap();
        // Give freed memory back first (glibc keeps it otherwise, and a decode reusing it
        // would not raise the peak), then reset the peak to the RSS now.
        // SAFETY: malloc_trim only releases free heap memory.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0);
        }
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = status_bytes("VmRSS");
        let out = match tile {
            None => vae.decode(&z, Some(&t)).unwrap(),
            Some((tl, stride)) => {
                let tiles = VaeTiles {
                    sample: tl * 32,
                    stride: stride * 32,
                };
                vae.tiled_decode(&z, Some(&t), tiles).unwrap()
            }
        };
        let measured = status_bytes("VmHWM").saturating_sub(before);
        drop(out);
        let estimate = decode_footprint(&cfg, latent, 4, tile);
        let ratio = measured as f64 / estimate as f64;
        eprintln!(
            "latents {latent:?} tile {tile:?}: estimate {:.1} MiB, measured {:.1} MiB ({ratio:.2})",
            estimate as f64 / 1048576.0,
            measured as f64 / 1048576.0
        );
        // Not below the estimate by much, and above it by at most the CPU conv's im2col
        // bands (`COL_BAND_BYTES`, 32 MiB) and a few MiB of allocator slack.
        let slack = crate::engines::nn::kernels::conv::COL_BAND_BYTES as u64 + (4 << 20);
        assert!(
            ratio > 0.8 && measured <= estimate + slack,
            "{latent:?}: {ratio}"
        );
    }
}

/// A `/proc/self/status` field in bytes.
#[cfg(target_os = "linux")]
fn status_bytes(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}
