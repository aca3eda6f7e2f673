//! The Z-Image-Turbo plan at full size without the weights: the real configs (src/commands/bench/
//! configs/z-image-turbo) and tensor shapes, as GGUF and safetensors headers over sparse files,
//! planned on a 16 GiB unified-memory Mac (Metal, bf16).

use std::path::Path;

use super::super::sparse_files::*;
use super::{ZImageFootprint, ZImageJob, plan};
use crate::vocab::{Backend, Residency};
use candle_core::DType;

const DIM: u64 = 3840;
const FFN: u64 = 10240;
const ADALN: u64 = 256;

/// One transformer block in the original checkpoint's names (what the GGUFs users download
/// hold): fused qkv, out, q/k norms, the gated FFN, four norms, and the modulation when it has one.
fn block(t: &mut Vec<TensorRow>, prefix: &str, modulated: bool, q: (u32, u64, u64)) {
    let w = |t: &mut Vec<TensorRow>, name: &str, dims: Vec<u64>, ty| {
        t.push((format!("{prefix}.{name}"), dims, ty));
    };
    w(t, "attention.qkv.weight", vec![DIM, 3 * DIM], q);
    w(t, "attention.out.weight", vec![DIM, DIM], q);
    w(t, "attention.q_norm.weight", vec![128], F32);
    w(t, "attention.k_norm.weight", vec![128], F32);
    w(t, "feed_forward.w1.weight", vec![DIM, FFN], q);
    w(t, "feed_forward.w2.weight", vec![FFN, DIM], q);
    w(t, "feed_forward.w3.weight", vec![DIM, FFN], q);
    for n in [
        "attention_norm1",
        "attention_norm2",
        "ffn_norm1",
        "ffn_norm2",
    ] {
        w(t, &format!("{n}.weight"), vec![DIM], F32);
    }
    if modulated {
        w(t, "adaLN_modulation.0.weight", vec![ADALN, 4 * DIM], q);
        w(t, "adaLN_modulation.0.bias", vec![4 * DIM], F32);
    }
}

/// Z-Image-Turbo's transformer as a GGUF of type `q` (6.15 B parameters).
fn transformer_gguf(path: &Path, q: (u32, u64, u64)) {
    let mut t: Vec<TensorRow> = vec![
        ("x_embedder.weight".into(), vec![64, DIM], F32),
        ("x_embedder.bias".into(), vec![DIM], F32),
        ("x_pad_token".into(), vec![DIM, 1], F32),
        ("cap_pad_token".into(), vec![DIM, 1], F32),
        ("cap_embedder.0.weight".into(), vec![2560], F32),
        ("cap_embedder.1.weight".into(), vec![2560, DIM], q),
        ("cap_embedder.1.bias".into(), vec![DIM], F32),
        ("t_embedder.mlp.0.weight".into(), vec![256, 1024], q),
        ("t_embedder.mlp.0.bias".into(), vec![1024], F32),
        ("t_embedder.mlp.2.weight".into(), vec![1024, ADALN], q),
        ("t_embedder.mlp.2.bias".into(), vec![ADALN], F32),
        ("final_layer.linear.weight".into(), vec![DIM, 64], F32),
        ("final_layer.linear.bias".into(), vec![64], F32),
        (
            "final_layer.adaLN_modulation.1.weight".into(),
            vec![ADALN, DIM],
            q,
        ),
        ("final_layer.adaLN_modulation.1.bias".into(), vec![DIM], F32),
    ];
    for i in 0..30 {
        block(&mut t, &format!("layers.{i}"), true, q);
    }
    for i in 0..2 {
        block(&mut t, &format!("noise_refiner.{i}"), true, q);
        block(&mut t, &format!("context_refiner.{i}"), false, q);
    }
    sparse_gguf(path, "lumina2", &t);
}

