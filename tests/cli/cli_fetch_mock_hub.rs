//! Black-box: `pallaidium fetch` (and the headless run after it) against a local imitation of the
//! Hugging Face hub, speaking the HTTP hf-hub 0.4.3 speaks: the repo listing
//! (`/api/models/{repo}/revision/{rev}?blobs=true`), `{repo}/resolve/{rev}/{file}` probed with
//! `Range: bytes=0-0` (ETag / X-Linked-Etag, X-Repo-Commit, Content-Range), LFS files redirected
//! to a "CDN" path, and `Range: bytes=N-` downloads.

// Test helpers unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

use mock_hub::{Deny, MockHub, RepoFile};

const REPO: &str = "pallaidium-test/sd1-tiny";
const COMMIT: &str = "4f2d0c1e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const LICENCE: &str = "https://example.org/sd1-tiny-licence";
const UNET: &str = "unet/diffusion_pytorch_model.safetensors";

/// The files `--dtype f32` needs; f16 swaps the three weights for their `.fp16` variants.
const COMMON: [&str; 9] = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "text_encoder/config.json",
    "unet/config.json",
    "vae/config.json",
];
const WEIGHTS_F32: [&str; 3] = [
    "text_encoder/model.safetensors",
    UNET,
    "vae/diffusion_pytorch_model.safetensors",
];
const WEIGHTS_F16: [&str; 3] = [
    "text_encoder/model.fp16.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
];

fn needed(fp16: bool) -> BTreeSet<String> {
    let weights = if fp16 { WEIGHTS_F16 } else { WEIGHTS_F32 };
    COMMON
        .iter()
        .chain(&weights)
        .map(|s| s.to_string())
        .collect()
}

/// sd1-tiny's files (both weight variants) plus two the registry never asks for.
fn repo_files() -> Vec<RepoFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let mut files: Vec<RepoFile> = COMMON
        .iter()
        .chain(&WEIGHTS_F32)
        .chain(&WEIGHTS_F16)
        .map(|f| RepoFile::new(f, std::fs::read(root.join(f)).unwrap()))
        .collect();
    files.push(RepoFile::new("README.md", b"# sd1-tiny\n".to_vec()));
    files.push(RepoFile::new(
        "unet/diffusion_pytorch_model.bin",
        vec![0x80; 4096],
    ));
    files
}

fn models_toml(gated: bool) -> String {
    let components = [
        ("pipeline", "\"model_index.json\"", None),
        ("scheduler", "\"scheduler/scheduler_config.json\"", None),
        (
            "tokenizer",
            "\"tokenizer/vocab.json\", \"tokenizer/merges.txt\", \"tokenizer/special_tokens_map.json\", \"tokenizer/tokenizer_config.json\"",
            None,
        ),
        ("text_encoder", "\"text_encoder/config.json\"", Some(0)),
        ("unet", "\"unet/config.json\"", Some(1)),
        ("vae", "\"vae/config.json\"", Some(2)),
    ];
    let mut toml = format!(
        "[[models]]\nid = \"tiny-mock\"\nname = \"SD1 tiny (mock hub)\"\nkind = \"txt2img\"\n\
         family = \"sd1\"\nrepo = \"{REPO}\"\nrevision = \"main\"\nlicense = \"mit\"\n\
         license_url = \"{LICENCE}\"\ngated = {gated}\nnative_resolution = [64, 64]\n\n\
         [models.defaults]\nsteps = 2\nguidance = 7.5\nwidth = 64\nheight = 64\nscheduler = \"ddim\"\n\n\
         [models.tokenizer]\nformat = \"clip-bpe\"\nfolders = [\"tokenizer\"]\n"
    );
    for (name, files, weights) in components {
        toml += &format!("\n[[models.components]]\nname = \"{name}\"\nfiles = [{files}]\n");
        if let Some(i) = weights {
            toml += &format!(
                "weights = \"{}\"\nweights_fp16 = \"{}\"\n",
                WEIGHTS_F32[i], WEIGHTS_F16[i]
            );
        }
    }
    toml
}

/// A temp home (HF_HOME, PALLAIDIUM_HOME, outputs, the models file) and the mock hub.
struct Env {
    dir: tempfile::TempDir,
    hub: MockHub,
}

