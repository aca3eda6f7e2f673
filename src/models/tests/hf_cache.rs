use super::fixtures::{COMMIT, cache_repo, write};
use crate::models::hf_cache::{cached_snapshot, is_cached, missing_files, repo_folder};
use crate::models::registry::Registry;

#[test]
fn snapshot_comes_from_refs_or_a_commit_hash() {
    let cache = tempfile::tempdir().unwrap();
    let repo = "org/name";
    cache_repo(cache.path(), repo, &["model_index.json"], |_| {
        "{}".to_owned()
    });
    let expected = repo_folder(cache.path(), repo)
        .join("snapshots")
        .join(COMMIT);
    assert!(repo_folder(cache.path(), repo).ends_with("models--org--name"));
    assert_eq!(
        cached_snapshot(cache.path(), repo, "main"),
        Some(expected.clone())
    );
    assert_eq!(cached_snapshot(cache.path(), repo, COMMIT), Some(expected));
    assert_eq!(
        cached_snapshot(cache.path(), repo, "dev"),
        None,
        "no refs/dev"
    );
    assert_eq!(
        cached_snapshot(cache.path(), repo, &"f".repeat(40)),
        None,
        "unknown commit"
    );
    assert_eq!(cached_snapshot(cache.path(), "org/other", "main"), None);
    assert_eq!(cached_snapshot(cache.path(), repo, "../../x"), None);
}

#[test]
fn is_cached_needs_every_file_of_the_variant_and_live_links() {
    let reg = Registry::shipped().unwrap();
    let entry = reg.get("sd15").unwrap();
    let cache = tempfile::tempdir().unwrap();
    assert!(!is_cached(cache.path(), entry, true));
    assert_eq!(
        missing_files(cache.path(), entry, true).len(),
        entry.required_files(true).len()
    );

    let fp16 = entry.required_files(true);
    cache_repo(cache.path(), &entry.repo, &fp16, |f| {
        format!("content of {f}")
    });
    assert!(is_cached(cache.path(), entry, true));
    let missing = missing_files(cache.path(), entry, false);
    assert!(
        missing.contains(&"unet/diffusion_pytorch_model.safetensors"),
        "{missing:?}"
    );
    assert!(!is_cached(cache.path(), entry, false));

    // A link whose blob is gone is not a cached file.
    let blobs = repo_folder(cache.path(), &entry.repo).join("blobs");
    let first_blob = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    std::fs::remove_file(first_blob).unwrap();
    assert!(!is_cached(cache.path(), entry, true));
    assert_eq!(missing_files(cache.path(), entry, true), vec![fp16[0]]);
}

#[test]
fn garbage_in_refs_is_not_a_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let folder = repo_folder(cache.path(), "a/b");
    write(&folder.join("refs/main"), "not-a-hash\n");
    std::fs::create_dir_all(folder.join("snapshots/not-a-hash")).unwrap();
    assert_eq!(cached_snapshot(cache.path(), "a/b", "main"), None);
}

#[test]
fn a_token_file_counts_only_when_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    // The environment may carry HF_TOKEN on a developer's machine: only assert what the file adds.
    let env_token = std::env::var("HF_TOKEN").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("HUGGING_FACE_HUB_TOKEN").is_ok_and(|v| !v.trim().is_empty());
    std::fs::write(&file, "  \n").unwrap();
    assert_eq!(
        crate::models::hf_cache::token_present(Some(&file)),
        env_token
    );
    std::fs::write(&file, "hf_abc\n").unwrap();
    assert!(crate::models::hf_cache::token_present(Some(&file)));
}