/// The folder: real configs; Qwen3-4B (4.02 B parameters), the bf16 transformer (6.15 B) and
/// FLUX's VAE (84 M) as sparse bf16 safetensors.
fn turbo_folder(dir: &Path) {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands/bench/configs/z-image-turbo");
    for rel in [
        "model_index.json",
        "transformer/config.json",
        "text_encoder/config.json",
        "vae/config.json",
        "scheduler/scheduler_config.json",
    ] {
        write(
            &dir.join(rel),
            &std::fs::read_to_string(root.join(rel)).unwrap(),
        );
    }
    let mut qwen = vec![("embed_tokens.weight".to_owned(), vec![151_936, 2560])];
    for i in 0..36 {
        qwen.push((format!("layers.{i}.big"), vec![101_000_000]));
    }
    sparse_safetensors(&dir.join("text_encoder/model.safetensors"), &qwen);
    let mut transformer = Vec::new();
    for i in 0..34 {
        transformer.push((format!("w{i}"), vec![181_000_000]));
    }
    sparse_safetensors(
        &dir.join("transformer/diffusion_pytorch_model.safetensors"),
        &transformer,
    );
    let vae = vec![
        ("decoder.big".to_owned(), vec![49_000_000]),
        ("encoder.big".to_owned(), vec![34_000_000]),
        ("decoder.conv_in.weight".to_owned(), vec![512, 16, 3, 3]),
    ];
    sparse_safetensors(&dir.join("vae/diffusion_pytorch_model.safetensors"), &vae);
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

#[test]
fn turbo_at_1024_fits_a_16_gib_mac_staged_quantized_or_bf16_and_not_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    turbo_folder(dir.path());
    let q8 = dir.path().join("z_image_turbo-Q8_0.gguf");
    transformer_gguf(&q8, Q8_0);
    let mut req = mac_16gib(DType::BF16);
    req.device = Backend::Metal;
    let job = ZImageJob {
        max_sequence_length: 512,
        transformer: Some(q8),
        text_encoder: None,
    };
    let fp = ZImageFootprint::read(dir.path(), true, &job).unwrap();
    let p = plan(&fp, &req, &job);
    assert!(p.fits, "{p:#?}");
    assert_eq!(p.residency, Residency::Staged, "{p:#?}");
    // Q8_0 holds 8.5 bits a weight: about 6.5 GB, not 12.3.
    let held = gib(p.breakdown.unet_bytes);
    assert!((5.8..7.0).contains(&held), "{held} GiB");
    let text = gib(p.breakdown.text_encoders_bytes);
    assert!((7.0..8.0).contains(&text), "Qwen3-4B in bf16: {text} GiB");
    assert_eq!(p.steps.len(), 3);

    // Guidance runs two items a pass: more working memory, same weights.
    let guided = plan(
        &fp,
        &super::PlanRequest {
            guided: true,
            ..req.clone()
        },
        &job,
    );
    assert!(guided.steps[1].working_bytes > p.steps[1].working_bytes);

    // The folder's bf16 transformer (12.3 GB) fits only staged, with little to spare; in f32
    // (24.6 GB) it cannot, and the plan says what would.
    let folder_job = ZImageJob {
        transformer: None,
        ..job
    };
    let fp = ZImageFootprint::read(dir.path(), true, &folder_job).unwrap();
    let p = plan(&fp, &req, &folder_job);
    let held = gib(p.breakdown.unet_bytes);
    assert!((11.0..12.0).contains(&held), "{held} GiB");
    assert!(p.fits && p.residency == Residency::Staged, "{p:#?}");
    assert!(p.peak_bytes > p.budget_bytes * 9 / 10, "{p:#?}");
    let mut f32_req = req.clone();
    f32_req.dtype = DType::F32;
    let p = plan(&fp, &f32_req, &folder_job);
    assert!(!p.fits, "{p:#?}");
    for want in ["--quant q4_k_m", "--dtype bf16"] {
        assert!(
            p.suggestions.iter().any(|s| s.contains(want)),
            "{want}: {:?}",
            p.suggestions
        );
    }
}

