//! What a transformers tokenizer_config.json says about padding: the pad token (a string or an
//! AddedToken object) and the padding and truncation sides, as the fast tokenizers read them.
//! Shared by FLUX's T5 and Z-Image's Qwen3 tokenizers.

use std::path::Path;

use serde_json::Value;
use tokenizers::{PaddingDirection, TruncationDirection};

use crate::error::{Error, Result};

/// The pad token and sides; transformers' defaults (right, right) when the config is silent.
#[derive(Debug, Clone)]
pub struct PaddingSettings {
    pub pad_token: String,
    pub padding_side: PaddingDirection,
    pub truncation_side: TruncationDirection,
}

impl PaddingSettings {
    /// Reads them from `config` (the parsed tokenizer_config.json at `path`, named in errors).
    pub fn from_config(config: &Value, path: &Path, default_pad: &str) -> Result<Self> {
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        // An AddedToken is saved as a string or as {"content": ...}.
        let pad_token = match config.get("pad_token") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Object(o)) => match o.get("content") {
                Some(Value::String(t)) => t.clone(),
                _ => default_pad.to_string(),
            },
            _ => default_pad.to_string(),
        };
        let right = |key: &str| -> Result<bool> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(true),
                Some(Value::String(v)) if v == "right" => Ok(true),
                Some(Value::String(v)) if v == "left" => Ok(false),
                Some(v) => Err(bad(format!(
                    "`{key}` = {v}: expected \"left\" or \"right\""
                ))),
            }
        };
        Ok(Self {
            pad_token,
            padding_side: if right("padding_side")? {
                PaddingDirection::Right
            } else {
                PaddingDirection::Left
            },
            truncation_side: if right("truncation_side")? {
                TruncationDirection::Right
            } else {
                TruncationDirection::Left
            },
        })
    }

    /// Transformers' defaults with `pad` as the pad token (no tokenizer_config.json).
    pub fn defaults(pad: &str) -> Self {
        Self {
            pad_token: pad.to_string(),
            padding_side: PaddingDirection::Right,
            truncation_side: TruncationDirection::Right,
        }
    }

    /// The pad token's id in `tokenizer` (loaded from `path`), or bad input naming the file.
    pub fn pad_id(&self, tokenizer: &tokenizers::Tokenizer, path: &Path) -> Result<u32> {
        tokenizer.token_to_id(&self.pad_token).ok_or_else(|| {
            Error::bad_input(format!(
                "{}: the pad token {:?} is not in the vocabulary",
                path.display(),
                self.pad_token
            ))
        })
    }
}
