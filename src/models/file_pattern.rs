//! Registry file names may hold `*` (e.g. `model-*-of-*.safetensors`), so an entry need not know
//! how many shards a repo splits its weights into, nor how a GGUF repo capitalises its file names:
//! the hub's listing, or the cached snapshot, says which files match. `*` matches any run of
//! characters except `/`; letters match regardless of ASCII case.

use std::path::Path;

pub fn is_pattern(name: &str) -> bool {
    name.contains('*')
}

/// Whether `name` matches `pattern` (`*` wildcards only).
pub fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != b'/')
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => {
                n.first().is_some_and(|b| b.eq_ignore_ascii_case(c)) && go(rest, &n[1..])
            }
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The files of `snapshot` that `pattern` (repo-relative) matches, repo-relative and sorted.
pub fn matching_in(snapshot: &Path, pattern: &str) -> Vec<String> {
    let (dir, _) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let Ok(entries) = std::fs::read_dir(snapshot.join(dir)) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            }
        })
        .filter(|rel| matches(pattern, rel))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_runs_within_a_name() {
        let p = "model-*-of-*.safetensors";
        assert!(matches(p, "model-00001-of-00002.safetensors"));
        assert!(!matches(p, "model.safetensors"));
        assert!(!matches("*.safetensors", "unet/model.safetensors"));
        assert!(matches("unet/*.safetensors", "unet/model.safetensors"));
        assert!(matches("exact.json", "exact.json") && !matches("exact.json", "exact.jsonx"));
        assert!(matches("*q4_k_m.gguf", "SmolLM2-1.7B-Instruct-Q4_K_M.gguf"));
        assert!(is_pattern(p) && !is_pattern("config.json"));
    }

    #[test]
    fn snapshot_files_are_found_by_pattern() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "model-00002-of-00002.safetensors",
            "model-00001-of-00002.safetensors",
            "config.json",
        ] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert_eq!(
            matching_in(dir.path(), "model-*-of-*.safetensors"),
            vec![
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        assert!(matching_in(dir.path(), "sub/*.bin").is_empty());
    }
}
