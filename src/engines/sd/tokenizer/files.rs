//! Reading the CLIP tokenizer's files in both layouts found in the wild: `tokenizer.json`, and
//! `vocab.json` + `merges.txt`, plus the special tokens of tokenizer_config.json / special_tokens_map.json.
//! Every unreadable or malformed file is bad input naming that file.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::{BOS, DEFAULT_MAX_LENGTH, EOS};
use crate::{Error, Result};

/// What a tokenizer.json holds: vocabulary, merges and added tokens (content, id).
pub(super) type TokenizerJson = (HashMap<String, u32>, Merges, Vec<(String, u32)>);

/// (left, right, the file it came from).
pub(super) type Merges = Vec<(String, String, String)>;

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "{}: cannot read the tokenizer file: {e}",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::bad_input(format!(
            "{}: not valid JSON ({e}); the file is damaged, download it again",
            path.display()
        ))
    })
}

fn vocab_from(value: &Value, path: &Path) -> Result<HashMap<String, u32>> {
    let map = value.as_object().ok_or_else(|| {
        Error::bad_input(format!(
            "{}: the vocabulary is not a JSON object of token -> id",
            path.display()
        ))
    })?;
    map.iter()
        .map(|(token, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .map(|id| (token.clone(), id))
                .ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}: vocabulary entry \"{token}\" has no integer id",
                        path.display()
                    ))
                })
        })
        .collect()
}

pub(super) fn read_vocab_json(path: &Path) -> Result<HashMap<String, u32>> {
    vocab_from(&read_json(path)?, path)
}

pub(super) fn read_merges_txt(path: &Path) -> Result<Merges> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "{}: cannot read the tokenizer file: {e}",
            path.display()
        ))
    })?;
    let source = path.display().to_string();
    let mut merges = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if (n == 0 && line.starts_with("#version")) || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_owned(), b.to_owned(), source.clone()));
            }
            _ => {
                return Err(Error::bad_input(format!(
                    "{source}: line {} is not a merge (two tokens separated by a space): \"{line}\"",
                    n + 1
                )));
            }
        }
    }
    Ok(merges)
}

pub(super) fn read_tokenizer_json(path: &Path) -> Result<TokenizerJson> {
    let json = read_json(path)?;
    let bad = |what: &str| Error::bad_input(format!("{}: {what}", path.display()));
    let model = json
        .get("model")
        .ok_or_else(|| bad("no \"model\" section"))?;
    if let Some(kind) = model.get("type").and_then(Value::as_str)
        && kind != "BPE"
    {
        return Err(bad(&format!(
            "model type is {kind}, a CLIP tokenizer is BPE"
        )));
    }
    let vocab = vocab_from(
        model.get("vocab").ok_or_else(|| bad("no model.vocab"))?,
        path,
    )?;
    let source = path.display().to_string();
    let raw = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no model.merges list"))?;
    let mut merges = Vec::with_capacity(raw.len());
    for (n, merge) in raw.iter().enumerate() {
        // Older files write "a b", newer ones ["a", "b"].
        let pair = match merge {
            Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())),
            Value::Array(items) => match items.as_slice() {
                [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
                _ => None,
            },
            _ => None,
        };
        let (a, b) =
            pair.ok_or_else(|| bad(&format!("model.merges[{n}] is not a pair of tokens")))?;
        merges.push((a, b, source.clone()));
    }
    let mut added = Vec::new();
    for token in json
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let content = token.get("content").and_then(Value::as_str);
        let id = token
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok());
        match (content, id) {
            (Some(content), Some(id)) => added.push((content.to_owned(), id)),
            _ => return Err(bad("an added_tokens entry lacks its content or id")),
        }
    }
    Ok((vocab, merges, added))
}

/// Special tokens and length from tokenizer_config.json / special_tokens_map.json, with
/// CLIPTokenizer's defaults for what they leave out.
pub(super) struct SpecialConfig {
    pub(super) bos: String,
    pub(super) eos: String,
    pub(super) pad: String,
    pub(super) unk: String,
    pub(super) added: Vec<(String, u32)>,
    pub(super) max_length: usize,
    /// Which file the values came from, for error messages.
    pub(super) source: String,
}

impl SpecialConfig {
    pub(super) fn read(dir: &Path) -> Result<Self> {
        let mut config = Self {
            bos: BOS.to_owned(),
            eos: EOS.to_owned(),
            pad: EOS.to_owned(),
            unk: EOS.to_owned(),
            added: Vec::new(),
            max_length: DEFAULT_MAX_LENGTH,
            source: dir.display().to_string(),
        };
        let tokenizer_config = dir.join("tokenizer_config.json");
        if tokenizer_config.is_file() {
            let json = read_json(&tokenizer_config)?;
            config.apply_tokens(&json, &tokenizer_config)?;
            config.source = tokenizer_config.display().to_string();
            match json.get("model_max_length").and_then(Value::as_f64) {
                // Configs without a real limit say 1e30; the CLIP text encoder has 77 positions.
                Some(n) if (2.0..=4096.0).contains(&n) => config.max_length = n as usize,
                Some(n) => {
                    tracing::debug!(model_max_length = n, "unusable model_max_length, using 77")
                }
                None => {}
            }
            if let Some(decoder) = json.get("added_tokens_decoder").and_then(Value::as_object) {
                for (id, token) in decoder {
                    let content = token.get("content").and_then(Value::as_str);
                    match (id.parse::<u32>(), content) {
                        (Ok(id), Some(content)) => config.added.push((content.to_owned(), id)),
                        _ => {
                            return Err(Error::bad_input(format!(
                                "{}: added_tokens_decoder entry \"{id}\" is malformed",
                                tokenizer_config.display()
                            )));
                        }
                    }
                }
            }
        }
        let special_map = dir.join("special_tokens_map.json");
        if special_map.is_file() {
            config.apply_tokens(&read_json(&special_map)?, &special_map)?;
            config.source = special_map.display().to_string();
        }
        Ok(config)
    }

    fn apply_tokens(&mut self, json: &Value, path: &Path) -> Result<()> {
        for (key, slot) in [
            ("bos_token", &mut self.bos),
            ("eos_token", &mut self.eos),
            ("pad_token", &mut self.pad),
            ("unk_token", &mut self.unk),
        ] {
            match json.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => *slot = s.clone(),
                Some(obj) => match obj.get("content").and_then(Value::as_str) {
                    Some(s) => *slot = s.to_owned(),
                    None => {
                        return Err(Error::bad_input(format!(
                            "{}: {key} is neither a string nor an object with \"content\"",
                            path.display()
                        )));
                    }
                },
            }
        }
        Ok(())
    }
}
