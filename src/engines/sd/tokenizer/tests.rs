//! Unit tests of the CLIP tokenizer on a tiny in-memory vocabulary.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::Error;
use std::fs;

/// Byte chars, byte chars + </w>, the merges joined, then bos/eos: CLIP's vocabulary layout.
fn vocab_for(merges: &[(&str, &str)]) -> HashMap<String, u32> {
    let bytes = bytes_to_unicode();
    let mut tokens: Vec<String> = bytes.iter().map(char::to_string).collect();
    tokens.extend(bytes.iter().map(|c| format!("{c}{END_OF_WORD}")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.extend([BOS.to_owned(), EOS.to_owned()]);
    tokens.into_iter().zip(0u32..).collect()
}

const MERGES: &[(&str, &str)] = &[
    ("h", "i</w>"),
    ("a", "a"),
    ("aa", "a</w>"),
    ("c", "a"),
    ("ca", "t</w>"),
];

fn write_slow(dir: &Path, merges: &[(&str, &str)], config: &str) {
    let vocab = serde_json::to_string(&vocab_for(merges)).unwrap();
    fs::write(dir.join("vocab.json"), vocab).unwrap();
    let lines: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    fs::write(
        dir.join("merges.txt"),
        format!("#version: 0.2\n{}\n", lines.join("\n")),
    )
    .unwrap();
    fs::write(dir.join("tokenizer_config.json"), config).unwrap();
}

fn tiny(config: &str) -> (tempfile::TempDir, ClipTokenizer) {
    let dir = tempfile::tempdir().unwrap();
    write_slow(dir.path(), MERGES, config);
    let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

fn id(tok: &ClipTokenizer, s: &str) -> u32 {
    tok.vocab[s]
}

#[test]
fn byte_map_matches_clip() {
    let map = bytes_to_unicode();
    assert_eq!(map[usize::from(b'a')], 'a');
    assert_eq!(map[usize::from(b' ')], '\u{120}'); // the GPT-2 "Ġ"
    assert_eq!(map[0], '\u{100}');
    let distinct: std::collections::HashSet<char> = map.iter().copied().collect();
    assert_eq!(distinct.len(), 256);
}

#[test]
fn bpe_merges_by_rank_and_marks_word_ends() {
    let (_d, tok) = tiny(r#"{"model_max_length": 77}"#);
    assert_eq!(tok.tokenize("hi"), vec![id(&tok, "hi</w>")]);
    assert_eq!(tok.tokenize("cat"), vec![id(&tok, "cat</w>")]);
    // "aaa" -> a a a</w> -> (a,a) aa a</w> -> (aa,a</w>) aaa</w>.
    assert_eq!(tok.tokenize("aaa"), vec![id(&tok, "aaa</w>")]);
    // "aaaa" -> a a a a</w>: (a,a) merges left to right, not overlapping: aa a a</w>; no rank left.
    assert_eq!(
        tok.tokenize("aaaa"),
        vec![id(&tok, "aa"), id(&tok, "a"), id(&tok, "a</w>")]
    );
    // No merge applies: plain characters, the last with </w>.
    assert_eq!(tok.tokenize("xy"), vec![id(&tok, "x"), id(&tok, "y</w>")]);
}

#[test]
fn normalizes_whitespace_case_and_splits_punctuation() {
    let (_d, tok) = tiny(r#"{"model_max_length": 77}"#);
    let expected = vec![id(&tok, "hi</w>"), id(&tok, ",</w>"), id(&tok, "cat</w>")];
    assert_eq!(tok.tokenize("  HI,\t\n Cat  "), expected);
    assert_eq!(tok.tokenize("Hi , CAT"), expected.clone());
    let with_contraction = tok.tokenize("cat's");
    assert_eq!(
        with_contraction,
        vec![id(&tok, "cat</w>"), id(&tok, "'"), id(&tok, "s</w>")]
    );
    assert_eq!(tok.tokenize("7"), vec![id(&tok, "7</w>")]);
    assert_eq!(tok.tokenize("é"), vec![id(&tok, "Ã"), id(&tok, "©</w>")]);
}

#[test]
fn special_tokens_are_split_from_raw_text() {
    let (_d, tok) = tiny(r#"{"model_max_length": 77, "pad_token": "!"}"#);
    let eos = tok.eos_id();
    assert_eq!(
        tok.tokenize("hi<|endoftext|>cat"),
        vec![id(&tok, "hi</w>"), eos, id(&tok, "cat</w>")]
    );
    // The pad "!" is a special token: it becomes the pad id, not "!</w>".
    assert_eq!(tok.pad_id(), id(&tok, "!"));
    assert_eq!(tok.tokenize("hi!"), vec![id(&tok, "hi</w>"), tok.pad_id()]);
    // Lowercased text that only spells a special after normalization goes through BPE.
    assert_ne!(tok.tokenize("<|ENDOFTEXT|>"), vec![eos]);
}

#[test]
fn encode_pads_and_truncates_with_a_count() {
    let (_d, tok) = tiny(r#"{"model_max_length": 8}"#);
    let short = tok.encode("hi cat");
    assert_eq!(short.truncated_tokens, 0);
    let (b, e, h, c) = (
        tok.bos_id(),
        tok.eos_id(),
        id(&tok, "hi</w>"),
        id(&tok, "cat</w>"),
    );
    assert_eq!(short.ids, vec![b, h, c, e, e, e, e, e]);
    let long = tok.encode("hi hi hi hi hi hi hi hi hi");
    assert_eq!(long.truncated_tokens, 3);
    assert_eq!(long.ids, vec![b, h, h, h, h, h, h, e]);
    assert_eq!(tok.encode("").ids, vec![b, e, e, e, e, e, e, e]);
    // --max-sequence-length: a shorter length cuts and pads to it; a longer one is the most the
    // encoder has.
    let four = tok.encode_to("hi cat hi", 4);
    assert_eq!((four.ids, four.truncated_tokens), (vec![b, h, c, e], 1));
    assert_eq!(tok.encode_to("hi", 5).ids, vec![b, h, e, e, e]);
    assert_eq!(tok.encode_to("hi cat", 100).ids, short.ids);
    assert_eq!(tok.encode_to("hi cat", 8).ids, short.ids);
}

#[test]
fn special_tokens_map_overrides_tokenizer_config() {
    let dir = tempfile::tempdir().unwrap();
    write_slow(dir.path(), MERGES, r#"{"pad_token": "<|endoftext|>"}"#);
    fs::write(
        dir.path().join("special_tokens_map.json"),
        r#"{"pad_token": {"content": "!"}}"#,
    )
    .unwrap();
    let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.pad_id(), id(&tok, "!"));
    // No model_max_length anywhere: CLIP's 77.
    assert_eq!(tok.max_length(), 77);
}

#[test]
fn tokenizer_json_accepts_both_merge_spellings() {
    let vocab = vocab_for(MERGES);
    for merges in [
        serde_json::json!(
            MERGES
                .iter()
                .map(|(a, b)| format!("{a} {b}"))
                .collect::<Vec<_>>()
        ),
        serde_json::json!(MERGES.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::json!({
            "added_tokens": [{"id": vocab["!"], "content": "!", "special": true}],
            "model": {"type": "BPE", "vocab": vocab, "merges": merges},
        });
        fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
        fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"pad_token": "!", "model_max_length": 77}"#,
        )
        .unwrap();
        let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.tokenize("cat!"), vec![vocab["cat</w>"], vocab["!"]]);
    }
}

fn bad_input_message(result: Result<ClipTokenizer>) -> String {
    match result {
        Err(Error::BadInput { message }) => message,
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn missing_and_garbled_files_are_bad_input_naming_the_file() {
    let empty = tempfile::tempdir().unwrap();
    assert!(bad_input_message(ClipTokenizer::from_dir(empty.path())).contains("tokenizer.json"));

    let dir = tempfile::tempdir().unwrap();
    write_slow(dir.path(), MERGES, "{}");
    fs::remove_file(dir.path().join("merges.txt")).unwrap();
    assert!(bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("merges.txt"));

    write_slow(dir.path(), MERGES, "{}");
    fs::write(dir.path().join("vocab.json"), "{\"a\": 0,").unwrap();
    assert!(bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("vocab.json"));

    write_slow(dir.path(), MERGES, "{}");
    fs::write(
        dir.path().join("merges.txt"),
        "#version: 0.2\nh i</w>\nthree part line\n",
    )
    .unwrap();
    let msg = bad_input_message(ClipTokenizer::from_dir(dir.path()));
    assert!(
        msg.contains("merges.txt") && msg.contains("line 3"),
        "{msg}"
    );

    write_slow(dir.path(), MERGES, "{}");
    fs::write(dir.path().join("merges.txt"), "#version: 0.2\nq z\n").unwrap();
    assert!(
        bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("not in the vocabulary")
    );

    write_slow(dir.path(), MERGES, r#"{"pad_token": "<pad>"}"#);
    let msg = bad_input_message(ClipTokenizer::from_dir(dir.path()));
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("<pad>"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("tokenizer.json"),
        r#"{"model": {"type": "WordPiece"}}"#,
    )
    .unwrap();
    assert!(bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("tokenizer.json"));
}

#[test]
fn decomposed_accents_tokenize_like_composed_ones() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip-tokenizer");
    let tok = super::ClipTokenizer::from_dir(&dir).unwrap();
    let composed = tok.tokenize("caf\u{e9} na\u{ef}ve");
    let decomposed = tok.tokenize("cafe\u{301} nai\u{308}ve");
    assert_eq!(composed, decomposed);
}
