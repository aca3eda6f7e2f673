//! Token ids against transformers' CLIPTokenizer: every committed `reference/tokens.json`
//! (tests/fixtures/make_fixtures.py), in both tokenizer layouts, on the full real CLIP vocabulary and
//! the truncated ones of the tiny models, including the pad-with-"!" tokenizers and truncation counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use pallaidium::engines::sd::tokenizer::ClipTokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(folder: &str) -> Value {
    let path = fixtures().join(folder).join("reference/tokens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

/// Checks every prompt's `key` ids against `tokenizer`; returns how many prompts were compared.
fn check(tokenizer: &ClipTokenizer, reference: &Value, key: &str, label: &str) -> usize {
    let prompts = reference["prompts"].as_array().unwrap();
    let mut failures = Vec::new();
    for entry in prompts {
        let prompt = entry["prompt"].as_str().unwrap();
        let expected = ids(&entry[key]);
        let encoded = tokenizer.encode(prompt);
        if encoded.ids != expected {
            failures.push(format!(
                "{label} {key} {prompt:?}\n  expected {expected:?}\n  got      {:?}",
                encoded.ids
            ));
        }
        if key == "ids" {
            let truncated = usize::try_from(entry["truncated_tokens"].as_u64().unwrap()).unwrap();
            if encoded.truncated_tokens != truncated {
                failures.push(format!(
                    "{label} {prompt:?}: truncated {} tokens, transformers {truncated}",
                    encoded.truncated_tokens
                ));
            }
        }
        if let Some(unpadded) = entry.get("unpadded_ids") {
            let mut full = vec![tokenizer.bos_id()];
            full.extend(tokenizer.tokenize(prompt));
            full.push(tokenizer.eos_id());
            if full != ids(unpadded) {
                failures.push(format!(
                    "{label} unpadded {prompt:?}\n  expected {unpadded}\n  got      {full:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    prompts.len()
}

fn load(path: &str) -> ClipTokenizer {
    ClipTokenizer::from_dir(&fixtures().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_specials(tokenizer: &ClipTokenizer, reference: &Value) {
    assert_eq!(
        u64::from(tokenizer.pad_id()),
        reference["pad_id"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(tokenizer.eos_id()),
        reference["eos_id"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(tokenizer.bos_id()),
        reference["bos_id"].as_u64().unwrap()
    );
    assert_eq!(tokenizer.max_length(), 77);
}

#[test]
fn full_clip_vocabulary_matches_transformers() {
    let reference = reference("clip-tokenizer");
    let tokenizer = load("clip-tokenizer");
    assert_eq!(tokenizer.vocab_size(), 49408);
    assert_specials(&tokenizer, &reference);
    assert!(check(&tokenizer, &reference, "ids", "clip-tokenizer") >= 15);
}

#[test]
fn long_prompt_is_truncated_with_the_dropped_count() {
    let reference = reference("clip-tokenizer");
    let tokenizer = load("clip-tokenizer");
    let long = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["truncated_tokens"].as_u64().unwrap() > 0)
        .expect("the references include a prompt longer than 77 tokens");
    let encoded = tokenizer.encode(long["prompt"].as_str().unwrap());
    assert_eq!(encoded.ids.len(), 77);
    assert_eq!(encoded.ids[76], tokenizer.eos_id());
    assert_eq!(
        encoded.truncated_tokens as u64,
        long["truncated_tokens"].as_u64().unwrap()
    );
    assert!(encoded.truncated_tokens > 0);
}

#[test]
fn sd1_vocab_json_layout_matches_transformers() {
    let sd1 = reference("sd1-tiny");
    let tokenizer = load("sd1-tiny/tokenizer");
    assert!(fixtures().join("sd1-tiny/tokenizer/merges.txt").is_file());
    assert_specials(&tokenizer, &sd1);
    check(&tokenizer, &sd1, "ids", "sd1-tiny");
    let inpaint = reference("sd1-inpaint-tiny");
    check(
        &load("sd1-inpaint-tiny/tokenizer"),
        &inpaint,
        "ids",
        "sd1-inpaint-tiny",
    );
}

#[test]
fn sd2_tokenizer_json_layout_pads_with_exclamation_marks() {
    let reference = reference("sd2-tiny");
    let dir = fixtures().join("sd2-tiny/tokenizer");
    assert!(dir.join("tokenizer.json").is_file() && !dir.join("vocab.json").exists());
    let tokenizer = load("sd2-tiny/tokenizer");
    assert_specials(&tokenizer, &reference);
    assert_eq!(tokenizer.pad_id(), 0, "SD 2 pads with \"!\" (id 0)");
    check(&tokenizer, &reference, "ids", "sd2-tiny");
}

#[test]
fn sdxl_both_tokenizers_match_transformers() {
    let reference = reference("sdxl-tiny");
    check(
        &load("sdxl-tiny/tokenizer"),
        &reference,
        "ids",
        "sdxl-tiny tokenizer",
    );
    let second = load("sdxl-tiny/tokenizer_2");
    assert_eq!(second.pad_id(), 0);
    check(&second, &reference, "ids_2", "sdxl-tiny tokenizer_2");
}
