//! The FLUX plan at full size without the weights: FLUX.1-schnell's real configs and tensor
//! shapes, written as GGUF and safetensors headers over sparse files (the planner reads headers
//! only), planned on a 16 GiB unified-memory budget.

use std::io::Write;
use std::path::Path;

use super::flux::{FluxFootprint, FluxJob, plan};
use super::{Overrides, PlanRequest};
use crate::device::DeviceMemory;
use crate::vocab::{Backend, Residency};
use candle_core::DType;

pub(super) const GIB: u64 = 1 << 30;

pub(super) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A tensor to write: name, dims as ggml orders them, type.
type TensorRow = (String, Vec<u64>, (u32, u64, u64));

/// (ggml type id, block elements, block bytes)
const Q4_K: (u32, u64, u64) = (12, 256, 144);
const Q8_0: (u32, u64, u64) = (8, 32, 34);
const F32: (u32, u64, u64) = (0, 1, 4);

/// A GGUF v3 of `tensors` (name, dims as ggml orders them: fastest first, type) whose data is a
/// hole: the header is real, the file sparse.
fn sparse_gguf(path: &Path, arch: &str, tensors: &[TensorRow]) {
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    gguf_string(&mut h, "general.architecture");
    h.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut h, arch);
    let mut offset = 0u64;
    for (name, dims, (ty, block, bytes)) in tensors {
        gguf_string(&mut h, name);
        h.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        let size = dims.iter().product::<u64>() / block * bytes;
        offset += size.div_ceil(32) * 32;
    }
    while h.len() % 32 != 0 {
        h.push(0);
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&h).unwrap();
    f.set_len(h.len() as u64 + offset).unwrap();
}

/// A safetensors file of bf16 `tensors` with a real header over a sparse body.
pub(super) fn sparse_safetensors(path: &Path, tensors: &[(String, Vec<u64>)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * 2;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let text = serde_json::Value::Object(header).to_string();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(text.len() as u64).to_le_bytes()).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.set_len(8 + text.len() as u64 + offset).unwrap();
}

fn linear(name: &str, out_f: u64, in_f: u64, ty: (u32, u64, u64)) -> Vec<TensorRow> {
    vec![
        (format!("{name}.weight"), vec![in_f, out_f], ty),
        (format!("{name}.bias"), vec![out_f], F32),
    ]
}

/// FLUX.1-schnell's transformer as city96's Q4_K_S file stores it (BFL names; 2-D weights Q4_K).
fn flux_transformer_q4k(path: &Path) {
    let h = 3072;
    let mut t = Vec::new();
    t.extend(linear("img_in", h, 64, F32));
    t.extend(linear("txt_in", h, 4096, Q4_K));
    for e in ["time_in", "vector_in"] {
        t.extend(linear(
            &format!("{e}.in_layer"),
            h,
            if e == "time_in" { 256 } else { 768 },
            Q4_K,
        ));
        t.extend(linear(&format!("{e}.out_layer"), h, h, Q4_K));
    }
    for i in 0..19 {
        for s in ["img", "txt"] {
            let p = format!("double_blocks.{i}.{s}");
            t.extend(linear(&format!("{p}_mod.lin"), 6 * h, h, Q4_K));
            t.extend(linear(&format!("{p}_attn.qkv"), 3 * h, h, Q4_K));
            t.extend(linear(&format!("{p}_attn.proj"), h, h, Q4_K));
            t.extend(linear(&format!("{p}_mlp.0"), 4 * h, h, Q4_K));
            t.extend(linear(&format!("{p}_mlp.2"), h, 4 * h, Q4_K));
            for n in ["query_norm", "key_norm"] {
                t.push((format!("{p}_attn.norm.{n}.scale"), vec![128], F32));
            }
        }
    }
    for i in 0..38 {
        let p = format!("single_blocks.{i}");
        t.extend(linear(&format!("{p}.modulation.lin"), 3 * h, h, Q4_K));
        t.extend(linear(&format!("{p}.linear1"), 7 * h, h, Q4_K));
        t.extend(linear(&format!("{p}.linear2"), h, 5 * h, Q4_K));
        for n in ["query_norm", "key_norm"] {
            t.push((format!("{p}.norm.{n}.scale"), vec![128], F32));
        }
    }
    t.extend(linear("final_layer.adaLN_modulation.1", 2 * h, h, Q4_K));
    t.extend(linear("final_layer.linear", 64, h, Q4_K));
    sparse_gguf(path, "flux", &t);
}

/// T5 v1.1 XXL's encoder as city96's Q8_0 file stores it (llama.cpp names).
fn t5_xxl_q8(path: &Path) {
    let (d, ff) = (4096, 10240);
    let mut t = vec![("token_embd.weight".to_owned(), vec![d, 32128], Q8_0)];
    for i in 0..24 {
        let p = format!("enc.blk.{i}");
        for n in ["attn_q", "attn_k", "attn_v", "attn_o"] {
            t.push((format!("{p}.{n}.weight"), vec![d, d], Q8_0));
        }
        for n in ["ffn_gate", "ffn_up"] {
            t.push((format!("{p}.{n}.weight"), vec![d, ff], Q8_0));
        }
        t.push((format!("{p}.ffn_down.weight"), vec![ff, d], Q8_0));
        t.push((format!("{p}.attn_norm.weight"), vec![d], F32));
        t.push((format!("{p}.ffn_norm.weight"), vec![d], F32));
    }
    t.push(("enc.blk.0.attn_rel_b.weight".to_owned(), vec![64, 32], F32));
    t.push(("enc.output_norm.weight".to_owned(), vec![d], F32));
    sparse_gguf(path, "t5encoder", &t);
}

