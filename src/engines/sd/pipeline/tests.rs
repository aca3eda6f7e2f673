//! The pipeline's VAE decode in half precision and its f32 redo, on the tiny SD 1 fixture.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::vocab::Residency;
use candle_core::Device;

fn tiny_sd1(dtype: DType) -> SdPipeline {
    SdPipeline::load(&LoadOptions {
        model_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny"),
        device: Device::Cpu,
        dtype,
        residency: Residency::Resident,
        prefer_fp16_variant: false,
        switches: Default::default(),
        loras: vec![],
    })
    .unwrap()
}

#[test]
fn an_sd1_vae_decodes_in_f16_like_diffusers_and_redoes_an_overflow_in_f32() {
    let mut pipe = tiny_sd1(DType::F16);
    assert_eq!(pipe.components.vae_dtype(), DType::F16);
    let channels = pipe.unet_config.in_channels;
    // Past f16's range once divided by the scaling factor: the half decode cannot be finite.
    // Deterministic values in [-1, 1] (random ones could pass f16's range before scaling).
    let wave = |amplitude: f64| {
        let t = Tensor::arange(0f32, (channels * 64) as f32, &Device::Cpu).unwrap();
        (t.sin().unwrap() * amplitude)
            .unwrap()
            .reshape((1, channels, 8, 8))
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap()
    };
    let latents = wave(2.0e4);
    let go = CancelToken::new();
    let half = pipe.decode_tensor(&latents, false, &go).unwrap();
    assert!(!all_finite(&half).unwrap());
    let images = pipe.decode(&latents, false, &go).unwrap();
    assert_eq!(pipe.components.vae_dtype(), DType::F32);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].dimensions(), (64, 64));
    // A plain f16 decode stays in f16.
    let mut pipe = tiny_sd1(DType::F16);
    let calm = wave(0.5);
    assert_eq!(pipe.decode(&calm, false, &go).unwrap().len(), 1);
    assert_eq!(pipe.components.vae_dtype(), DType::F16);
}

#[test]
fn a_cancelled_token_stops_the_vae_whole_or_tiled_as_cancelled() {
    let mut pipe = tiny_sd1(DType::F32);
    let channels = pipe.unet_config.in_channels;
    let latents = Tensor::zeros((1, channels, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let stop = CancelToken::new();
    stop.cancel();
    for tiled in [false, true] {
        let result = pipe.decode(&latents, tiled, &stop);
        assert!(matches!(result, Err(Error::Cancelled)), "tiled {tiled}");
    }
    let image = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        pipe.encode_image(&image, &stop),
        Err(Error::Cancelled)
    ));
    assert!(pipe.encode_image(&image, &CancelToken::new()).is_ok());
}