impl Env {
    fn new(gated: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("models.toml"), models_toml(gated)).unwrap();
        let hub = MockHub::start(REPO, COMMIT, repo_files());
        Self { dir, hub }
    }

    fn repo_dir(&self) -> PathBuf {
        self.dir
            .path()
            .join("hf/hub/models--pallaidium-test--sd1-tiny")
    }

    fn snapshot(&self) -> PathBuf {
        self.repo_dir().join("snapshots").join(COMMIT)
    }

    fn blob(&self, rfilename: &str) -> PathBuf {
        let f = self.hub.file(rfilename);
        self.repo_dir().join("blobs").join(f.etag())
    }

    /// The binary with this home, the mock hub and the models file; no proxies, tokens or
    /// offline switch from the caller's environment.
    fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pallaidium"));
        for var in [
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_OFFLINE",
            // The client honours proxies; the mock is on loopback.
            "ALL_PROXY",
            "all_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HF_HOME", self.dir.path().join("hf"))
            .env("PALLAIDIUM_HOME", self.dir.path().join("pal"))
            .env("HF_ENDPOINT", self.hub.endpoint())
            .arg("--models")
            .arg(self.dir.path().join("models.toml"));
        cmd
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::from_std(self.std_cmd());
        cmd.timeout(Duration::from_secs(120));
        cmd
    }

    fn fetch(&self, dtype: &str) -> std::process::Output {
        self.cmd()
            .args(["fetch", "tiny-mock", "--dtype", dtype])
            .output()
            .unwrap()
    }

    /// Every file `fp16` needs is a relative link from snapshots/<commit>/ to blobs/<etag> holding
    /// the hub's bytes; refs/main names the commit; no `.part` file is left.
    fn assert_cached(&self, fp16: bool) {
        let refs = std::fs::read_to_string(self.repo_dir().join("refs/main")).unwrap();
        assert_eq!(refs.trim(), COMMIT);
        for f in needed(fp16) {
            let link = self.snapshot().join(&f);
            let target = std::fs::read_link(&link)
                .unwrap_or_else(|e| panic!("{} is not a link: {e}", link.display()));
            assert!(target.is_relative(), "{f} -> {}", target.display());
            assert_eq!(
                std::fs::canonicalize(&link).unwrap(),
                std::fs::canonicalize(self.blob(&f)).unwrap(),
                "{f}"
            );
            assert_eq!(
                std::fs::read(&link).unwrap(),
                self.hub.file(&f).bytes,
                "{f}"
            );
        }
        let parts: Vec<_> = std::fs::read_dir(self.repo_dir().join("blobs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(parts.is_empty(), "left over: {parts:?}");
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn fetch_f32_writes_the_hf_cache_layout_and_an_offline_run_uses_it() {
    let env = Env::new(false);
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.hub.downloaded(), needed(false));
    assert_eq!(files_in(&env.snapshot()), needed(false));
    env.assert_cached(false);
    // LFS blobs are named by their SHA-256 (X-Linked-Etag), not the git blob id in ETag.
    let sha = env.hub.file(UNET).sha256.clone();
    assert!(env.repo_dir().join("blobs").join(sha).is_file());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("12 downloaded"), "{stdout}");
    // A progress bar line per file (stderr is not a terminal: one finished line each).
    let err = stderr(&out);
    for f in needed(false) {
        assert!(err.contains(&format!("{f} [")), "no bar for {f}: {err}");
    }

    env.hub.clear_log();
    let png_dir = env.dir.path().join("out");
    let run = env
        .cmd()
        .args([
            "--headless",
            "--offline",
            "--device",
            "cpu",
            "--model",
            "tiny-mock",
        ])
        .args([
            "--width", "64", "--height", "64", "--steps", "2", "--prompt", "x",
        ])
        .arg("--out")
        .arg(&png_dir)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let pngs: Vec<_> = files_in(&png_dir)
        .into_iter()
        .filter(|f| f.ends_with(".png"))
        .collect();
    assert_eq!(pngs.len(), 1, "{pngs:?}");
    let png = std::fs::read(png_dir.join(&pngs[0])).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(
        env.hub.requests().len(),
        0,
        "the offline run went to the hub"
    );
}

#[test]
fn fetch_f16_takes_the_fp16_variants_only() {
    let env = Env::new(false);
    let out = env.fetch("f16");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.hub.downloaded(), needed(true));
    assert_eq!(files_in(&env.snapshot()), needed(true));
    env.assert_cached(true);
}

