#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;

/// A T5TokenizerFast tokenizer.json (Parler-TTS's tiny fixture: a 123-piece Unigram, `</s>` = 1,
/// `<pad>` = 0).
fn t5_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parler-tiny")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pallaidium-t5tok-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pads_after_eos_to_max_length() {
    let tok = T5Tokenizer::from_dir(&t5_dir()).unwrap();
    assert_eq!(tok.pad_id(), 0);
    let ids = tok.encode("a cat", 16).unwrap();
    assert_eq!(ids.len(), 16);
    let eos = ids.iter().position(|&i| i == 1).unwrap();
    assert!(eos > 0);
    assert!(ids[eos + 1..].iter().all(|&i| i == 0), "{ids:?}");
    assert!(ids[..eos].iter().all(|&i| i != 0 && i != 1));
    // The empty prompt is `</s>` and padding, as in transformers.
    let empty = tok.encode("", 4).unwrap();
    assert_eq!(empty, vec![1, 0, 0, 0]);
}

#[test]
fn truncation_keeps_n_minus_1_tokens_and_eos() {
    let tok = T5Tokenizer::from_dir(&t5_dir()).unwrap();
    let prompt = "a photograph of an astronaut riding a horse on the moon at night";
    let full = tok.encode(prompt, 128).unwrap();
    let len = full.iter().position(|&i| i == 1).unwrap();
    assert!(len > 8, "{full:?}");
    let cut = tok.encode(prompt, 8).unwrap();
    assert_eq!(cut.len(), 8);
    assert_eq!(&cut[..7], &full[..7]);
    assert_eq!(cut[7], 1);
    assert_eq!(tok.encode(prompt, 1).unwrap(), vec![1]);
    assert!(tok.encode(prompt, 0).is_err());
}

#[test]
fn missing_or_broken_files_are_bad_input() {
    let empty = scratch("empty");
    let err = T5Tokenizer::from_dir(&empty).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains(&*empty.to_string_lossy()),
        "{err}"
    );
    std::fs::write(empty.join("spiece.model"), b"x").unwrap();
    let err = T5Tokenizer::from_dir(&empty).unwrap_err().to_string();
    assert!(
        err.contains("spiece.model") && err.contains("save_pretrained"),
        "{err}"
    );
    std::fs::write(empty.join("tokenizer.json"), b"{ not json").unwrap();
    let err = T5Tokenizer::from_dir(&empty).unwrap_err().to_string();
    assert!(err.contains("cannot load the T5 tokenizer"), "{err}");
    std::fs::remove_dir_all(&empty).unwrap();

    let dir = scratch("config");
    std::fs::copy(t5_dir().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"pad_token": "<nope>"}"#,
    )
    .unwrap();
    let err = T5Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("<nope>"), "{err}");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"padding_side": "up"}"#,
    )
    .unwrap();
    let err = T5Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("padding_side"), "{err}");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"pad_token": {"content": "</s>"}, "padding_side": "left"}"#,
    )
    .unwrap();
    let tok = T5Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.pad_id(), 1);
    let ids = tok.encode("", 3).unwrap();
    assert_eq!(ids, vec![1, 1, 1]);
    std::fs::remove_dir_all(&dir).unwrap();
}
