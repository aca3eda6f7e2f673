//! A Hugging Face cache laid out on disk as huggingface_hub writes it (refs/, blobs/, snapshots/
//! with relative links) resolves and "fetches" without any network; offline misses, gated repos
//! without a token and pickles give the stated errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use pallaidium::models::fetch::{self, FetchOptions, progress::Silent};
use pallaidium::models::{Registry, resolve};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "test-org/sd1-tiny";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny")
}

fn registry(gated: bool, weights: &str) -> Registry {
    Registry::from_toml(&registry_toml(gated, weights), "test.toml").unwrap()
}

fn registry_toml(gated: bool, weights: &str) -> String {
    format!(
        r#"
[[models]]
id = "tiny"
name = "Tiny SD1"
kind = "txt2img"
family = "sd1"
repo = "{REPO}"
license = "mit"
license_url = "https://huggingface.co/{REPO}/blob/main/LICENSE"
gated = {gated}
native_resolution = [64, 64]
[models.defaults]
steps = 2
guidance = 7.5
width = 64
height = 64
scheduler = "ddim"
[models.tokenizer]
format = "clip-bpe"
folders = ["tokenizer"]
[[models.components]]
name = "pipeline"
files = ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"]
[[models.components]]
name = "text_encoder"
files = ["text_encoder/config.json"]
weights = "text_encoder/model.safetensors"
[[models.components]]
name = "unet"
files = ["unet/config.json"]
weights = "unet/{weights}"
[[models.components]]
name = "vae"
files = ["vae/config.json"]
weights = "vae/diffusion_pytorch_model.safetensors"
"#
    )
}

/// Copies the fixture into `cache` the way huggingface_hub does: each file once under blobs/<name>,
/// linked from snapshots/<commit>/<path> by a relative symlink; refs/main holds the commit.
fn lay_out_cache(cache: &Path) -> PathBuf {
    let repo = cache.join(format!("models--{}", REPO.replace('/', "--")));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let snapshot = repo.join("snapshots").join(COMMIT);
    let mut stack = vec![fixture()];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(fixture()).unwrap().to_path_buf();
            if rel.starts_with("reference") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            n += 1;
            let blob_name = format!("{n:040x}");
            std::fs::create_dir_all(repo.join("blobs")).unwrap();
            std::fs::copy(&path, repo.join("blobs").join(&blob_name)).unwrap();
            let link = snapshot.join(&rel);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            let depth = rel.components().count() + 1;
            let target: PathBuf = std::iter::repeat_n("..", depth)
                .collect::<PathBuf>()
                .join("blobs")
                .join(&blob_name);
            std::os::unix::fs::symlink(target, &link).unwrap();
        }
    }
    snapshot
}

fn options(cache: &Path, offline: bool) -> FetchOptions {
    FetchOptions {
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
        endpoint: None,
        timeouts: Default::default(),
        cancel: Default::default(),
    }
}

#[test]
fn a_laid_out_cache_resolves_and_needs_no_download() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = lay_out_cache(tmp.path());
    assert!(
        std::fs::symlink_metadata(snapshot.join("unet/config.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let reg = registry(false, "diffusion_pytorch_model.safetensors");
    let resolved = resolve(&reg, "tiny", tmp.path()).unwrap();
    assert_eq!(resolved.dir, snapshot);
    let entry = reg.get("tiny").unwrap();
    // Offline and online alike: everything is cached, so nothing touches the network.
    for offline in [true, false] {
        let report =
            fetch::fetch_entry(entry, false, &options(tmp.path(), offline), &mut Silent).unwrap();
        assert!(report.downloaded.is_empty());
        assert_eq!(report.snapshot, snapshot);
        assert_eq!(
            report.already_cached.len(),
            entry.required_files(false).len()
        );
    }
}

#[test]
fn offline_miss_names_repo_file_and_command() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = lay_out_cache(tmp.path());
    // A dangling link (its blob gone) is a miss, as an interrupted Python download leaves it.
    let blob =
        std::fs::canonicalize(snapshot.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::remove_file(blob).unwrap();
    let reg = registry(false, "diffusion_pytorch_model.safetensors");
    let err = fetch::fetch_entry(
        reg.get("tiny").unwrap(),
        false,
        &options(tmp.path(), true),
        &mut Silent,
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    for needle in [
        REPO,
        "vae/diffusion_pytorch_model.safetensors",
        "pallaidium fetch tiny",
        "offline",
    ] {
        assert!(msg.contains(needle), "{needle} in {msg}");
    }
    // resolve (the job path) says the same things.
    let msg = resolve(&reg, "tiny", tmp.path()).err().unwrap().to_string();
    assert!(
        msg.contains(REPO) && msg.contains("pallaidium fetch tiny"),
        "{msg}"
    );
}

#[test]
fn gated_repo_without_token_names_the_licence_page_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(true, "diffusion_pytorch_model.safetensors");
    let err = fetch::fetch_entry(
        reg.get("tiny").unwrap(),
        false,
        &options(tmp.path(), false),
        &mut Silent,
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("gated") && msg.contains("HF_TOKEN"), "{msg}");
    assert!(
        msg.contains(&format!("https://huggingface.co/{REPO}/blob/main/LICENSE")),
        "{msg}"
    );
}

#[test]
fn pickled_weights_are_refused_by_the_registry_and_by_fetch() {
    let toml_err = Registry::from_toml(
        &registry_toml(false, "diffusion_pytorch_model.bin"),
        "test.toml",
    )
    .err()
    .unwrap();
    assert_eq!(toml_err.exit_code(), 2);
    // An entry built in code (not through models.toml) is still refused before any request.
    let reg = registry(false, "diffusion_pytorch_model.safetensors");
    let mut entry = reg.get("tiny").unwrap().clone();
    for c in &mut entry.components {
        if c.name == "unet" {
            c.weights = Some("unet/diffusion_pytorch_model.bin".to_owned());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch::fetch_entry(&entry, false, &options(tmp.path(), false), &mut Silent)
        .err()
        .unwrap();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("diffusion_pytorch_model.bin") && msg.contains("safe_serialization=True"),
        "{msg}"
    );
}

#[test]
fn a_truncated_cached_safetensors_errors_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = lay_out_cache(tmp.path());
    let file = snapshot.join("unet/diffusion_pytorch_model.safetensors");
    let blob = std::fs::canonicalize(&file).unwrap();
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let err = pallaidium::models::safetensors_header::read_header(&file)
        .err()
        .unwrap();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model.safetensors"),
        "{err}"
    );
    let err = pallaidium::models::planner::ModelFootprint::read(&snapshot, false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");
}
