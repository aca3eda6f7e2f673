use super::fixtures::{COMMIT, PipelineSpec, cache_repo, pipeline};
use crate::models::entry::Family;
use crate::models::hf_cache::repo_folder;
use crate::models::registry::Registry;
use crate::models::resolve::resolve;

#[test]
fn a_local_folder_resolves_with_family_defaults() {
    let reg = Registry::shipped().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("my-model");
    pipeline(
        &model,
        &PipelineSpec {
            cross_attention_dim: 768,
            ..PipelineSpec::sd1()
        },
    );
    let r = resolve(&reg, &model.display().to_string(), dir.path()).unwrap();
    assert_eq!(r.id, "my-model");
    assert!(r.entry.is_none());
    assert_eq!(r.family, Family::Sd1);
    assert_eq!(r.defaults, r.layout.as_ref().unwrap().default_params());
}

#[test]
fn a_registry_id_resolves_to_its_cached_snapshot() {
    let reg = Registry::shipped().unwrap();
    let entry = reg.get("sd15").unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Real configs so the layout reader is happy; weights are placeholders.
    let src = tempfile::tempdir().unwrap();
    pipeline(src.path(), &PipelineSpec::sd1());
    let files = entry.required_files(true);
    cache_repo(cache.path(), &entry.repo, &files, |f| {
        std::fs::read_to_string(src.path().join(f)).unwrap_or_else(|_| "{}".to_owned())
    });
    let r = resolve(&reg, "sd15", cache.path()).unwrap();
    assert_eq!(r.id, "sd15");
    assert_eq!(
        r.dir,
        repo_folder(cache.path(), &entry.repo)
            .join("snapshots")
            .join(COMMIT)
    );
    assert_eq!(r.entry.as_ref().map(|e| e.id.as_str()), Some("sd15"));
    assert_eq!(r.defaults, entry.defaults);
    assert_eq!(r.family, Family::Sd1);
    // Its repo id works too.
    assert_eq!(resolve(&reg, &entry.repo, cache.path()).unwrap().id, "sd15");
}

#[test]
fn an_uncached_model_names_repo_file_and_fetch_command() {
    let reg = Registry::shipped().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = resolve(&reg, "sdxl-turbo", cache.path()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("stabilityai/sdxl-turbo"), "{msg}");
    assert!(msg.contains("model_index.json"), "{msg}");
    assert!(msg.contains("pallaidium fetch sdxl-turbo"), "{msg}");
}