#[test]
fn a_second_fetch_downloads_nothing_and_a_new_dtype_only_its_weights() {
    let env = Env::new(false);
    assert!(env.fetch("f32").status.success());
    env.hub.clear_log();
    let again = env.fetch("f32");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(env.hub.requests(), Vec::<String>::new());
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 downloaded"));

    let f16 = env.fetch("f16");
    assert!(f16.status.success(), "{}", stderr(&f16));
    let weights: BTreeSet<String> = WEIGHTS_F16.iter().map(|s| s.to_string()).collect();
    assert_eq!(env.hub.downloaded(), weights);
    env.assert_cached(true);
    env.assert_cached(false);
}

#[test]
fn after_main_moves_a_fetch_completes_the_new_snapshot_from_cached_blobs() {
    const NEXT: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b";
    let env = Env::new(false);
    assert!(env.fetch("f32").status.success());
    env.hub.move_main(NEXT);
    env.hub.clear_log();
    let out = env.fetch("f16");
    assert!(out.status.success(), "{}", stderr(&out));
    // Only the fp16 weights are new; the configs' blobs are linked into the new snapshot.
    let weights: BTreeSet<String> = WEIGHTS_F16.iter().map(|s| s.to_string()).collect();
    assert_eq!(env.hub.downloaded(), weights);
    let refs = std::fs::read_to_string(env.repo_dir().join("refs/main")).unwrap();
    assert_eq!(refs.trim(), NEXT);
    let snapshot = env.repo_dir().join("snapshots").join(NEXT);
    assert_eq!(files_in(&snapshot), needed(true));
    for f in needed(true) {
        assert_eq!(
            std::fs::read(snapshot.join(&f)).unwrap(),
            env.hub.file(&f).bytes,
            "{f}"
        );
        assert!(std::fs::read_link(snapshot.join(&f)).unwrap().is_relative());
    }
    // The model is complete offline at the commit main names now.
    let offline = env
        .cmd()
        .args(["--offline", "fetch", "tiny-mock", "--dtype", "f16"])
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", stderr(&offline));
}

#[test]
fn a_revision_pinned_to_a_commit_uses_it_and_writes_no_ref_for_it() {
    let env = Env::new(false);
    let toml =
        models_toml(false).replace("revision = \"main\"", &format!("revision = \"{COMMIT}\""));
    std::fs::write(env.dir.path().join("models.toml"), toml).unwrap();
    let out = env.fetch("f16");
    assert!(out.status.success(), "{}", stderr(&out));
    let prefix = format!("/{REPO}/resolve/{COMMIT}/");
    assert!(env.hub.requests().iter().any(|p| p.starts_with(&prefix)));
    assert_eq!(files_in(&env.snapshot()), needed(true));
    // huggingface_hub keeps refs/ for branches and tags only.
    assert!(!env.repo_dir().join("refs").join(COMMIT).exists());
    let offline = env
        .cmd()
        .args(["--offline", "fetch", "tiny-mock", "--dtype", "f16"])
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", stderr(&offline));
}

#[test]
fn a_corrupted_download_is_caught_removed_and_refetched() {
    let env = Env::new(false);
    env.hub.corrupt(Some(UNET));
    let out = env.fetch("f32");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(UNET) && err.contains("SHA-256") && err.contains("removed"),
        "{err}"
    );
    assert!(!env.blob(UNET).exists(), "the bad blob was kept");
    assert!(std::fs::symlink_metadata(env.snapshot().join(UNET)).is_err());

    env.hub.corrupt(None);
    env.hub.clear_log();
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    // Only what was missing: the unet weights and what came after it.
    let again = env.hub.downloaded();
    assert!(
        again.contains(UNET) && !again.contains("model_index.json"),
        "{again:?}"
    );
    env.assert_cached(false);
}