#[test]
fn on_the_cpu_qwen3_is_held_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    turbo_folder(dir.path());
    let q4 = dir.path().join("z_image_turbo-Q4_K.gguf");
    transformer_gguf(&q4, Q4_K);
    let job = ZImageJob {
        max_sequence_length: 512,
        transformer: Some(q4),
        text_encoder: None,
    };
    let fp = ZImageFootprint::read(dir.path(), true, &job).unwrap();
    let mut req = mac_16gib(DType::F32);
    req.budget_cap = Some(64 * GIB);
    req.memory = crate::device::DeviceMemory::Unified {
        total: 64 * GIB,
        budget: 64 * GIB,
        used: 0,
    };
    let p = plan(&fp, &req, &job);
    let text = gib(p.breakdown.text_encoders_bytes);
    assert!((14.5..16.0).contains(&text), "Qwen3-4B in f32: {text} GiB");
    let held = gib(p.breakdown.unet_bytes);
    assert!((3.0..4.0).contains(&held), "Q4_K transformer: {held} GiB");
    assert!(p.fits, "{p:#?}");
}

/// Qwen3-4B as llama.cpp writes it (`qwen3`, 36 blocks), every matrix of type `q`.
fn qwen_gguf(path: &Path, q: (u32, u64, u64)) {
    let (h, ff, kv) = (2560u64, 9728u64, 8 * 128u64);
    let mut t: Vec<TensorRow> = vec![
        ("token_embd.weight".into(), vec![h, 151_936], q),
        ("output_norm.weight".into(), vec![h], F32),
    ];
    for i in 0..36 {
        let mut w = |name: &str, dims: Vec<u64>, ty| t.push((format!("blk.{i}.{name}"), dims, ty));
        w("attn_q.weight", vec![h, 32 * 128], q);
        w("attn_k.weight", vec![h, kv], q);
        w("attn_v.weight", vec![h, kv], q);
        w("attn_output.weight", vec![32 * 128, h], q);
        w("attn_q_norm.weight", vec![128], F32);
        w("attn_k_norm.weight", vec![128], F32);
        w("attn_norm.weight", vec![h], F32);
        w("ffn_norm.weight", vec![h], F32);
        w("ffn_gate.weight", vec![h, ff], q);
        w("ffn_up.weight", vec![h, ff], q);
        w("ffn_down.weight", vec![ff, h], q);
    }
    sparse_gguf(path, "qwen3", &t);
}

#[test]
fn a_qwen3_gguf_is_held_dequantized_like_the_folders_encoder() {
    let dir = tempfile::tempdir().unwrap();
    turbo_folder(dir.path());
    let q8 = dir.path().join("z_image_turbo-Q8_0.gguf");
    transformer_gguf(&q8, Q8_0);
    let qwen = dir.path().join("Qwen3-4B-Q8_0.gguf");
    qwen_gguf(&qwen, Q8_0);
    let mut req = mac_16gib(DType::BF16);
    req.device = Backend::Metal;
    let job = ZImageJob {
        max_sequence_length: 512,
        transformer: Some(q8),
        text_encoder: Some(qwen),
    };
    let fp = ZImageFootprint::read(dir.path(), true, &job).unwrap();
    let p = plan(&fp, &req, &job);
    assert!(p.fits && p.residency == Residency::Staged, "{p:#?}");
    // Dequantized into bf16 at load: Qwen3-4B's 4.02 B values, as from the folder.
    let text = gib(p.breakdown.text_encoders_bytes);
    assert!(
        (7.0..8.0).contains(&text),
        "Qwen3-4B GGUF in bf16: {text} GiB"
    );
    // On the CPU it computes in f32.
    let mut cpu = req.clone();
    cpu.device = Backend::Cpu;
    cpu.dtype = DType::F32;
    cpu.budget_cap = Some(64 * GIB);
    cpu.memory = crate::device::DeviceMemory::Unified {
        total: 64 * GIB,
        budget: 64 * GIB,
        used: 0,
    };
    let p = plan(&fp, &cpu, &job);
    let text = gib(p.breakdown.text_encoders_bytes);
    assert!(
        (14.5..16.0).contains(&text),
        "Qwen3-4B GGUF in f32: {text} GiB"
    );
    // A file that is not there is an error naming it, not a plan.
    let gone = ZImageJob {
        text_encoder: Some(dir.path().join("missing.gguf")),
        ..job
    };
    let err = ZImageFootprint::read(dir.path(), true, &gone).unwrap_err();
    assert!(err.to_string().contains("missing.gguf"), "{err}");
}