#[test]
fn an_unknown_id_lists_close_matches() {
    let reg = Registry::shipped().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let msg = resolve(&reg, "sdxl-trubo", cache.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`sdxl-turbo`"), "{msg}");
    assert!(msg.contains("pallaidium models"), "{msg}");
    let msg = resolve(&reg, "sd1", cache.path()).unwrap_err().to_string();
    assert!(msg.contains("`sd15`"), "{msg}");
    let msg = resolve(&reg, "./nowhere", cache.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn a_gguf_entry_resolves_to_its_own_file_among_several() {
    let reg = Registry::shipped().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let entry = reg.get("smollm2-1.7b-instruct").unwrap();
    // Another tool fetched a second quantisation into the same snapshot.
    cache_repo(
        cache.path(),
        &entry.repo,
        &[
            "SmolLM2-1.7B-Instruct-Q8_0.gguf",
            "SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
        ],
        |_| "GGUF".to_owned(),
    );
    let r = resolve(&reg, "smollm2-1.7b-instruct", cache.path()).unwrap();
    assert_eq!(r.family, Family::GgufLlm);
    assert_eq!(r.kind, crate::models::Kind::Text);
    assert!(r.layout.is_none());
    assert_eq!(
        r.dir.file_name().unwrap(),
        "SmolLM2-1.7B-Instruct-Q4_K_M.gguf"
    );
}

#[test]
fn an_audio_model_resolves_without_a_diffusers_layout() {
    let reg = Registry::shipped().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let entry = reg.get("whisper-tiny").unwrap();
    let files = entry.required_files(false);
    cache_repo(cache.path(), &entry.repo, &files, |f| {
        if f == "config.json" {
            r#"{"model_type":"whisper"}"#.to_owned()
        } else {
            "{}".to_owned()
        }
    });
    let r = resolve(&reg, "whisper-tiny", cache.path()).unwrap();
    assert_eq!(
        (r.family, r.kind),
        (Family::Whisper, crate::models::Kind::Stt)
    );
    assert!(r.dir.join("model.safetensors").is_file());
    // A local folder is recognised from its config.json.
    let local = resolve(&reg, &r.dir.display().to_string(), cache.path()).unwrap();
    assert_eq!(local.family, Family::Whisper);
    assert!(local.entry.is_none());
}

/// flux-schnell's files from the tiny fixture (configs and tokenizers real, weights stand-ins).
fn flux_content(f: &str) -> String {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux-schnell-tiny");
    std::fs::read_to_string(fixture.join(f)).unwrap_or_else(|_| "{}".to_owned())
}

#[test]
fn a_flux_model_without_full_weights_resolves_to_a_cached_quantized_variant() {
    let reg = Registry::shipped().unwrap();
    let entry = reg.get("flux-schnell").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let files = crate::models::quant::variant(entry, "q4_k_s").unwrap();
    let base = crate::models::quant::base_without(entry, &files);
    let needed = base.required_files(false);
    assert!(!needed.iter().any(|f| f.contains("-of-")), "{needed:?}");
    assert!(needed.contains(&"transformer/config.json"));
    // Nothing cached: the error names the variant as a way out.
    let err = resolve(&reg, "flux-schnell", cache.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--quant q4_k_s"), "{err}");
    cache_repo(cache.path(), &entry.repo, &needed, flux_content);
    // The base alone is not enough: the GGUFs are missing.
    assert!(resolve(&reg, "flux-schnell", cache.path()).is_err());
    for q in &files {
        let one = crate::models::quant::file_entry(entry, q);
        assert_eq!(one.required_files(false), vec![q.file.as_str()]);
        cache_repo(cache.path(), &q.repo, &[q.file.as_str()], |_| {
            "gguf".to_owned()
        });
    }
    let r = resolve(&reg, "flux-schnell", cache.path()).unwrap();
    assert_eq!(r.family, Family::Flux);
    assert_eq!(r.quant.as_deref(), Some("q4_k_s"));
    let t = r.weights.transformer.unwrap();
    assert!(t.ends_with("flux1-schnell-Q4_K_S.gguf"), "{}", t.display());
    assert!(
        r.weights
            .text_encoder_2
            .unwrap()
            .ends_with("t5-v1_1-xxl-encoder-Q8_0.gguf")
    );
    let err = crate::models::quant::variant(entry, "q3_nope")
        .unwrap_err()
        .to_string();
    assert!(err.contains("q4_k_s") && err.contains("q8_0"), "{err}");
}

#[test]
fn a_flux_folder_resolves_with_schnell_or_dev_defaults() {
    let reg = Registry::shipped().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let schnell = resolve(
        &reg,
        &root.join("flux-schnell-tiny").display().to_string(),
        root.as_path(),
    )
    .unwrap();
    assert_eq!(schnell.family, Family::Flux);
    assert_eq!(
        (schnell.defaults.steps, schnell.defaults.max_sequence_length),
        (4, Some(256))
    );
    assert_eq!(schnell.defaults.embedded_guidance, Some(false));
    assert!(schnell.defaults.scheduler.is_flow());
    let dev = resolve(
        &reg,
        &root.join("flux-dev-tiny").display().to_string(),
        root.as_path(),
    )
    .unwrap();
    assert_eq!((dev.defaults.steps, dev.defaults.guidance), (28, 3.5));
    assert_eq!(dev.defaults.embedded_guidance, Some(true));
    let layout = dev.layout.unwrap();
    assert!(layout.paths.denoiser.ends_with("transformer"));
    assert_eq!(layout.vae_scale_factor, 8);
}

#[test]
fn a_z_image_folder_resolves_with_turbo_defaults() {
    let reg = Registry::shipped().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let z = resolve(
        &reg,
        &root.join("zimage-tiny").display().to_string(),
        root.as_path(),
    )
    .unwrap();
    assert_eq!(z.family, Family::ZImage);
    assert_eq!((z.defaults.steps, z.defaults.guidance), (9, 0.0));
    assert_eq!(z.defaults.max_sequence_length, Some(512));
    assert!(z.defaults.scheduler.is_flow());
    let layout = z.layout.unwrap();
    assert!(layout.paths.denoiser.ends_with("transformer"));
    assert_eq!(layout.paths.text_encoder_2, None);
    assert_eq!(layout.vae_scale_factor, 8);
    // A folder without the Qwen3 tokenizer is refused naming it.
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["transformer", "vae", "text_encoder", "scheduler"] {
        let from = root.join("zimage-tiny").join(sub);
        std::fs::create_dir_all(tmp.path().join(sub)).unwrap();
        for f in std::fs::read_dir(&from).unwrap().flatten() {
            if f.file_name().to_string_lossy().ends_with(".json") {
                std::fs::copy(f.path(), tmp.path().join(sub).join(f.file_name())).unwrap();
            }
        }
    }
    std::fs::copy(
        root.join("zimage-tiny/model_index.json"),
        tmp.path().join("model_index.json"),
    )
    .unwrap();
    let err = resolve(&reg, &tmp.path().display().to_string(), root.as_path())
        .err()
        .unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn upscaler_entries_resolve_to_their_file_and_a_file_alone_is_one() {
    let reg = Registry::shipped().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let entry = reg.get("realesrgan-x2plus").unwrap();
    // The repo holds both networks; the entry's file is the one loaded.
    cache_repo(
        cache.path(),
        &entry.repo,
        &[
            "RealESRGAN_x4plus.safetensors",
            "RealESRGAN_x2plus.safetensors",
        ],
        |_| "weights".to_owned(),
    );
    let r = resolve(&reg, "realesrgan-x2plus", cache.path()).unwrap();
    assert_eq!(
        (r.family, r.kind),
        (Family::Realesrgan, crate::models::Kind::Upscale)
    );
    assert_eq!(r.dir.file_name().unwrap(), "RealESRGAN_x2plus.safetensors");
    assert_eq!(r.defaults.scale, Some(2));
    // A converted file given as the model: its scale comes from its shapes.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upscale/rrdb_x2.safetensors");
    let r = resolve(&reg, file.to_str().unwrap(), cache.path()).unwrap();
    assert_eq!((r.family, r.defaults.scale), (Family::Realesrgan, Some(2)));
    assert_eq!(r.dir, file);
}