/// FLUX.1-schnell's folder: real configs, CLIP-L and the VAE as sparse bf16 safetensors.
fn schnell_folder(dir: &Path) {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands/bench/configs/flux-schnell");
    for rel in [
        "model_index.json",
        "transformer/config.json",
        "text_encoder/config.json",
        "text_encoder_2/config.json",
        "vae/config.json",
        "scheduler/scheduler_config.json",
    ] {
        write(
            &dir.join(rel),
            &std::fs::read_to_string(root.join(rel)).unwrap(),
        );
    }
    // CLIP-L: 123M parameters, the largest the token embedding.
    let mut clip = vec![(
        "text_model.embeddings.token_embedding.weight".to_owned(),
        vec![49408, 768],
    )];
    for i in 0..12 {
        for (n, shape) in [
            ("fc1", vec![3072, 768]),
            ("fc2", vec![768, 3072]),
            ("q", vec![768, 768]),
            ("k", vec![768, 768]),
            ("v", vec![768, 768]),
            ("o", vec![768, 768]),
        ] {
            clip.push((format!("text_model.encoder.layers.{i}.{n}.weight"), shape));
        }
    }
    sparse_safetensors(&dir.join("text_encoder/model.safetensors"), &clip);
    // The VAE: 84M parameters.
    let vae = vec![
        ("decoder.big".to_owned(), vec![49_000_000]),
        ("encoder.big".to_owned(), vec![34_000_000]),
        ("decoder.conv_in.weight".to_owned(), vec![512, 16, 3, 3]),
    ];
    sparse_safetensors(&dir.join("vae/diffusion_pytorch_model.safetensors"), &vae);
}

pub(super) fn mac_16gib(dtype: DType) -> PlanRequest {
    PlanRequest {
        width: 1024,
        height: 1024,
        batch: 1,
        guided: false,
        img2img: false,
        dtype,
        device: Backend::Cpu,
        memory: DeviceMemory::Unified {
            total: 16 * GIB,
            budget: 16 * GIB,
            used: 0,
        },
        budget_cap: Some(16 * GIB),
        overrides: Overrides::default(),
        stock_kernels: false,
    }
}

#[test]
fn schnell_q4_k_s_at_1024_fits_16_gib_staged_and_bf16_weights_do_not() {
    let dir = tempfile::tempdir().unwrap();
    schnell_folder(dir.path());
    let transformer = dir.path().join("flux1-schnell-Q4_K_S.gguf");
    let t5 = dir.path().join("t5-v1_1-xxl-encoder-Q8_0.gguf");
    flux_transformer_q4k(&transformer);
    t5_xxl_q8(&t5);
    let job = FluxJob {
        max_sequence_length: 256,
        transformer: Some(transformer.clone()),
        text_encoder_2: Some(t5.clone()),
        no_t5: false,
    };
    let fp = FluxFootprint::read(dir.path(), true, &job).unwrap();
    let p = plan(&fp, &mac_16gib(DType::BF16), &job);
    assert!(p.fits, "{p:#?}");
    assert_eq!(p.residency, Residency::Staged, "{p:#?}");
    // The quantized transformer is held as stored: about 6.7 GB, not 24.
    let held = p.breakdown.unet_bytes as f64 / GIB as f64;
    assert!((5.5..7.5).contains(&held), "{held} GiB");
    assert!(p.peak_bytes <= p.budget_bytes);
    // On the CPU in f32 (what `--device cpu` runs) it fits too: both GGUFs stay quantized.
    let p = plan(&fp, &mac_16gib(DType::F32), &job);
    assert!(p.fits, "{p:#?}");
    let text = p.breakdown.text_encoders_bytes as f64 / GIB as f64;
    assert!((4.5..7.0).contains(&text), "T5 + CLIP held: {text} GiB");
    // The same job with the bf16 transformer from the folder cannot fit, and says what would.
    let folder_job = FluxJob {
        transformer: None,
        ..job.clone()
    };
    let mut shapes = Vec::new();
    for i in 0..57 {
        shapes.push((format!("w{i}"), vec![209_000_000]));
    }
    sparse_safetensors(
        &dir.path()
            .join("transformer/diffusion_pytorch_model.safetensors"),
        &shapes,
    );
    let fp = FluxFootprint::read(dir.path(), true, &folder_job).unwrap();
    let p = plan(&fp, &mac_16gib(DType::BF16), &folder_job);
    assert!(!p.fits, "{p:#?}");
    assert!(
        p.suggestions.iter().any(|s| s.contains("--quant q4_k_s")),
        "{:?}",
        p.suggestions
    );
}
