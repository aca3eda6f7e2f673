//! Prompt history across sessions: one JSON string a line in `$PALLAIDIUM_HOME/prompt_history.jsonl`
//! (JSON because prompts may span lines). Written to a temporary file and renamed.

use std::path::{Path, PathBuf};

pub fn path(home: &Path) -> PathBuf {
    home.join("prompt_history.jsonl")
}

/// Oldest first; unreadable lines are skipped, a missing file is an empty history.
pub fn load(file: &Path) -> Vec<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => text
            .lines()
            .filter_map(|l| serde_json::from_str::<String>(l).ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn save(file: &Path, history: &[String]) -> std::io::Result<()> {
    let mut text = String::new();
    for entry in history {
        text.push_str(&serde_json::to_string(entry).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let tmp = file.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multi_line_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert!(load(&file).is_empty());
        let h = vec!["a cat".to_owned(), "two\nlines \"quoted\"".to_owned()];
        save(&file, &h).unwrap();
        assert_eq!(load(&file), h);
    }
}