#[test]
fn refused_access_names_the_licence_page() {
    // The hub lists a gated repo's files to anyone but refuses its downloads.
    let env = Env::new(false);
    env.hub.deny(Some(Deny {
        status: 401,
        listing: false,
    }));
    let out = env.fetch("f32");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(LICENCE) && err.contains("HTTP 401") && err.contains("no token"),
        "{err}"
    );

    // Gated with a token whose account has not accepted the licence.
    let env = Env::new(true);
    env.hub.deny(Some(Deny {
        status: 403,
        listing: true,
    }));
    let out = env
        .cmd()
        .env("HF_TOKEN", "hf_mock")
        .args(["fetch", "tiny-mock", "--dtype", "f32"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(LICENCE) && err.contains("HTTP 403"), "{err}");
    assert_eq!(env.hub.auth_headers(), ["Bearer hf_mock"]);

    // Gated, with the token `huggingface-cli login` wrote and the licence accepted.
    env.hub.deny(None);
    std::fs::create_dir_all(env.dir.path().join("hf")).unwrap();
    std::fs::write(env.dir.path().join("hf/token"), "hf_from_file\n").unwrap();
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        env.hub
            .auth_headers()
            .contains(&"Bearer hf_from_file".to_owned())
    );
    env.assert_cached(false);
    std::fs::remove_file(env.dir.path().join("hf/token")).unwrap();
    std::fs::remove_dir_all(env.repo_dir()).unwrap();

    // Gated without any token: refused before asking the hub.
    env.hub.clear_log();
    let out = env.fetch("f32");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(LICENCE) && err.contains("HF_TOKEN"), "{err}");
    assert_eq!(env.hub.requests(), Vec::<String>::new());
}

#[test]
fn a_part_file_is_resumed_with_a_range_request() {
    let env = Env::new(false);
    let unet = env.hub.file(UNET).clone();
    let half = unet.bytes.len() / 2;
    let blobs = env.repo_dir().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(
        blobs.join(format!("{}.part", unet.sha256)),
        &unet.bytes[..half],
    )
    .unwrap();
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    let cdn = format!("/cdn/{}", unet.sha256);
    let ranges = env.hub.ranges_for(&cdn);
    assert!(ranges.contains(&format!("bytes={half}-")), "{ranges:?}");
    assert!(!ranges.contains(&"bytes=0-".to_owned()), "{ranges:?}");
    env.assert_cached(false);
}

#[test]
fn a_complete_part_file_left_before_its_rename_is_downloaded_again() {
    // hf-hub would ask for `bytes=<size>-` and get 416; the fetch removes such a .part first.
    let env = Env::new(false);
    let vae = env.hub.file(WEIGHTS_F32[2]).clone();
    let blobs = env.repo_dir().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{}.part", vae.sha256)), &vae.bytes).unwrap();
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    let ranges = env.hub.ranges_for(&format!("/cdn/{}", vae.sha256));
    assert!(ranges.contains(&"bytes=0-".to_owned()), "{ranges:?}");
    env.assert_cached(false);
}

#[test]
fn a_dropped_connection_is_resumed_where_it_stopped() {
    let env = Env::new(false);
    env.hub.truncate_once(Some(UNET));
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    let unet = env.hub.file(UNET).clone();
    let ranges = env.hub.ranges_for(&format!("/cdn/{}", unet.sha256));
    let half = unet.bytes.len() / 2;
    assert!(
        ranges.contains(&"bytes=0-".to_owned()) && ranges.contains(&format!("bytes={half}-")),
        "{ranges:?}"
    );
    env.assert_cached(false);
}

