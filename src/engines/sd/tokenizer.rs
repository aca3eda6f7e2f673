//! CLIP's byte-level BPE tokenizer, read from a model's own tokenizer folder, giving the same ids as
//! transformers' `CLIPTokenizer` (5.x, the `tokenizers`-backed one; there is no ftfy path any more).
//!
//! The pipeline it mirrors: special tokens (bos, eos, pad, unk and any added tokens) are split out of
//! the raw text first; the rest is normalized (whitespace runs -> one space, lowercase), split with
//! CLIP's regex (whitespace dropped), mapped byte-by-byte to printable characters and merged by BPE
//! with `</w>` marking the end of each word. A consequence worth knowing: a tokenizer whose pad token
//! is `"!"` (SD 2, SDXL's second tokenizer) turns every `"!"` in a prompt into the pad id.
//!
//! Known gap: transformers applies Unicode NFC before the rest; this crate has no normalization
//! table, so text typed in decomposed form (e + combining accent) can tokenize differently.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use regex::Regex;
use serde_json::Value;

use crate::{Error, Result};

/// CLIP's pre-tokenizer: what matches becomes a word, everything else (whitespace) is dropped.
const CLIP_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
const END_OF_WORD: &str = "</w>";
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
/// CLIP text encoders have 77 positions; used when the config gives no usable model_max_length.
const DEFAULT_MAX_LENGTH: usize = 77;
/// Bound on cached words, so a long-running TUI session does not grow without limit.
const CACHE_LIMIT: usize = 16_384;

/// A prompt's ids: `bos, tokens..., eos`, truncated and padded to `max_length` with the pad id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// How many tokens did not fit and were dropped (0 when the prompt fit).
    pub truncated_tokens: usize,
}

pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    /// (left id, right id) -> (rank, merged id).
    merges: HashMap<(u32, u32), (usize, u32)>,
    byte_chars: [char; 256],
    split: Regex,
    whitespace: Regex,
    /// Split out of the raw text before anything else, as added tokens are.
    specials: Vec<(String, u32)>,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    unk_id: u32,
    max_length: usize,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("merges", &self.merges.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("pad_id", &self.pad_id)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl ClipTokenizer {
    /// Load from a tokenizer folder: `tokenizer.json` when present (what current transformers saves),
    /// else `vocab.json` + `merges.txt`; special tokens and `model_max_length` from
    /// `tokenizer_config.json`, overridden by `special_tokens_map.json` (transformers' precedence).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let tokenizer_json = dir.join("tokenizer.json");
        let (vocab, merges, added) = if tokenizer_json.is_file() {
            read_tokenizer_json(&tokenizer_json)?
        } else if dir.join("vocab.json").is_file() || dir.join("merges.txt").is_file() {
            let vocab = read_vocab_json(&dir.join("vocab.json"))?;
            let merges = read_merges_txt(&dir.join("merges.txt"))?;
            (vocab, merges, Vec::new())
        } else {
            return Err(Error::bad_input(format!(
                "{}: no CLIP tokenizer found (expected tokenizer.json, or vocab.json and merges.txt); \
                 point the model at a complete diffusers folder",
                dir.display()
            )));
        };
        let config = SpecialConfig::read(dir)?;
        Self::build(vocab, &merges, added, config)
    }

    fn build(
        vocab: HashMap<String, u32>,
        merge_pairs: &[(String, String, String)],
        added: Vec<(String, u32)>,
        config: SpecialConfig,
    ) -> Result<Self> {
        let mut merges = HashMap::with_capacity(merge_pairs.len());
        for (rank, (left, right, source)) in merge_pairs.iter().enumerate() {
            let id_of = |tok: &str| {
                vocab.get(tok).copied().ok_or_else(|| {
                    Error::bad_input(format!(
                        "{source}: merge {} \"{left} {right}\" uses \"{tok}\", which is not in the \
                         vocabulary; the tokenizer files do not belong together",
                        rank + 1
                    ))
                })
            };
            let key = (id_of(left)?, id_of(right)?);
            let merged = id_of(&format!("{left}{right}"))?;
            // A repeated pair keeps its first (lowest) rank, as the BPE builders do.
            merges.entry(key).or_insert((rank, merged));
        }
        let lookup = |role: &str, token: &str| -> Result<u32> {
            added
                .iter()
                .find(|(content, _)| content == token)
                .map(|(_, id)| *id)
                .or_else(|| vocab.get(token).copied())
                .ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}: {role} token \"{token}\" is not in the vocabulary",
                        config.source
                    ))
                })
        };
        let bos_id = lookup("bos", &config.bos)?;
        let eos_id = lookup("eos", &config.eos)?;
        let pad_id = lookup("pad", &config.pad)?;
        let unk_id = lookup("unk", &config.unk)?;
        let mut specials: Vec<(String, u32)> = added
            .into_iter()
            .chain(config.added)
            .chain([
                (config.bos.clone(), bos_id),
                (config.eos.clone(), eos_id),
                (config.pad.clone(), pad_id),
                (config.unk.clone(), unk_id),
            ])
            .filter(|(content, _)| !content.is_empty())
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        specials.dedup_by(|a, b| a.0 == b.0);
        if config.max_length < 2 {
            return Err(Error::bad_input(format!(
                "{}: model_max_length {} leaves no room for the start and end tokens",
                config.source, config.max_length
            )));
        }
        Ok(Self {
            vocab,
            merges,
            byte_chars: bytes_to_unicode(),
            split: compile(CLIP_PATTERN)?,
            whitespace: compile(r"\s+")?,
            specials,
            bos_id,
            eos_id,
            pad_id,
            unk_id,
            max_length: config.max_length,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// `bos, tokens..., eos` padded to `max_length()`; a prompt that does not fit keeps its first
    /// `max_length() - 2` tokens, and the drop is logged as a warning.
    pub fn encode(&self, text: &str) -> Encoded {
        let tokens = self.tokenize(text);
        let room = self.max_length - 2;
        let truncated_tokens = tokens.len().saturating_sub(room);
        if truncated_tokens > 0 {
            tracing::warn!(
                truncated_tokens,
                max_length = self.max_length,
                "the prompt is longer than the text encoder's {} tokens: its last {} tokens were dropped",
                self.max_length,
                truncated_tokens
            );
        }
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(tokens.iter().take(room));
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        Encoded {
            ids,
            truncated_tokens,
        }
    }

    /// The prompt's token ids without bos/eos, padding or truncation.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some((start, len, id)) = self.next_special(rest) {
            self.tokenize_plain(&rest[..start], &mut out);
            out.push(id);
            rest = &rest[start + len..];
        }
        self.tokenize_plain(rest, &mut out);
        out
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The padded length of `encode`'s ids (77 for every SD text encoder).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Leftmost special token in `text`, the longest one where several start there (as added-token
    /// matching does): (byte offset, byte length, id).
    fn next_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (content, id) in &self.specials {
            if let Some(pos) = text.find(content.as_str()) {
                let better = match best {
                    None => true,
                    Some((b_pos, b_len, _)) => pos < b_pos || (pos == b_pos && content.len() > b_len),
                };
                if better {
                    best = Some((pos, content.len(), *id));
                }
            }
        }
        best
    }

    fn tokenize_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let collapsed = self.whitespace.replace_all(text, " ");
        // Per character, as the tokenizers Lowercase normalizer does (no final-sigma rule).
        let normalized: String = collapsed.chars().flat_map(char::to_lowercase).collect();
        for word in self.split.find_iter(&normalized) {
            let mapped: String = word
                .as_str()
                .bytes()
                .map(|b| self.byte_chars[usize::from(b)])
                .collect();
            self.bpe_word(&mapped, out);
        }
    }

    fn bpe_word(&self, word: &str, out: &mut Vec<u32>) {
        if let Ok(cache) = self.cache.lock()
            && let Some(ids) = cache.get(word)
        {
            out.extend_from_slice(ids);
            return;
        }
        let ids = self.bpe(word);
        out.extend_from_slice(&ids);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(word.to_owned(), ids);
        }
    }

    /// CLIP's BPE: start from characters (the last one carrying `</w>`), then repeatedly merge every
    /// occurrence of the lowest-ranked adjacent pair, left to right, until no pair has a rank.
    fn bpe(&self, word: &str) -> Vec<u32> {
        let chars: Vec<char> = word.chars().collect();
        let mut symbols: Vec<u32> = chars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let piece = if i + 1 == chars.len() {
                    format!("{c}{END_OF_WORD}")
                } else {
                    c.to_string()
                };
                self.vocab.get(&piece).copied().unwrap_or(self.unk_id)
            })
            .collect();
        while symbols.len() > 1 {
            let best = symbols
                .windows(2)
                .filter_map(|pair| self.merges.get(&(pair[0], pair[1])).map(|m| ((pair[0], pair[1]), *m)))
                .min_by_key(|(_, (rank, _))| *rank);
            let Some((pair, (_, merged))) = best else {
                break;
            };
            let mut next = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len() && (symbols[i], symbols[i + 1]) == pair {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(symbols[i]);
                    i += 1;
                }
            }
            symbols = next;
        }
        symbols
    }
}

