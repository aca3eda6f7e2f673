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

use crate::{Error, Result};

mod files;

use files::{SpecialConfig, read_merges_txt, read_tokenizer_json, read_vocab_json};

/// CLIP's pre-tokenizer: what matches becomes a word, everything else (whitespace) is dropped.
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
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
    /// `max_length() - 2` tokens and says how many it dropped.
    pub fn encode(&self, text: &str) -> Encoded {
        self.encode_to(text, self.max_length)
    }

    /// `encode` to `length` ids (`--max-sequence-length`), at least bos and eos and at most
    /// `max_length()`: the prompt keeps its first `length - 2` tokens.
    pub fn encode_to(&self, text: &str, length: usize) -> Encoded {
        let length = length.clamp(2, self.max_length);
        let tokens = self.tokenize(text);
        let room = length - 2;
        // Counted, not logged: the caller warns once per job (`conditioning::warn_dropped`).
        let truncated_tokens = tokens.len().saturating_sub(room);
        let mut ids = Vec::with_capacity(length);
        ids.push(self.bos_id);
        ids.extend(tokens.iter().take(room));
        ids.push(self.eos_id);
        ids.resize(length, self.pad_id);
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
                    Some((b_pos, b_len, _)) => {
                        pos < b_pos || (pos == b_pos && content.len() > b_len)
                    }
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
        // NFC first, as transformers' normalizer sequence does: decomposed accents get the same ids.
        let composed: String = unicode_normalization::UnicodeNormalization::nfc(text).collect();
        let collapsed = self.whitespace.replace_all(&composed, " ");
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
                .filter_map(|pair| {
                    self.merges
                        .get(&(pair[0], pair[1]))
                        .map(|m| ((pair[0], pair[1]), *m))
                })
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
    for (b, slot) in (0u32..).zip(table.iter_mut()) {
        let code = if printable.contains(&b) {
            b
        } else {
            next += 1;
            next - 1
        };
        // Every code here is below 0x144, a valid char; the fallback never happens.
        *slot = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    table
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern)
        .map_err(|e| Error::job_failed(format!("tokenizer pattern failed to compile: {e}")))
}

#[cfg(test)]
mod tests;
