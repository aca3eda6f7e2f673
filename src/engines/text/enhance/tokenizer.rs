//! The enhancer's tokenizer: a tokenizer.json beside the GGUF, or one rebuilt from the GGUF's own
//! `tokenizer.ggml.*` metadata (llama.cpp's export of a byte-level BPE), and token ids back to bytes.
//!
//! Rebuilding goes through the tokenizer.json format so the `tokenizers` crate runs exactly the
//! pipeline transformers runs (added tokens split first, NFC, the model's split regex, byte-level
//! mapping, BPE merges by rank).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::gguf_file;
use serde_json::{Value, json};
use tokenizers::{DecoderWrapper, Tokenizer};

use crate::error::{Error, Result};

/// Qwen2's pre-tokenizer split (transformers' Qwen2Tokenizer, llama.cpp pre "qwen2").
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

// llama.cpp token types (gguf `tokenizer.ggml.token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_UNUSED: i32 = 5;
const TYPE_BYTE: i32 = 6;

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Special added tokens: never shown (decode with skip_special_tokens).
    special: HashSet<u32>,
    /// GPT-2's byte-to-unicode table, reversed: token characters back to raw bytes.
    char_to_byte: HashMap<char, u8>,
}

impl TextTokenizer {
    /// A tokenizer.json (transformers' fast-tokenizer file). Its decoder must be byte-level: that is
    /// what streaming decode below undoes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| {
            Error::bad_input(format!(
                "{}: not a usable tokenizer.json ({e}); remove it to use the GGUF's own tokenizer, \
                 or download the model's tokenizer.json again",
                path.display()
            ))
        })?;
        if !matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_))) {
            return Err(Error::bad_input(format!(
                "{}: the prompt enhancer needs a byte-level BPE tokenizer (Qwen2, SmolLM2); \
                 this one decodes differently",
                path.display()
            )));
        }
        Ok(Self::wrap(inner))
    }

    /// Rebuilds the tokenizer from a GGUF's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(content: &gguf_file::Content, file: &Path) -> Result<Self> {
        let json = tokenizer_json_from_gguf(content, file)?;
        let inner = Tokenizer::from_str(&json.to_string()).map_err(|e| {
            Error::bad_input(format!(
                "{}: its tokenizer.ggml.* metadata does not form a tokenizer ({e}); \
                 put the model's tokenizer.json beside it",
                file.display()
            ))
        })?;
        Ok(Self::wrap(inner))
    }

    fn wrap(inner: Tokenizer) -> Self {
        let special = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let char_to_byte = byte_to_char()
            .into_iter()
            .enumerate()
            .map(|(b, c)| (c, b as u8))
            .collect();
        Self {
            inner,
            special,
            char_to_byte,
        }
    }

    /// Ids of `text` as transformers' `tokenizer(text, add_special_tokens=False)` gives them
    /// (special tokens written in the text, like `<|im_start|>`, become their ids).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(|e| {
            Error::job_failed(format!("tokenizing the enhancer prompt failed: {e}"))
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The raw bytes a token stands for; none for special tokens and ids outside the vocabulary
    /// (as transformers' decode with skip_special_tokens drops them).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        if self.special.contains(&id) {
            return Vec::new();
        }
        let Some(token) = self.inner.id_to_token(id) else {
            return Vec::new();
        };
        // The byte-level decoder maps each character back to its byte; a token with a character
        // outside the table (a non-byte-level added token) stands for its own UTF-8 text.
        token
            .chars()
            .map(|c| self.char_to_byte.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .unwrap_or_else(|| token.into_bytes())
    }
}

/// GPT-2's reversible byte-to-unicode table: printable bytes map to themselves, the rest to
/// code points from U+0100 on, in byte order.
fn byte_to_char() -> Vec<char> {
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
            let code = if printable {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(code).unwrap_or('\u{fffd}')
        })
        .collect()
}