/// GPT-2/CLIP's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    printable.extend(u32::from('¡')..=u32::from('¬'));
    printable.extend(u32::from('®')..=u32::from('ÿ'));
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let code = if printable.contains(&b) {
            b
        } else {
            next += 1;
            next - 1
        };
        table[b as usize] = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    table
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::job_failed(format!("tokenizer pattern failed to compile: {e}")))
}

type Merges = Vec<(String, String, String)>;

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_input(format!("{}: cannot read the tokenizer file: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("{}: not valid JSON ({e}); the file is damaged, download it again", path.display())))
}

fn vocab_from(value: &Value, path: &Path) -> Result<HashMap<String, u32>> {
    let map = value.as_object().ok_or_else(|| {
        Error::bad_input(format!("{}: the vocabulary is not a JSON object of token -> id", path.display()))
    })?;
    map.iter()
        .map(|(token, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .map(|id| (token.clone(), id))
                .ok_or_else(|| {
                    Error::bad_input(format!("{}: vocabulary entry \"{token}\" has no integer id", path.display()))
                })
        })
        .collect()
}

fn read_vocab_json(path: &Path) -> Result<HashMap<String, u32>> {
    vocab_from(&read_json(path)?, path)
}

fn read_merges_txt(path: &Path) -> Result<Merges> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_input(format!("{}: cannot read the tokenizer file: {e}", path.display())))?;
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

fn read_tokenizer_json(path: &Path) -> Result<(HashMap<String, u32>, Merges, Vec<(String, u32)>)> {
    let json = read_json(path)?;
    let bad = |what: &str| Error::bad_input(format!("{}: {what}", path.display()));
    let model = json.get("model").ok_or_else(|| bad("no \"model\" section"))?;
    if let Some(kind) = model.get("type").and_then(Value::as_str)
        && kind != "BPE"
    {
        return Err(bad(&format!("model type is {kind}, a CLIP tokenizer is BPE")));
    }
    let vocab = vocab_from(model.get("vocab").ok_or_else(|| bad("no model.vocab"))?, path)?;
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
        let (a, b) = pair.ok_or_else(|| bad(&format!("model.merges[{n}] is not a pair of tokens")))?;
        merges.push((a, b, source.clone()));
    }
    let mut added = Vec::new();
    for token in json.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let content = token.get("content").and_then(Value::as_str);
        let id = token.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
        match (content, id) {
            (Some(content), Some(id)) => added.push((content.to_owned(), id)),
            _ => return Err(bad("an added_tokens entry lacks its content or id")),
        }
    }
    Ok((vocab, merges, added))
}

/// Special tokens and length from tokenizer_config.json / special_tokens_map.json, with
/// CLIPTokenizer's defaults for what they leave out.
struct SpecialConfig {
    bos: String,
    eos: String,
    pad: String,
    unk: String,
    added: Vec<(String, u32)>,
    max_length: usize,
    /// Which file the values came from, for error messages.
    source: String,
}

