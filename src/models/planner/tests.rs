//! Planner decisions on synthetic SD 1.5-sized footprints (parameter counts of the real model).

use std::path::PathBuf;

use candle_core::DType;

use super::footprint::{ComponentWeights, TextArch, UNetArch, VaeArch};
use super::*;

fn weights(name: &str, params: u64, stored: u64) -> ComponentWeights {
    ComponentWeights {
        name: name.to_owned(),
        files: vec![PathBuf::from(format!("{name}/model.safetensors"))],
        file_bytes: params * stored,
        float_elements: params,
        other_bytes: 0,
    }
}

/// SD 1.5: UNet 859.5M, VAE 83.7M, CLIP-L 123.1M parameters, stored in f32.
fn sd15() -> ModelFootprint {
    ModelFootprint {
        dir: PathBuf::from("sd15"),
        text_encoders: vec![weights("text_encoder", 123_060_480, 4)],
        unet: weights("unet", 859_520_964, 4),
        vae: weights("vae", 83_653_863, 4),
        unet_arch: UNetArch {
            in_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: vec![2; 4],
            heads: vec![8; 4],
            attention: vec![true, true, true, false],
            cross_attention_dim: 768,
        },
        vae_arch: VaeArch {
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            force_upcast: true,
        },
        text_arch: vec![TextArch {
            hidden_size: 768,
            intermediate_size: 3072,
            tokens: 77,
            heads: 12,
        }],
    }
}

fn request(budget: u64, side: u32, batch: u32) -> PlanRequest {
    PlanRequest {
        width: side,
        height: side,
        batch,
        guided: true,
        img2img: false,
        dtype: DType::F32,
        device: DeviceKind::Cpu,
        memory: DeviceMemory::System {
            total: 64 << 30,
            available: budget,
        },
        budget_cap: None,
        overrides: Overrides::default(),
    }
}

const GIB: u64 = 1 << 30;

#[test]
fn plenty_of_memory_keeps_everything_resident() {
    let plan = plan(&sd15(), &request(32 * GIB, 512, 1));
    assert!(plan.fits);
    assert_eq!(plan.residency, Residency::Resident);
    assert_eq!(
        (plan.attention_slice, plan.vae_tiling, plan.batch),
        (None, false, 1)
    );
    // f32 weights: 4.26 GB of tensors, plus the UNet file mapped while it loads on the CPU.
    assert_eq!(plan.breakdown.unet_bytes, 859_520_964 * 4);
    assert!(
        plan.peak_bytes > 7 * GIB && plan.peak_bytes < 9 * GIB,
        "{}",
        plan.peak_bytes
    );
    assert!(plan.steps.iter().any(|s| s.stage == "denoise"));
}

#[test]
fn a_budget_between_staged_and_resident_picks_staged() {
    let fp = sd15();
    let resident = plan(&fp, &request(64 * GIB, 512, 1)).peak_bytes;
    let staged_req = PlanRequest {
        overrides: Overrides {
            residency: Some(Residency::Staged),
            ..Overrides::default()
        },
        ..request(64 * GIB, 512, 1)
    };
    let staged = plan(&fp, &staged_req).peak_bytes;
    assert!(staged < resident, "{staged} < {resident}");
    let plan = plan(&fp, &request(staged, 512, 1));
    assert!(plan.fits);
    assert_eq!(plan.residency, Residency::Staged);
    assert_eq!(plan.attention_slice, None, "staging alone was enough");
}

#[test]
fn tighter_budgets_add_slicing_then_tiling_then_smaller_passes() {
    let fp = sd15();
    let staged_auto = plan(
        &fp,
        &PlanRequest {
            overrides: Overrides {
                residency: Some(Residency::Staged),
                ..Overrides::default()
            },
            ..request(64 * GIB, 1024, 4)
        },
    );
    let p = plan(&fp, &request(staged_auto.peak_bytes - 1, 1024, 4));
    assert_eq!(p.residency, Residency::Staged);
    assert!(
        p.attention_slice.is_some() || p.vae_tiling || p.batch < 4,
        "{p:?}"
    );
    assert!(p.fits);
    // The loosest plan still fits in less: a smaller batch per pass.
    // On the CPU a staged f32 UNet needs its tensors plus its mapped file while loading (~6.7 GiB).
    let loosest = plan(&fp, &request(7 * GIB, 1024, 4));
    assert!(loosest.fits, "{}", loosest.peak_bytes);
    assert_eq!(loosest.residency, Residency::Staged);
    assert!(
        loosest.breakdown.peak_stage.starts_with("load"),
        "{loosest:?}"
    );
    assert_eq!(loosest.requested_batch, 4);
}

