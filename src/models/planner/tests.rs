//! Planner decisions on synthetic SD 1.5-sized footprints (parameter counts of the real model).

use std::path::PathBuf;

use candle_core::DType;

use super::footprint::{ComponentWeights, TextArch, UNetArch, VaeArch};
use super::*;

fn weights(name: &str, params: u64, largest: u64, stored: u64) -> ComponentWeights {
    ComponentWeights {
        name: name.to_owned(),
        files: vec![PathBuf::from(format!("{name}/model.safetensors"))],
        file_bytes: params * stored,
        float_elements: params,
        other_bytes: 0,
        largest_tensor_bytes: largest * stored,
        tensors: Vec::new(),
    }
}

/// SD 1.5: UNet 859.5M, VAE 83.7M, CLIP-L 123.1M parameters, stored in f32. The largest
/// tensors: CLIP's token embedding (49408 x 768), the UNet's 2560 -> 1280 3x3 convs, the VAE's
/// 512 -> 512 3x3 convs.
pub(super) fn sd15() -> ModelFootprint {
    ModelFootprint {
        dir: PathBuf::from("sd15"),
        text_encoders: vec![weights("text_encoder", 123_060_480, 49_408 * 768, 4)],
        unet: weights("unet", 859_520_964, 2560 * 1280 * 9, 4),
        controlnets: vec![],
        vae: weights("vae", 83_653_863, 512 * 512 * 9, 4),
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

pub(super) fn request(budget: u64, side: u32, batch: u32) -> PlanRequest {
    PlanRequest {
        width: side,
        height: side,
        batch,
        guided: true,
        img2img: false,
        dtype: DType::F32,
        device: Backend::Cpu,
        memory: DeviceMemory::System {
            total: 64 << 30,
            available: budget,
        },
        budget_cap: None,
        overrides: Overrides::default(),
        stock_kernels: false,
        lora: Default::default(),
    }
}

pub(super) const GIB: u64 = 1 << 30;

#[test]
fn plenty_of_memory_keeps_everything_resident() {
    let plan = plan(&sd15(), &request(32 * GIB, 512, 1));
    assert!(plan.fits);
    assert_eq!(plan.residency, Residency::Resident);
    assert_eq!(
        (plan.attention_slice, plan.vae_tiling, plan.batch),
        (None, false, 1)
    );
    // f32 weights: 4.26 GB of tensors, plus the VAE decode's 1.09 GiB at 512x512 on the CPU
    // (measured 5.08 GiB, BENCHMARKS.md "Memory planner calibration").
    assert_eq!(plan.breakdown.unet_bytes, 859_520_964 * 4);
    assert!(
        plan.peak_bytes > 5 * GIB && plan.peak_bytes < 5 * GIB + GIB / 2,
        "{}",
        plan.peak_bytes
    );
    assert_eq!(plan.breakdown.peak_stage, "vae decode");
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
    // The loosest plan still fits in less: a smaller batch per pass. At 1024 on the CPU a staged
    // f32 UNet step holds its 3.2 GiB of weights, the skip connections of the whole guided batch
    // and its widest conv's input, norm and outputs: fewer images per pass fit 5 GiB.
    let loosest = plan(&fp, &request(5 * GIB, 1024, 4));
    assert!(loosest.fits, "{loosest:?}");
    assert_eq!(loosest.residency, Residency::Staged);
    assert!(loosest.vae_tiling, "{loosest:?}");
    assert_eq!(loosest.breakdown.peak_stage, "denoise", "{loosest:?}");
    assert!(
        loosest.batch < 4 && loosest.requested_batch == 4,
        "{loosest:?}"
    );
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

fn forced(side: u32, residency: Residency, tiling: bool) -> PlanRequest {
    PlanRequest {
        overrides: Overrides {
            residency: Some(residency),
            attention_slice: Some(None),
            vae_tiling: Some(tiling),
        },
        ..request(64 * GIB, side, 1)
    }
}

fn step(p: &MemoryPlan, stage: &str) -> PlanStep {
    p.steps
        .iter()
        .find(|s| s.stage == stage)
        .cloned()
        .unwrap_or_else(|| panic!("no {stage} in {p:?}"))
}

#[test]
fn loading_counts_one_tensor_being_copied_not_the_mapped_file() {
    // The loader drops each tensor's mapped pages once copied (engines/nn/weights.rs).
    let fp = sd15();
    let p = plan(&fp, &forced(512, Residency::Resident, false));
    let load = step(&p, "load unet");
    assert_eq!(load.working_bytes, 2 * 2560 * 1280 * 9 * 4);
    assert_eq!(load.weights_bytes, (123_060_480 + 859_520_964) * 4);
    // On a discrete GPU the mapped file is host memory: not counted at all.
    let cuda = PlanRequest {
        device: Backend::Cuda,
        memory: DeviceMemory::Discrete {
            total: 80 * GIB,
            free: 70 * GIB,
        },
        ..forced(512, Residency::Resident, false)
    };
    assert_eq!(step(&plan(&fp, &cuda), "load unet").working_bytes, 0);
}

#[test]
fn untiled_decode_grows_with_the_pixels_and_tiling_bounds_it() {
    let fp = sd15();
    let decode = |req: &PlanRequest| {
        let p = plan(&fp, req);
        let latents = u64::from(req.width / 8).pow(2) * 4 * 4 * 4;
        step(&p, "vae decode").working_bytes - latents
    };
    let cpu = |side, tiling| decode(&forced(side, Residency::Resident, tiling));
    // Measured on the CPU (BENCHMARKS.md): 0.9-1.2 GiB over the weights at 512x512.
    let band = activations::CPU_COL_BAND_BYTES;
    let at512 = cpu(512, false);
    assert!(at512 > GIB && at512 < GIB + GIB / 4, "{at512}");
    // Untiled, everything but the 32 MiB im2col band grows with the pixels.
    assert_eq!(
        cpu(1024, false) - band,
        4 * (at512 - band),
        "4.28 GiB at 1024"
    );
    assert_eq!(4 * (cpu(768, false) - band), 9 * (at512 - band));
    // Tiled, 1024 decodes 64-latent tiles: one 512 decode plus the assembled image.
    let tiled = cpu(1024, true);
    let rgb1024 = 3 * 1024 * 1024 * 4;
    assert!(tiled > at512 && tiled <= at512 + 3 * rgb1024, "{tiled}");
    assert_eq!(cpu(512, true), at512, "a single tile is decoded whole");
    // With a full im2col matrix (Metal, and the f32 VAE of an f16 job) an untiled 1024 decode
    // is 12.25 GiB: on a 16 GB Mac the planner tiles it.
    let mac = |tiling| PlanRequest {
        dtype: DType::F16,
        device: Backend::Metal,
        memory: DeviceMemory::Unified {
            total: 16 * GIB,
            budget: 12 * GIB,
            used: GIB,
        },
        ..forced(1024, Residency::Staged, tiling)
    };
    let full = decode(&mac(false));
    assert_eq!(
        full,
        4 * decode(&PlanRequest {
            width: 512,
            height: 512,
            ..mac(false)
        })
    );
    assert!(full > 12 * GIB && full < 13 * GIB, "{full}");
    let chosen = plan(
        &fp,
        &PlanRequest {
            overrides: Overrides::default(),
            ..mac(false)
        },
    );
    assert!(chosen.fits && chosen.vae_tiling, "{chosen:?}");
    assert!(decode(&mac(true)) < full / 3);
}

#[test]
fn staged_vae_stages_count_what_the_released_unet_leaves_in_the_heap() {
    use super::footprint::TensorSize;
    let f32s = |mib: u64, n: usize| {
        vec![
            TensorSize {
                elements: mib << 18,
                stored_elem: 4,
                float: true,
            };
            n
        ]
    };
    let mut fp = sd15();
    // The text encoder's largest block under 32 MiB is 9 MiB: the UNet's tensors up to that come
    // from glibc's heap (40 MiB here), the 64 MiB ones are mapped and given back.
    fp.text_encoders[0].tensors = [f32s(9, 2), f32s(144, 1)].concat();
    fp.unet.tensors = [f32s(4, 10), f32s(64, 2)].concat();
    fp.vae.float_elements = 20 << 18;
    fp.vae.tensors = f32s(1, 20);
    let p = plan(&fp, &forced(512, Residency::Staged, false));
    let vae_stage = step(&p, "vae decode").weights_bytes;
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert_eq!(
            vae_stage,
            40 << 20,
            "the VAE loads into the UNet's freed heap"
        );
    } else {
        assert_eq!(vae_stage, 20 << 20);
    }
    // Resident jobs release nothing.
    let p = plan(&fp, &forced(512, Residency::Resident, false));
    assert_eq!(
        step(&p, "vae decode").weights_bytes,
        p.steps[2].weights_bytes
    );
}

/// SD 1.5's ControlNet (361.3M parameters in f32) loads with the UNet and adds its residuals to
/// the denoising step.
#[test]
fn a_controlnet_adds_its_weights_and_residuals_to_the_denoise_step() {
    let base = sd15();
    let mut with = sd15();
    with.controlnets = vec![weights("controlnet", 361_278_561, 1280 * 1280 * 9, 4)];
    let req = request(64 * GIB, 512, 1);
    let denoise = |fp: &ModelFootprint| step(&plan(fp, &req), "denoise").total_bytes;
    let added = denoise(&with) - denoise(&base);
    let residuals = super::activations::control_residuals(
        &base.unet_arch,
        &super::activations::ActivationShape {
            latent_h: 64,
            latent_w: 64,
            images: 1,
            guided: true,
            elem: 4,
            conv: super::ConvWorkspace::InputCopy,
            attention_slice: None,
            stock_kernels: false,
        },
    );
    assert!(residuals > 10 << 20, "{residuals}");
    assert_eq!(added, 361_278_561 * 4 + residuals);
}
