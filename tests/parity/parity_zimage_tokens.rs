//! Z-Image's Qwen3 tokenizer against ZImagePipeline's: the chat-templated text, its ids, and the
//! padded/truncated ids and attention masks at max_sequence_length 16 and 512
//! (tests/fixtures/zimage-tiny/reference/tokens.json, made by make_zimage.py), exactly.

use std::path::PathBuf;

use pallaidium::engines::zimage::tokenizer::{DEFAULT_MAX_LENGTH, QwenTokenizer, chat_text};
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zimage-tiny")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture().join("reference/tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

#[test]
fn chat_template_and_unpadded_ids_match_transformers() {
    let r = reference();
    let tok = QwenTokenizer::from_dir(&fixture().join("tokenizer")).unwrap();
    let prompts = r["prompts"].as_array().unwrap();
    let texts = r["texts"].as_array().unwrap();
    let unpadded = rows(&r["unpadded"]);
    assert!(prompts.len() >= 20);
    for ((p, t), want) in prompts.iter().zip(texts).zip(&unpadded) {
        let text = chat_text(p.as_str().unwrap());
        assert_eq!(text, t.as_str().unwrap());
        assert_eq!(&tok.ids(&text).unwrap(), want, "{text:?}");
    }
    assert_eq!(r["pad_id"].as_u64().unwrap() as u32, tok.pad_id());
}

#[test]
fn padded_ids_and_masks_match_the_pipeline() {
    let r = reference();
    let tok = QwenTokenizer::from_dir(&fixture().join("tokenizer")).unwrap();
    let prompts: Vec<&str> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for n in [16usize, DEFAULT_MAX_LENGTH] {
        let ids = rows(&r[format!("ids_{n}")]);
        let masks = rows(&r[format!("mask_{n}")]);
        let real: Vec<u64> = r[format!("real_tokens_{n}")]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let mut truncated = 0;
        for (i, p) in prompts.iter().enumerate() {
            let e = tok.encode(p, n).unwrap();
            assert_eq!(e.ids, ids[i], "ids, max_length {n}, prompt {p:?}");
            assert_eq!(e.mask, masks[i], "mask, max_length {n}, prompt {p:?}");
            assert_eq!(e.real_tokens() as u64, real[i]);
            truncated += usize::from(e.real_tokens() == n);
        }
        // 16 cuts most prompts (the template alone is 8 tokens); 512 none.
        if n == 16 {
            assert!(truncated > prompts.len() / 2, "{truncated}");
        } else {
            assert_eq!(truncated, 0);
        }
    }
}
