//! The whole full-size UNet on the GPU in fp16 against diffusers, same random weights, same
//! inputs: a device test (`scripts/gpu_parity.py prepare` writes the inputs and diffusers'
//! outputs, then `GPU_PARITY_DIR=... GPU_PARITY_MODEL=... <test binary> --ignored unet_parity`).
//! It writes what it measured to `$GPU_PARITY_DIR/unet_parity_ours.json` before asserting.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::engines::nn::attention::AttentionMode;
use crate::engines::sd::unet::UNet;

/// Differences of `ours` from `reference`, both taken in f32.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Diff {
    max_abs: f32,
    mean_abs: f32,
    /// max |ours - reference| / max |reference|.
    rel_max: f32,
    /// mean |ours - reference| / mean |reference|.
    rel_mean: f32,
}

/// Compares element by element; any NaN or infinity on either side is an error (a max over
/// tensors would skip NaN and let an output full of them pass).
fn differences(ours: &Tensor, reference: &Tensor) -> Result<Diff, String> {
    let flat = |t: &Tensor| -> Result<Vec<f32>, String> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())
    };
    let (a, b) = (flat(ours)?, flat(reference)?);
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("{} values against {}", a.len(), b.len()));
    }
    let (mut max_abs, mut sum_abs, mut max_ref, mut sum_ref) = (0f32, 0f64, 0f32, 0f64);
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        if !x.is_finite() || !y.is_finite() {
            return Err(format!("not finite at {i}: ours {x}, reference {y}"));
        }
        let d = (x - y).abs();
        max_abs = max_abs.max(d);
        sum_abs += f64::from(d);
        max_ref = max_ref.max(y.abs());
        sum_ref += f64::from(y.abs());
    }
    let n = a.len() as f64;
    Ok(Diff {
        max_abs,
        mean_abs: (sum_abs / n) as f32,
        rel_max: max_abs / max_ref.max(f32::MIN_POSITIVE),
        rel_mean: (sum_abs / sum_ref.max(f64::MIN_POSITIVE)) as f32,
    })
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run scripts/gpu_parity.py prepare first (scripts/gpu_device_run.sh)"
        )
    }))
}

/// Pre-set limits (before the first device run): fp16 on both sides, fp32 accumulation in every
/// GEMM, so ours and diffusers' may differ by a few fp16 roundings per layer; and our fp16 output
/// must be no further from diffusers' fp32 output than twice diffusers' own fp16 output is.
const MAX_REL_VS_DIFFUSERS_F16: f32 = 3e-2;
const MEAN_REL_VS_DIFFUSERS_F16: f32 = 5e-3;

#[test]
#[ignore = "needs a CUDA GPU and GPU_PARITY_DIR from scripts/gpu_parity.py prepare"]
fn full_size_fp16_unet_matches_diffusers() {
    let dir = env_path("GPU_PARITY_DIR");
    let model = env_path("GPU_PARITY_MODEL");
    let dev = Device::new_cuda(0).unwrap();
    let io: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("unet_io.safetensors"), &Device::Cpu).unwrap();
    let input = |k: &str| io[k].to_device(&dev).unwrap().to_dtype(DType::F16).unwrap();
    let timestep = f64::from(
        io["timestep"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0],
    );
    let unet = UNet::load(&model.join("unet"), &dev, DType::F16, false).unwrap();
    let (sample, context) = (input("sample"), input("encoder_hidden_states"));
    let out = unet
        .forward(&sample, timestep, &context, None, AttentionMode::Auto)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap();
    let vs_f16 = differences(&out, &io["diffusers_f16"]);
    let vs_f32 = differences(&out, &io["diffusers_f32"]);
    let theirs_vs_f32 = differences(&io["diffusers_f16"], &io["diffusers_f32"]);
    let record = serde_json::json!({
        "test": "full_size_fp16_unet_matches_diffusers",
        "shape": out.dims(),
        "timestep": timestep,
        "ours_f16_vs_diffusers_f16": vs_f16.as_ref().map_err(String::clone),
        "ours_f16_vs_diffusers_f32": vs_f32.as_ref().map_err(String::clone),
        "diffusers_f16_vs_diffusers_f32": theirs_vs_f32.as_ref().map_err(String::clone),
        "limits": {
            "rel_max_vs_diffusers_f16": MAX_REL_VS_DIFFUSERS_F16,
            "rel_mean_vs_diffusers_f16": MEAN_REL_VS_DIFFUSERS_F16,
            "rel_mean_vs_f32": "at most twice diffusers_f16_vs_diffusers_f32.rel_mean (floor 1e-3)",
        },
    });
    std::fs::write(
        dir.join("unet_parity_ours.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    eprintln!("{record}");
    let (vs_f16, vs_f32, theirs) = (vs_f16.unwrap(), vs_f32.unwrap(), theirs_vs_f32.unwrap());
    assert!(vs_f16.rel_max < MAX_REL_VS_DIFFUSERS_F16, "{vs_f16:?}");
    assert!(vs_f16.rel_mean < MEAN_REL_VS_DIFFUSERS_F16, "{vs_f16:?}");
    assert!(
        vs_f32.rel_mean <= 2.0 * theirs.rel_mean.max(1e-3),
        "ours {vs_f32:?}, diffusers' fp16 {theirs:?}"
    );
}

/// Runs everywhere the CUDA build does (no GPU needed): the comparison cannot pass NaN.
#[test]
fn differences_fail_on_nan_and_infinity_anywhere() {
    let reference = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap();
    let same = differences(&reference, &reference).unwrap();
    assert_eq!((same.max_abs, same.rel_mean), (0.0, 0.0));
    let off = Tensor::new(&[1f32, 2., 3., 5.], &Device::Cpu).unwrap();
    let d = differences(&off, &reference).unwrap();
    assert_eq!((d.max_abs, d.mean_abs, d.rel_max), (1.0, 0.25, 0.25));
    for bad in [f32::NAN, f32::INFINITY] {
        for at in [0, 3] {
            let mut v = vec![1f32, 2., 3., 4.];
            v[at] = bad;
            let t = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
            assert!(differences(&t, &reference).is_err(), "{bad} at {at}");
            assert!(
                differences(&reference, &t).is_err(),
                "{bad} at {at} in the reference"
            );
        }
    }
}
