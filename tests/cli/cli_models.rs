//! Black-box tests of `pallaidium models` and of the bad models-file corpus in tests/fixtures/bad_models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const SHIPPED_IDS: &[&str] = &[
    "sd15",
    "sd15-inpaint",
    "sd21",
    "sd-turbo",
    "sdxl",
    "sdxl-inpaint",
    "sdxl-turbo",
];

/// The binary with its data, cache and token sources pointed at empty temporary folders.
fn pallaidium(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pallaidium").unwrap();
    cmd.env("PALLAIDIUM_HOME", home.join("home"))
        .env("HF_HOME", home.join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("PALLAIDIUM_LOG");
    cmd
}

fn models_json(home: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = pallaidium(home)
        .args(extra)
        .args(["models", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn models_json_lists_every_shipped_entry_with_a_verdict() {
    let home = tempfile::tempdir().unwrap();
    let list = models_json(home.path(), &[]);
    let ids: Vec<&str> = list.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in SHIPPED_IDS {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
    for m in &list {
        assert!(
            ["ok", "warn", "error"].contains(&m["verdict"].as_str().unwrap()),
            "{m}"
        );
        assert!(
            m["kind"].is_string()
                && m["family"].is_string()
                && m["repo"].is_string()
                && m["name"].is_string()
        );
        assert_eq!(
            m["cached"],
            serde_json::Value::Bool(false),
            "the cache is empty: {m}"
        );
        for f in m["findings"].as_array().unwrap() {
            assert!(
                ["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()),
                "{f}"
            );
            assert!(f["message"].is_string() && f["fix"].is_string());
        }
    }
    let sdxl = list.iter().find(|m| m["id"] == "sdxl").unwrap();
    assert_eq!(sdxl["family"], "sdxl");
    assert_eq!(sdxl["kind"], "txt2img");
}

#[test]
fn models_json_reports_a_cached_model() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hf/hub/models--stabilityai--sd-turbo");
    let commit = "a".repeat(40);
    std::fs::create_dir_all(cache.join("refs")).unwrap();
    std::fs::write(cache.join("refs/main"), &commit).unwrap();
    let files = [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ];
    for f in files {
        let p = cache.join("snapshots").join(&commit).join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "{}").unwrap();
    }
    let list = models_json(home.path(), &["--dtype", "f32"]);
    let turbo = list.iter().find(|m| m["id"] == "sd-turbo").unwrap();
    assert_eq!(turbo["cached"], serde_json::Value::Bool(true), "{turbo}");
    let sd15 = list.iter().find(|m| m["id"] == "sd15").unwrap();
    assert_eq!(sd15["cached"], serde_json::Value::Bool(false));
}

#[test]
fn a_user_models_file_adds_entries() {
    let home = tempfile::tempdir().unwrap();
    let bad = fixture("bad_value.toml");
    let text = std::fs::read_to_string(bad)
        .unwrap()
        .replace("width = 510", "width = 512");
    let user = home.path().join("mine.toml");
    std::fs::write(&user, text).unwrap();
    let list = models_json(home.path(), &["--models", user.to_str().unwrap()]);
    let ids: Vec<&str> = list.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"odd") && ids.contains(&"sd15"), "{ids:?}");
}

#[test]
fn the_human_table_has_a_row_per_model() {
    let home = tempfile::tempdir().unwrap();
    let out = pallaidium(home.path()).arg("models").output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for id in SHIPPED_IDS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{id} row missing:\n{text}"
        );
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad_models")
        .join(name)
}

/// Each bad file says in its header which line and key the error must name.
fn expectation(text: &str, what: &str) -> String {
    let tag = format!("# expect-{what}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&tag))
        .unwrap_or_else(|| panic!("fixture lacks `{tag}`"))
        .trim()
        .to_owned()
}

#[test]
fn every_bad_models_file_exits_2_naming_file_line_and_key() {
    let dir = fixture("");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the corpus is {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let line = expectation(&text, "line");
        let key = expectation(&text, "key");
        let home = tempfile::tempdir().unwrap();
        let out = pallaidium(home.path())
            .arg("--models")
            .arg(&file)
            .args(["models", "--json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy();
        assert_eq!(out.status.code(), Some(2), "{name}: stderr {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing on stdout, got {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains(name.as_ref()),
            "{name}: stderr does not name the file: {stderr}"
        );
        assert!(
            stderr.contains(&format!("line {line}")),
            "{name}: expected line {line}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{name}: expected key `{key}`: {stderr}"
        );
    }
}
