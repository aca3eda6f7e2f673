//! The FLUX plan at full size without the weights: FLUX.1-schnell's real configs and tensor
//! shapes, written as GGUF and safetensors headers over sparse files (the planner reads headers
//! only), planned on a 16 GiB unified-memory budget.

use std::path::Path;

use super::flux::{FluxFootprint, FluxJob, plan};
use super::sparse_files::*;
use crate::vocab::Residency;
use candle_core::DType;

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
