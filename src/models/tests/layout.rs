use super::fixtures::{PipelineSpec, pipeline, write};
use crate::models::entry::Family;
use crate::models::layout::{ModelLayout, PredictionType};

/// The folder lives as long as the returned guard.
fn open_kept(spec: &PipelineSpec) -> (tempfile::TempDir, ModelLayout) {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), spec);
    let layout = ModelLayout::open(dir.path()).unwrap();
    assert_eq!(layout.dir, dir.path());
    (dir, layout)
}

fn open(spec: &PipelineSpec) -> ModelLayout {
    open_kept(spec).1
}

#[test]
fn sd1_by_cross_attention_dim() {
    let l = open(&PipelineSpec::sd1());
    assert_eq!(l.family, Family::Sd1);
    assert!(!l.inpainting && !l.has_fp16_variants);
    assert_eq!(l.prediction_type, PredictionType::Epsilon);
    assert_eq!(l.paths.text_encoder_2, None);
    assert!(l.paths.denoiser.ends_with("unet") && l.paths.scheduler.ends_with("scheduler"));
    assert_eq!(l.pipeline_class, "StableDiffusionPipeline");
}

#[test]
fn sd2_by_cross_attention_dim_with_v_prediction() {
    let l = open(&PipelineSpec {
        cross_attention_dim: 1024,
        prediction_type: Some("v_prediction"),
        ..PipelineSpec::sd1()
    });
    assert_eq!(l.family, Family::Sd2);
    assert_eq!(l.prediction_type, PredictionType::VPrediction);
}

#[test]
fn sdxl_by_text_time_or_second_encoder() {
    let l = open(&PipelineSpec {
        cross_attention_dim: 2048,
        text_time: true,
        second_encoder: true,
        class: "StableDiffusionXLPipeline",
        ..PipelineSpec::sd1()
    });
    assert_eq!(l.family, Family::Sdxl);
    assert!(l.paths.text_encoder_2.is_some() && l.paths.tokenizer_2.is_some());
    // A tiny model with only the second encoder present.
    let l = open(&PipelineSpec {
        cross_attention_dim: 64,
        second_encoder: true,
        ..PipelineSpec::sd1()
    });
    assert_eq!(l.family, Family::Sdxl);
}

#[test]
fn tiny_models_fall_back_on_the_text_encoder() {
    let l = open(&PipelineSpec {
        cross_attention_dim: 32,
        ..PipelineSpec::sd1()
    });
    assert_eq!(l.family, Family::Sd1);
    let l = open(&PipelineSpec {
        cross_attention_dim: 32,
        hidden_act: "gelu",
        ..PipelineSpec::sd1()
    });
    assert_eq!(l.family, Family::Sd2);
}

#[test]
fn inpainting_and_fp16_variants_are_detected() {
    let (_dir, l) = open_kept(&PipelineSpec {
        in_channels: 9,
        fp16: true,
        ..PipelineSpec::sd1()
    });
    assert!(l.inpainting && l.has_fp16_variants);
    let w = ModelLayout::weights_file(&l.paths.denoiser, true).unwrap();
    assert!(
        w.ends_with("diffusion_pytorch_model.fp16.safetensors"),
        "{}",
        w.display()
    );
    let w = ModelLayout::weights_file(&l.paths.denoiser, false).unwrap();
    assert!(w.ends_with("diffusion_pytorch_model.safetensors"));
    // fp16 asked for but absent: the full file.
    std::fs::remove_file(
        l.paths
            .denoiser
            .join("diffusion_pytorch_model.fp16.safetensors"),
    )
    .unwrap();
    let w = ModelLayout::weights_file(&l.paths.denoiser, true).unwrap();
    assert!(w.ends_with("diffusion_pytorch_model.safetensors"));
    let msg = ModelLayout::weights_file(&l.paths.vae, true)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no weights found") && msg.contains("vae"),
        "{msg}"
    );
}

#[test]
fn defaults_follow_family_and_unet_sample_size() {
    // Tiny fixture: sample_size 32, two VAE blocks -> scale 2 -> 64 px.
    let l = open(&PipelineSpec::sd1());
    assert_eq!(l.vae_scale_factor, 2);
    let d = l.default_params();
    assert_eq!((d.width, d.height, d.steps, d.guidance), (64, 64, 30, 7.5));
    assert_eq!(Family::Sdxl.default_params().width, 1024);
    assert_eq!(
        Family::Sdxl.default_params().scheduler,
        crate::vocab::Scheduler::Euler
    );
    assert_eq!(Family::Sd1.default_params().width, 512);
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &PipelineSpec::sd1());
    std::fs::remove_file(dir.path().join("vae/config.json")).unwrap();
    let err = ModelLayout::open(dir.path()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("vae/config.json is missing"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

    pipeline(dir.path(), &PipelineSpec::sd1());
    std::fs::remove_file(dir.path().join("tokenizer/merges.txt")).unwrap();
    let msg = ModelLayout::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("tokenizer/") && msg.contains("merges.txt"),
        "{msg}"
    );

    pipeline(dir.path(), &PipelineSpec::sd1());
    write(&dir.path().join("unet/config.json"), "{ not json");
    let msg = ModelLayout::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("unet/config.json") && msg.contains("not valid JSON"),
        "{msg}"
    );

    let msg = ModelLayout::open(&dir.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is not a folder"), "{msg}");
}

#[test]
fn pickled_weights_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("pytorch_model.bin"), "x");
    write(&dir.path().join("model.bin"), "x");
    let msg = ModelLayout::weights_file(dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("pickled") && msg.contains("safetensors"),
        "{msg}"
    );
}