fn meta<'a>(
    content: &'a gguf_file::Content,
    key: &str,
    file: &Path,
) -> Result<&'a gguf_file::Value> {
    content.metadata.get(key).ok_or_else(|| {
        Error::bad_input(format!(
            "{}: metadata key {key} is missing; put the model's tokenizer.json beside it",
            file.display()
        ))
    })
}

fn bad_meta(file: &Path, key: &str, e: impl std::fmt::Display) -> Error {
    Error::bad_input(format!(
        "{}: metadata key {key} is malformed ({e})",
        file.display()
    ))
}

fn string_list(content: &gguf_file::Content, key: &str, file: &Path) -> Result<Vec<String>> {
    let values = meta(content, key, file)?
        .to_vec()
        .map_err(|e| bad_meta(file, key, e))?;
    values
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| bad_meta(file, key, e)))
        .collect()
}

/// The tokenizer.json that llama.cpp's gpt2-style vocab export came from.
fn tokenizer_json_from_gguf(content: &gguf_file::Content, file: &Path) -> Result<Value> {
    let model = meta(content, "tokenizer.ggml.model", file)?
        .to_string()
        .map_err(|e| bad_meta(file, "tokenizer.ggml.model", e))?;
    if model != "gpt2" {
        return Err(Error::bad_input(format!(
            "{}: tokenizer.ggml.model is '{model}'; only byte-level BPE ('gpt2') is rebuilt from \
             GGUF metadata: put the model's tokenizer.json beside the file",
            file.display()
        )));
    }
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        Some(v) => v
            .to_string()
            .map_err(|e| bad_meta(file, "tokenizer.ggml.pre", e))?
            .clone(),
        None => "default".to_string(),
    };
    let (normalizer, pre_tokenizer) = match pre.as_str() {
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
            ]}),
        ),
        // SmolLM2: single digits, then GPT-2's own split.
        "smollm" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
            ]}),
        ),
        "default" | "gpt2" => (
            Value::Null,
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}),
        ),
        other => {
            return Err(Error::bad_input(format!(
                "{}: tokenizer.ggml.pre '{other}' is not known here (qwen2, smollm, gpt2 are); \
                 put the model's tokenizer.json beside the file",
                file.display()
            )));
        }
    };

    let tokens = string_list(content, "tokenizer.ggml.tokens", file)?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| bad_meta(file, "tokenizer.ggml.token_type", e))?
            .iter()
            .map(|t| {
                t.to_i32()
                    .map_err(|e| bad_meta(file, "tokenizer.ggml.token_type", e))
            })
            .collect::<Result<_>>()?,
        None => vec![TYPE_NORMAL; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(bad_meta(
            file,
            "tokenizer.ggml.token_type",
            format!("{} types for {} tokens", types.len(), tokens.len()),
        ));
    }
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, (token, kind)) in tokens.iter().zip(&types).enumerate() {
        match *kind {
            // llama.cpp's [PADn] fillers past the real vocabulary: no text, as in transformers.
            TYPE_UNUSED => {}
            TYPE_CONTROL | TYPE_USER_DEFINED => {
                added.push(
                    json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": *kind == TYPE_CONTROL}),
                );
                vocab.insert(token.clone(), json!(id));
            }
            TYPE_NORMAL | TYPE_UNKNOWN | TYPE_BYTE => {
                vocab.insert(token.clone(), json!(id));
            }
            other => {
                return Err(bad_meta(
                    file,
                    "tokenizer.ggml.token_type",
                    format!("unknown token type {other}"),
                ));
            }
        }
    }
    let merges = string_list(content, "tokenizer.ggml.merges", file)?
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok(json!([a, b])),
            None => Err(bad_meta(
                file,
                "tokenizer.ggml.merges",
                format!("merge '{m}' has no space"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let table = byte_to_char();
        assert_eq!(table[b' ' as usize], '\u{120}'); // 'Ġ'
        assert_eq!(table[b'\n' as usize], '\u{10a}'); // 'Ċ'
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table.iter().collect::<HashSet<_>>().len(), 256);
    }
}
