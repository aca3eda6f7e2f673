//! FLUX's T5 tokenizer (`tokenizer_2/`): transformers' T5TokenizerFast called as FluxPipeline
//! calls it, `(prompt, padding="max_length", max_length=n, truncation=True)`. The fast tokenizer
//! is the `tokenizers` library over `tokenizer.json`, which this crate links too, so the same
//! settings give the same ids: truncation keeps n - 1 tokens and the post-processor's `</s>`,
//! padding fills with the pad token up to n.
//!
//! Only `tokenizer.json` is read; a folder with just the SentencePiece `spiece.model` is refused
//! with how to get the json.

use std::path::{Path, PathBuf};

use crate::engines::nn::text::padding::PaddingSettings;
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
        let settings = settings(&dir.join("tokenizer_config.json"))?;
        let pad_id = settings.pad_id(&tokenizer, &path)?;
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
        Ok(self.encode_masked(prompt, max_length)?.0)
    }

    /// `encode`, with the attention mask: true for the prompt's tokens (and `</s>`), false for
    /// padding.
    pub fn encode_masked(&self, prompt: &str, max_length: usize) -> Result<(Vec<u32>, Vec<bool>)> {
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
        let mask: Vec<bool> = encoding
            .get_attention_mask()
            .iter()
            .map(|&m| m != 0)
            .collect();
        if ids.len() != max_length || mask.len() != max_length {
            return Err(Error::job_failed(format!(
                "the T5 tokenizer gave {} ids where {max_length} were asked for",
                ids.len()
            )));
        }
        Ok((ids, mask))
    }
}

/// tokenizer_config.json's padding settings, transformers' defaults when the file is absent.
fn settings(path: &Path) -> Result<PaddingSettings> {
    if !path.is_file() {
        return Ok(PaddingSettings::defaults(DEFAULT_PAD));
    }
    let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    PaddingSettings::from_config(&value, path, DEFAULT_PAD)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// A T5TokenizerFast tokenizer.json (Parler-TTS's tiny fixture: a 123-piece Unigram, `</s>` = 1,
    /// `<pad>` = 0).
    fn t5_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parler-tiny")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pallaidium-t5tok-{name}-{}", std::process::id()));
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
}
