//! Black-box: `pallaidium fetch MODEL --quant Q` against the mock hub for a FLUX registry entry
//! whose quantized variant replaces the transformer: the full transformer weights are never
//! downloaded, the GGUF is, and an offline headless job then runs on the cached variant (no
//! --transformer given) and reproduces diffusers' image of that GGUF.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

use crate::mock_hub::{MockHub, RepoFile};
use crate::parity;
use crate::run::json_lines;

const REPO: &str = "pallaidium-test/flux-tiny";
const COMMIT: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d4f2d0c1e";
const TRANSFORMER: &str = "transformer/diffusion_pytorch_model.safetensors";
const GGUF: &str = "gguf/transformer-Q4_0.gguf";

const FILES: [&str; 16] = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer_2/tokenizer.json",
    "tokenizer_2/spiece.model",
    "tokenizer_2/tokenizer_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors",
    "transformer/config.json",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn repo_files() -> Vec<RepoFile> {
    let root = fixture().join("flux-schnell-tiny");
    FILES
        .iter()
        .chain(&[TRANSFORMER, GGUF])
        .map(|f| RepoFile::new(f, std::fs::read(root.join(f)).unwrap()))
        .collect()
}

fn models_toml() -> String {
    format!(
        r#"[[models]]
id = "flux-mock"
name = "FLUX tiny (mock hub)"
kind = "txt2img"
family = "flux"
repo = "{REPO}"
license = "apache-2.0"
license_url = "https://example.org/flux-tiny"
gated = false
native_resolution = [64, 64]

[models.defaults]
steps = 4
guidance = 0.0
width = 80
height = 64
scheduler = "flow-euler"
max_sequence_length = 16
embedded_guidance = false

[models.tokenizer]
format = "clip-bpe"
folders = ["tokenizer", "tokenizer_2"]

[[models.components]]
name = "pipeline"
files = ["model_index.json", "scheduler/scheduler_config.json"]

[[models.components]]
name = "tokenizers"
files = ["tokenizer/*.json", "tokenizer/merges.txt", "tokenizer_2/*.json", "tokenizer_2/spiece.model"]

[[models.components]]
name = "text_encoder"
files = ["text_encoder/config.json"]
weights = "text_encoder/model.safetensors"

[[models.components]]
name = "text_encoder_2"
files = ["text_encoder_2/config.json"]
weights = "text_encoder_2/model.safetensors"

[[models.components]]
name = "transformer"
files = ["transformer/config.json"]
weights = "{TRANSFORMER}"

[[models.components]]
name = "vae"
files = ["vae/config.json"]
weights = "vae/diffusion_pytorch_model.safetensors"

[[models.quants]]
name = "q4_0"
component = "transformer"
repo = "{REPO}"
file = "{GGUF}"
"#
    )
}

fn command(home: &Path, hub: &MockHub) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pallaidium"));
    for var in [
        "HF_HUB_CACHE",
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "ALL_PROXY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home.join("hf"))
        .env("PALLAIDIUM_HOME", home.join("pal"))
        .env("HF_ENDPOINT", hub.endpoint())
        .arg("--models")
        .arg(home.join("models.toml"))
        .timeout(Duration::from_secs(120));
    cmd
}

#[test]
fn fetch_quant_skips_the_full_transformer_and_a_job_runs_on_the_gguf() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("models.toml"), models_toml()).unwrap();
    let hub = MockHub::start(REPO, COMMIT, repo_files());
    // An unknown variant names the known ones.
    let out = command(home.path(), &hub)
        .args(["fetch", "flux-mock", "--quant", "q9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("q4_0"));
    let out = command(home.path(), &hub)
        .args(["fetch", "flux-mock", "--quant", "q4_0", "--dtype", "f32"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let downloaded: BTreeSet<String> = hub.downloaded();
    assert!(downloaded.contains(GGUF), "{downloaded:?}");
    assert!(!downloaded.contains(TRANSFORMER), "{downloaded:?}");
    // `models` says the variant is what the cache holds.
    let out = command(home.path(), &hub)
        .args(["models", "--json", "--device", "cpu"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"cached_quant\": \"q4_0\""), "{text}");
    // Offline, the job resolves to the cached GGUF by itself and matches diffusers' image of it.
    let r = parity::reference_json_lenient(
        &fixture().join("flux-schnell-tiny/reference/pipeline_cli_gguf_Q4_0.json"),
    );
    let cli = &r["cli"];
    let out = command(home.path(), &hub)
        .args([
            "--offline",
            "--headless",
            "--json",
            "--device",
            "cpu",
            "--dtype",
            "f32",
        ])
        .args(["--model", "flux-mock", "--seed", "0"])
        .args(["--prompt", cli["prompt"].as_str().unwrap()])
        .arg("--init-latents")
        .arg(fixture().join(cli["noise"].as_str().unwrap()))
        .arg("--out")
        .arg(home.path().join("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = json_lines(&out.stdout)
        .into_iter()
        .find(|v| v["event"] == "done")
        .unwrap();
    let png = PathBuf::from(done["outputs"][0].as_str().unwrap());
    let ours = image::open(&png).unwrap().to_rgb8();
    let expected = parity::reference_tensors(
        &fixture().join("flux-schnell-tiny/reference/pipeline_cli_gguf_Q4_0.safetensors"),
    );
    let mad = parity::image_mean_abs_diff(ours.as_raw(), parity::get(&expected, "image"));
    assert!(mad < parity::IMAGE_TOL_255, "mean abs diff {mad}");
}
