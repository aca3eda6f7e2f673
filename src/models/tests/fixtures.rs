//! Small on-disk pipelines and caches for the tests: configs only, weights are a few bytes.

use std::path::Path;

use serde_json::{Value, json};

pub struct PipelineSpec {
    pub class: &'static str,
    pub cross_attention_dim: u64,
    pub in_channels: u64,
    pub text_time: bool,
    pub second_encoder: bool,
    pub prediction_type: Option<&'static str>,
    pub hidden_act: &'static str,
    pub fp16: bool,
}

impl PipelineSpec {
    pub fn sd1() -> Self {
        Self {
            class: "StableDiffusionPipeline",
            cross_attention_dim: 768,
            in_channels: 4,
            text_time: false,
            second_encoder: false,
            prediction_type: None,
            hidden_act: "quick_gelu",
            fp16: false,
        }
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn write_json(path: &Path, v: &Value) {
    write(path, &serde_json::to_string_pretty(v).unwrap());
}

/// A diffusers folder with the configs `ModelLayout` reads.
pub fn pipeline(dir: &Path, spec: &PipelineSpec) {
    let mut index = json!({
        "_class_name": spec.class,
        "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    });
    let mut unet = json!({
        "_class_name": "UNet2DConditionModel",
        "cross_attention_dim": spec.cross_attention_dim,
        "in_channels": spec.in_channels,
        "sample_size": 32,
    });
    if spec.text_time {
        unet["addition_embed_type"] = json!("text_time");
    }
    write_json(&dir.join("unet/config.json"), &unet);
    write(&dir.join("unet/diffusion_pytorch_model.safetensors"), "w");
    if spec.fp16 {
        write(
            &dir.join("unet/diffusion_pytorch_model.fp16.safetensors"),
            "w",
        );
    }
    write_json(
        &dir.join("vae/config.json"),
        &json!({"block_out_channels": [32, 64]}),
    );
    write_json(
        &dir.join("text_encoder/config.json"),
        &json!({"hidden_act": spec.hidden_act}),
    );
    for tok in ["tokenizer/vocab.json", "tokenizer/merges.txt"] {
        write(&dir.join(tok), "{}");
    }
    let mut sched = json!({"_class_name": "DDIMScheduler"});
    if let Some(p) = spec.prediction_type {
        sched["prediction_type"] = json!(p);
    }
    write_json(&dir.join("scheduler/scheduler_config.json"), &sched);
    if spec.second_encoder {
        index["text_encoder_2"] = json!(["transformers", "CLIPTextModelWithProjection"]);
        index["tokenizer_2"] = json!(["transformers", "CLIPTokenizer"]);
        write_json(
            &dir.join("text_encoder_2/config.json"),
            &json!({"hidden_act": "gelu"}),
        );
        for tok in ["tokenizer_2/vocab.json", "tokenizer_2/merges.txt"] {
            write(&dir.join(tok), "{}");
        }
    }
    write_json(&dir.join("model_index.json"), &index);
}

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Lay out `files` of `repo` the way huggingface_hub does: blobs, a snapshot of links, refs/main.
#[cfg(unix)]
pub fn cache_repo(cache: &Path, repo: &str, files: &[&str], content: impl Fn(&str) -> String) {
    let folder = super::super::hf_cache::repo_folder(cache, repo);
    write(&folder.join("refs/main"), COMMIT);
    for (i, f) in files.iter().enumerate() {
        let blob = folder.join("blobs").join(format!("blob{i:04}"));
        write(&blob, &content(f));
        let link = folder.join("snapshots").join(COMMIT).join(f);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        // Relative links, as huggingface_hub makes them: ../../blobs/<hash> from the snapshot root.
        let up = "../".repeat(2 + f.matches('/').count());
        std::os::unix::fs::symlink(format!("{up}blobs/blob{i:04}"), &link).unwrap();
    }
}
