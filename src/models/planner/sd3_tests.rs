//! The SD 3.5 Medium plan at full size without the weights: its real transformer, T5 and VAE
//! configs and its weights' sizes as sparse bf16 safetensors (the planner reads headers only),
//! planned on a 16 GiB unified-memory budget at 1024x1024 with CFG.

use std::path::Path;

use super::flux::{FluxFootprint, FluxJob, plan};
use super::sparse_files::{GIB, mac_16gib, sparse_safetensors, write};
use crate::vocab::Residency;
use candle_core::DType;

/// stabilityai/stable-diffusion-3.5-medium's transformer/config.json.
const MEDIUM: &str = r#"{"_class_name": "SD3Transformer2DModel", "attention_head_dim": 64,
    "caption_projection_dim": 1536, "dual_attention_layers": [0,1,2,3,4,5,6,7,8,9,10,11,12],
    "in_channels": 16, "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 24,
    "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048, "pos_embed_max_size": 384,
    "qk_norm": "rms_norm", "sample_size": 128}"#;

/// T5-XXL's encoder config (text_encoder_3/config.json).
const T5: &str = r#"{"d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
    "vocab_size": 32128, "relative_attention_num_buckets": 32, "relative_attention_max_distance":
    128, "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6, "is_gated_act": true,
    "dense_act_fn": "gelu_new"}"#;

const VAE: &str = r#"{"_class_name": "AutoencoderKL", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
    "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D",
    "UpDecoderBlock2D", "UpDecoderBlock2D"], "in_channels": 3, "out_channels": 3,
    "latent_channels": 16, "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 1024,
    "scaling_factor": 1.5305, "shift_factor": 0.0609, "use_quant_conv": false,
    "use_post_quant_conv": false}"#;

/// `count` bf16 tensors of `elements` each under `dir/rel`.
fn weights(dir: &Path, rel: &str, count: usize, elements: u64) {
    let tensors: Vec<(String, Vec<u64>)> = (0..count)
        .map(|i| (format!("w{i}"), vec![elements]))
        .collect();
    sparse_safetensors(&dir.join(rel), &tensors);
}

/// SD 3.5 Medium's folder: transformer 2.47 B parameters, CLIP-L 124 M, CLIP-G 695 M, T5-XXL's
/// encoder 4.76 B, the VAE 84 M, all bf16.
fn medium_folder(dir: &Path) {
    write(&dir.join("transformer/config.json"), MEDIUM);
    write(&dir.join("text_encoder_3/config.json"), T5);
    write(&dir.join("vae/config.json"), VAE);
    weights(
        dir,
        "transformer/diffusion_pytorch_model.safetensors",
        50,
        49_400_000,
    );
    weights(dir, "text_encoder/model.safetensors", 4, 31_000_000);
    weights(dir, "text_encoder_2/model.safetensors", 10, 69_500_000);
    weights(dir, "text_encoder_3/model.safetensors", 40, 119_000_000);
    weights(
        dir,
        "vae/diffusion_pytorch_model.safetensors",
        4,
        21_000_000,
    );
}

#[test]
fn sd35_medium_at_1024_fits_16_gib_staged_with_and_without_t5() {
    let dir = tempfile::tempdir().unwrap();
    medium_folder(dir.path());
    let job = FluxJob {
        max_sequence_length: 256,
        ..FluxJob::default()
    };
    let mut req = mac_16gib(DType::BF16);
    req.guided = true;
    let fp = FluxFootprint::read(dir.path(), true, &job).unwrap();
    let p = plan(&fp, &req, &job);
    assert!(p.fits, "{p:#?}");
    assert_eq!(p.residency, Residency::Staged, "{p:#?}");
    // The three text encoders together are the largest stage (T5-XXL alone is 9.5 GB).
    let text = p.breakdown.text_encoders_bytes as f64 / GIB as f64;
    assert!((10.0..11.5).contains(&text), "{text} GiB");
    assert!(p.breakdown.peak_stage.contains("encode prompt"), "{p:#?}");
    // Without T5 only the CLIPs encode: the whole model (6.8 GB) stays resident.
    let no_t5 = FluxJob {
        no_t5: true,
        ..job.clone()
    };
    let fp = FluxFootprint::read(dir.path(), true, &no_t5).unwrap();
    let q = plan(&fp, &req, &no_t5);
    assert!(q.fits, "{q:#?}");
    assert!(
        q.peak_bytes < p.peak_bytes,
        "{} vs {}",
        q.peak_bytes,
        p.peak_bytes
    );
    assert!(q.breakdown.text_encoders_bytes < 2 * GIB, "{q:#?}");
    assert_eq!(q.residency, Residency::Resident, "{q:#?}");
    // In f32 (the CPU's dtype) T5's 19 GB cannot fit, and the plan says what would.
    let fp = FluxFootprint::read(dir.path(), false, &job).unwrap();
    let p32 = plan(&fp, &mac_16gib(DType::F32), &job);
    assert!(!p32.fits, "{p32:#?}");
    assert!(
        p32.suggestions.iter().any(|s| s.contains("bf16")),
        "{:?}",
        p32.suggestions
    );
}