impl SpecialConfig {
    fn read(dir: &Path) -> Result<Self> {
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
                Some(n) if n >= 2.0 && n <= 4096.0 => config.max_length = n as usize,
                Some(n) => tracing::debug!(model_max_length = n, "unusable model_max_length, using 77"),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
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

    const MERGES: &[(&str, &str)] = &[("h", "i</w>"), ("a", "a"), ("aa", "a</w>"), ("c", "a"), ("ca", "t</w>")];

    fn write_slow(dir: &Path, merges: &[(&str, &str)], config: &str) {
        let vocab = serde_json::to_string(&vocab_for(merges)).unwrap();
        fs::write(dir.join("vocab.json"), vocab).unwrap();
        let lines: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
        fs::write(dir.join("merges.txt"), format!("#version: 0.2\n{}\n", lines.join("\n"))).unwrap();
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
        // "aaaa": (a,a) merges left to right -> aa aa</w>? no: the last a carries </w>, so aa + a + a</w>
        // then (aa, a</w>) -> aaa</w>.
        assert_eq!(tok.tokenize("aaaa"), vec![id(&tok, "aa"), id(&tok, "aaa</w>")]);
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
        assert_eq!(with_contraction, vec![id(&tok, "cat</w>"), id(&tok, "'"), id(&tok, "s</w>")]);
        assert_eq!(tok.tokenize("7"), vec![id(&tok, "7</w>")]);
        assert_eq!(tok.tokenize("é"), vec![id(&tok, "Ã"), id(&tok, "©</w>")]);
    }

    #[test]
    fn special_tokens_are_split_from_raw_text() {
        let (_d, tok) = tiny(r#"{"model_max_length": 77, "pad_token": "!"}"#);
        let eos = tok.eos_id();
        assert_eq!(tok.tokenize("hi<|endoftext|>cat"), vec![id(&tok, "hi</w>"), eos, id(&tok, "cat</w>")]);
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
        let (b, e, h, c) = (tok.bos_id(), tok.eos_id(), id(&tok, "hi</w>"), id(&tok, "cat</w>"));
        assert_eq!(short.ids, vec![b, h, c, e, e, e, e, e]);
        let long = tok.encode("hi hi hi hi hi hi hi hi hi");
        assert_eq!(long.truncated_tokens, 3);
        assert_eq!(long.ids, vec![b, h, h, h, h, h, h, e]);
        assert_eq!(tok.encode("").ids, vec![b, e, e, e, e, e, e, e]);
    }

    #[test]
    fn special_tokens_map_overrides_tokenizer_config() {
        let dir = tempfile::tempdir().unwrap();
        write_slow(dir.path(), MERGES, r#"{"pad_token": "<|endoftext|>"}"#);
        fs::write(dir.path().join("special_tokens_map.json"), r#"{"pad_token": {"content": "!"}}"#).unwrap();
        let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.pad_id(), id(&tok, "!"));
        // No model_max_length anywhere: CLIP's 77.
        assert_eq!(tok.max_length(), 77);
    }

    #[test]
    fn tokenizer_json_accepts_both_merge_spellings() {
        let vocab = vocab_for(MERGES);
        for merges in [
            serde_json::json!(MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()),
            serde_json::json!(MERGES.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>()),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let json = serde_json::json!({
                "added_tokens": [{"id": vocab["!"], "content": "!", "special": true}],
                "model": {"type": "BPE", "vocab": vocab, "merges": merges},
            });
            fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
            fs::write(dir.path().join("tokenizer_config.json"), r#"{"pad_token": "!", "model_max_length": 77}"#).unwrap();
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
        fs::write(dir.path().join("merges.txt"), "#version: 0.2\nh i</w>\nthree part line\n").unwrap();
        let msg = bad_input_message(ClipTokenizer::from_dir(dir.path()));
        assert!(msg.contains("merges.txt") && msg.contains("line 3"), "{msg}");

        write_slow(dir.path(), MERGES, "{}");
        fs::write(dir.path().join("merges.txt"), "#version: 0.2\nq z\n").unwrap();
        assert!(bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("not in the vocabulary"));

        write_slow(dir.path(), MERGES, r#"{"pad_token": "<pad>"}"#);
        let msg = bad_input_message(ClipTokenizer::from_dir(dir.path()));
        assert!(msg.contains("tokenizer_config.json") && msg.contains("<pad>"), "{msg}");

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tokenizer.json"), r#"{"model": {"type": "WordPiece"}}"#).unwrap();
        assert!(bad_input_message(ClipTokenizer::from_dir(dir.path())).contains("tokenizer.json"));
    }
}
