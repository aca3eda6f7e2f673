//! FLUX's T5 tokenizer (`tokenizer_2/`): transformers' T5TokenizerFast called as FluxPipeline
//! calls it, `(prompt, padding="max_length", max_length=n, truncation=True)`. The fast tokenizer
//! is the `tokenizers` library over `tokenizer.json`, which this crate links too, so the same
//! settings give the same ids: truncation keeps n - 1 tokens and the post-processor's `</s>`,
//! padding fills with the pad token up to n.
//!
//! Only `tokenizer.json` is read; a folder with just the SentencePiece `spiece.model` is refused
//! with how to get the json.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};

/// transformers' T5 pad token when tokenizer_config.json does not name one.
const DEFAULT_PAD: &str = "<pad>";

/// The T5 tokenizer of a FLUX folder.
#[derive(Debug, Clone)]
pub struct T5Tokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    pad_token: String,
    pad_id: u32,
    padding_side: PaddingDirection,
    truncation_side: TruncationDirection,
}

impl T5Tokenizer {
    /// Reads `dir/tokenizer.json` (and `dir/tokenizer_config.json` for the pad token and sides,
    /// when present). A missing or unreadable file is bad input naming it.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            let why = if dir.join("spiece.model").is_file() {
                "it has only the SentencePiece spiece.model, which pallaidium does not read yet; \
                 download tokenizer.json from the model's repository into this folder, or write \
                 it with transformers: \
                 T5TokenizerFast.from_pretrained(dir).save_pretrained(dir)"
            } else {
                "a FLUX model folder needs T5's tokenizer.json there; download the model again"
            };
            return Err(Error::bad_input(format!(
                "no tokenizer.json in {}: {why}",
                dir.display()
            )));
        }
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| {
            Error::bad_input(format!(
                "cannot load the T5 tokenizer {}: {e}; download the model again",
                path.display()
            ))
        })?;
        let settings = Settings::read(&dir.join("tokenizer_config.json"))?;
        let pad_id = tokenizer.token_to_id(&settings.pad_token).ok_or_else(|| {
            Error::bad_input(format!(
                "{}: the pad token {:?} is not in the vocabulary",
                path.display(),
                settings.pad_token
            ))
        })?;
        Ok(Self {
            tokenizer,
            path,
            pad_token: settings.pad_token,
            pad_id,
            padding_side: settings.padding_side,
            truncation_side: settings.truncation_side,
        })
    }

    /// The pad token's id (0 for T5).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Exactly `max_length` ids: the prompt's tokens, truncated so `</s>` still fits, `</s>`,
    /// then padding.
    pub fn encode(&self, prompt: &str, max_length: usize) -> Result<Vec<u32>> {
        if max_length == 0 {
            return Err(Error::bad_input(
                "the T5 max sequence length must be at least 1",
            ));
        }
        // Settings are per call (the length varies); a clone keeps `&self` and costs little
        // next to running T5.
        let mut tokenizer = self.tokenizer.clone();
        let fail = |e: tokenizers::Error| {
            Error::bad_input(format!(
                "the T5 tokenizer {} failed on the prompt: {e}",
                self.path.display()
            ))
        };
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: self.truncation_side,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(fail)?
            .with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::Fixed(max_length),
                direction: self.padding_side,
                pad_to_multiple_of: None,
                pad_id: self.pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
        let encoding = tokenizer.encode(prompt, true).map_err(fail)?;
        let ids = encoding.get_ids().to_vec();
        if ids.len() != max_length {
            return Err(Error::job_failed(format!(
                "the T5 tokenizer gave {} ids where {max_length} were asked for",
                ids.len()
            )));
        }
        Ok(ids)
    }
}

/// What tokenizer_config.json may change from transformers' T5 defaults.
struct Settings {
    pad_token: String,
    padding_side: PaddingDirection,
    truncation_side: TruncationDirection,
}

impl Settings {
    fn read(path: &Path) -> Result<Self> {
        let mut s = Self {
            pad_token: DEFAULT_PAD.to_string(),
            padding_side: PaddingDirection::Right,
            truncation_side: TruncationDirection::Right,
        };
        if !path.is_file() {
            return Ok(s);
        }
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        // An AddedToken is saved as a string or as {"content": ...}.
        match value.get("pad_token") {
            Some(Value::String(t)) => s.pad_token = t.clone(),
            Some(Value::Object(o)) => {
                if let Some(Value::String(t)) = o.get("content") {
                    s.pad_token = t.clone();
                }
            }
            _ => {}
        }
        let side = |key: &str| -> Result<Option<bool>> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) if v == "right" => Ok(Some(true)),
                Some(Value::String(v)) if v == "left" => Ok(Some(false)),
                Some(v) => Err(bad(format!(
                    "`{key}` = {v}: expected \"left\" or \"right\""
                ))),
            }
        };
        if let Some(right) = side("padding_side")? {
            s.padding_side = if right {
                PaddingDirection::Right
            } else {
                PaddingDirection::Left
            };
        }
        if let Some(right) = side("truncation_side")? {
            s.truncation_side = if right {
                TruncationDirection::Right
            } else {
                TruncationDirection::Left
            };
        }
        Ok(s)
    }
}

#[cfg(test)]
#[path = "tokenizer_tests.rs"]
mod tests;