#[test]
fn nothing_fits_refuses_with_needed_available_and_fixes() {
    let p = plan(&sd15(), &request(2 * GIB, 768, 1));
    assert!(!p.fits);
    let err = p
        .require_fit()
        .err()
        .map(|e| (e.exit_code(), e.to_string()))
        .unwrap_or_default();
    assert_eq!(err.0, 2);
    assert!(
        err.1.contains("not enough memory") && err.1.contains("2.0 GiB"),
        "{}",
        err.1
    );
    assert!(err.1.contains("free memory so that"), "{}", err.1);
}

#[test]
fn half_precision_halves_weights_and_unified_memory_keeps_headroom() {
    let fp = sd15();
    let gpu = |dtype| PlanRequest {
        dtype,
        device: DeviceKind::Cuda,
        memory: DeviceMemory::Discrete {
            total: 80 * GIB,
            free: 70 * GIB,
        },
        ..request(0, 512, 1)
    };
    let f32_plan = plan(&fp, &gpu(DType::F32));
    let f16_plan = plan(&fp, &gpu(DType::F16));
    assert_eq!(
        f16_plan.breakdown.unet_bytes * 2,
        f32_plan.breakdown.unet_bytes
    );
    assert_eq!(
        f16_plan.breakdown.vae_bytes, f32_plan.breakdown.vae_bytes,
        "force_upcast VAE stays f32"
    );
    let mac = DeviceMemory::Unified {
        total: 16 * GIB,
        budget: 11 * GIB,
        used: GIB,
    };
    assert_eq!(
        effective_budget(&mac, None),
        10 * GIB - (10 * GIB) * 15 / 100
    );
    assert_eq!(
        effective_budget(&mac, Some(4 * GIB)),
        4 * GIB - (4 * GIB) * 15 / 100
    );
    // With an fp16-safe VAE (no upcast) f16 halves every stage, so f32 cannot fit f16's budget.
    let mut fp = fp;
    fp.vae_arch.force_upcast = false;
    let loosest_f16 = PlanRequest {
        overrides: Overrides {
            residency: Some(Residency::Staged),
            attention_slice: Some(Some(64)),
            vae_tiling: Some(true),
        },
        ..gpu(DType::F16)
    };
    let cap = plan(&fp, &loosest_f16).peak_bytes;
    let capped = PlanRequest {
        budget_cap: Some(cap),
        ..gpu(DType::F32)
    };
    let p = plan(&fp, &capped);
    assert!(!p.fits);
    let msg = p
        .require_fit()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("--dtype f16") && msg.contains("--memory-budget"),
        "{msg}"
    );
}

#[test]
fn plan_maps_onto_the_engine_modes() {
    let p = plan(&sd15(), &request(4 * GIB, 1024, 1));
    let modes = p.memory_modes();
    assert_eq!(modes.attention_slice, p.attention_slice);
    assert_eq!(modes.vae_tiling, p.vae_tiling);
    let json = serde_json::to_value(&p).unwrap();
    for key in [
        "peak_bytes",
        "budget_bytes",
        "fits",
        "steps",
        "residency",
        "batch",
        "breakdown",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

#[test]
fn footprint_reads_sparse_headers_of_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    for sub in ["unet", "vae", "text_encoder"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
        std::fs::copy(
            fixture.join(sub).join("config.json"),
            root.join(sub).join("config.json"),
        )
        .unwrap();
    }
    // Header-only files: big declared tensors, the body a sparse hole.
    let st = crate::models::safetensors_header::write_sparse;
    st(
        &root.join("unet/diffusion_pytorch_model.safetensors"),
        &[("a", "F32", &[1 << 28])],
    )
    .unwrap();
    st(
        &root.join("unet/diffusion_pytorch_model.fp16.safetensors"),
        &[("a", "F16", &[1 << 28])],
    )
    .unwrap();
    st(
        &root.join("vae/diffusion_pytorch_model.safetensors"),
        &[("b", "F32", &[1000])],
    )
    .unwrap();
    st(
        &root.join("text_encoder/model.safetensors"),
        &[("c", "F32", &[10]), ("ids", "I64", &[77])],
    )
    .unwrap();
    let full = ModelFootprint::read(root, false).unwrap();
    assert_eq!(full.unet.float_elements, 1 << 28);
    assert_eq!(
        full.unet.file_bytes,
        std::fs::metadata(root.join("unet/diffusion_pytorch_model.safetensors"))
            .unwrap()
            .len()
    );
    assert_eq!(full.text_encoders[0].other_bytes, 77 * 8);
    let half = ModelFootprint::read(root, true).unwrap();
    assert!(half.unet.files[0].ends_with("diffusion_pytorch_model.fp16.safetensors"));
    assert!(
        half.vae.files[0].ends_with("diffusion_pytorch_model.safetensors"),
        "falls back to full"
    );
    std::fs::remove_file(root.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::write(root.join("vae/diffusion_pytorch_model.bin"), b"pickle").unwrap();
    let err = ModelFootprint::read(root, false).err().unwrap();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("arbitrary code"), "{err}");
}