#[test]
fn an_endpoint_with_a_trailing_slash_works() {
    let env = Env::new(false);
    let out = env
        .cmd()
        .env("HF_ENDPOINT", format!("{}/", env.hub.endpoint()))
        .args(["fetch", "tiny-mock", "--dtype", "f16"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    env.assert_cached(true);
}

#[test]
fn a_file_the_repo_lacks_is_named_with_the_entry() {
    let env = Env::new(false);
    let toml = models_toml(false).replace("\"vae/config.json\"", "\"vae/config.yaml\"");
    std::fs::write(env.dir.path().join("models.toml"), toml).unwrap();
    let out = env.fetch("f32");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has no file vae/config.yaml") && err.contains("tiny-mock"),
        "{err}"
    );
    // Refused from the listing, before downloading anything.
    assert_eq!(env.hub.downloaded(), BTreeSet::new());
}

#[test]
fn a_star_pattern_fetches_every_matching_file_and_resolves_offline() {
    // Sharded weights (`model-*-of-*.safetensors`) are listed this way: the hub says how many.
    let env = Env::new(false);
    let toml = models_toml(false).replace(
        "\"tokenizer/vocab.json\", \"tokenizer/merges.txt\"",
        "\"tokenizer/*.json\", \"tokenizer/merges.txt\"",
    );
    std::fs::write(env.dir.path().join("models.toml"), toml).unwrap();
    let out = env.fetch("f32");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // vocab.json, special_tokens_map.json and tokenizer_config.json all came with the pattern.
    env.assert_cached(false);
    let missing = env
        .cmd()
        .args(["--offline", "--headless", "--plan", "--model", "tiny-mock"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(0), "{}", stderr(&missing));
    let toml = models_toml(false).replace("\"tokenizer/merges.txt\"", "\"tokenizer/*.bpe\"");
    std::fs::write(env.dir.path().join("models.toml"), toml).unwrap();
    let out = env.fetch("f32");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no file tokenizer/*.bpe"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn headless_without_offline_fetches_a_missing_model_first() {
    let env = Env::new(false);
    let png_dir = env.dir.path().join("out");
    let run = env
        .cmd()
        .args(["--headless", "--device", "cpu", "--model", "tiny-mock"])
        .args([
            "--width", "64", "--height", "64", "--steps", "2", "--prompt", "x",
        ])
        .arg("--out")
        .arg(&png_dir)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    // The CPU computes in f32: the full-precision weights are the ones fetched.
    assert_eq!(env.hub.downloaded(), needed(false));
    assert!(files_in(&png_dir).iter().any(|f| f.ends_with(".png")));
}

#[test]
fn a_stalled_download_times_out_keeps_its_bytes_and_the_next_fetch_resumes() {
    let env = Env::new(false);
    env.hub.stall(Some(UNET), 100);
    let out = env
        .cmd()
        .env("PALLAIDIUM_READ_TIMEOUT", "1")
        .args(["fetch", "tiny-mock", "--dtype", "f32"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "got no answer from {} within 1 s",
            env.hub.endpoint()
        )) && err.contains(UNET)
            && err.contains("PALLAIDIUM_READ_TIMEOUT"),
        "{err}"
    );
    // Each of the four attempts resumed where the last stalled; nothing reached the snapshot.
    let sha = env.hub.file(UNET).sha256.clone();
    let part = env.repo_dir().join("blobs").join(format!("{sha}.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 400);
    assert!(!env.blob(UNET).exists());
    assert!(std::fs::symlink_metadata(env.snapshot().join(UNET)).is_err());

    env.hub.stall(None, 0);
    let out = env.fetch("f32");
    assert!(out.status.success(), "{}", stderr(&out));
    let ranges = env.hub.ranges_for(&format!("/cdn/{sha}"));
    assert!(ranges.contains(&"bytes=400-".to_owned()), "{ranges:?}");
    env.assert_cached(false);
}

#[test]
fn sigterm_mid_download_exits_130_keeping_only_the_resumable_part() {
    let env = Env::new(false);
    env.hub.stall(Some(UNET), 100);
    let sha = env.hub.file(UNET).sha256.clone();
    let part = env.repo_dir().join("blobs").join(format!("{sha}.part"));
    let mut child = env
        .std_cmd()
        // Far beyond the bound below: only the cancel can end the run in time.
        .env("PALLAIDIUM_READ_TIMEOUT", "600")
        .args(["fetch", "tiny-mock", "--dtype", "f32"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) },
        0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not end the stalled download");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // The bytes that came stay for the next fetch to resume; nothing half-made is in blobs/ or
    // the snapshot.
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 100);
    assert!(!env.blob(UNET).exists());
    assert!(std::fs::symlink_metadata(env.snapshot().join(UNET)).is_err());
}

use crate::mock_hub;
