//! What a Whisper folder says about itself: the model shape (config.json), the decoding setup
//! (generation_config.json) and the ids of the special tokens, checked once at load.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check as check;
use crate::error::{Error, Result};

/// The model shape, as transformers' `WhisperConfig` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub decoder_ffn_dim: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
}

fn default_activation() -> String {
    "gelu".to_string()
}

/// The decoding setup, as the real openai/whisper-* generation_config.json holds it.
#[derive(Debug, Clone, Deserialize, Default)]
struct RawGeneration {
    decoder_start_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    no_timestamps_token_id: Option<u32>,
    #[serde(default)]
    suppress_tokens: Vec<u32>,
    #[serde(default)]
    begin_suppress_tokens: Vec<u32>,
    is_multilingual: Option<bool>,
    #[serde(default)]
    lang_to_id: BTreeMap<String, u32>,
    #[serde(default)]
    task_to_id: BTreeMap<String, u32>,
    max_initial_timestamp_index: Option<u32>,
    max_length: Option<usize>,
    /// Legacy `[[position, id], ...]`; fine-tuned models pin their language (and task) here.
    #[serde(default)]
    forced_decoder_ids: Option<Vec<(usize, Option<u32>)>>,
}

/// Everything the decoding loop needs, ids resolved.
#[derive(Debug, Clone)]
pub struct Generation {
    pub sot: u32,
    pub eot: u32,
    pub no_timestamps: u32,
    /// The first timestamp token, `<|0.00|>`; every id from here up is a timestamp.
    pub timestamp_begin: u32,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    pub multilingual: bool,
    /// `"<|en|>"` -> id.
    pub lang_to_id: BTreeMap<String, u32>,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub max_initial_timestamp_index: Option<u32>,
    /// Total decoder length (start tokens included) before the model's own limit.
    pub max_length: Option<usize>,
    /// Language and task pinned by `forced_decoder_ids` (positions 1 and 2), used when the user
    /// names neither, as transformers does.
    pub forced_language: Option<u32>,
    pub forced_task: Option<u32>,
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; a Whisper folder needs config.json, generation_config.json, \
             tokenizer.json and model.safetensors (download the model again)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::bad_input(format!(
            "{} is not a valid Whisper file: {e}; download the model again",
            path.display()
        ))
    })
}

impl ModelConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let cfg: Self = read_json(&path)?;
        let bad = |why: &str| Error::bad_input(format!("{}: {why}", path.display()));
        if cfg.max_source_positions == 0 || cfg.max_target_positions < 8 {
            return Err(bad(
                "max_source_positions / max_target_positions are too small",
            ));
        }
        check::positive(&[
            ("d_model", cfg.d_model),
            ("vocab_size", cfg.vocab_size),
            ("num_mel_bins", cfg.num_mel_bins),
            ("encoder_layers", cfg.encoder_layers),
            ("encoder_ffn_dim", cfg.encoder_ffn_dim),
            ("decoder_layers", cfg.decoder_layers),
            ("decoder_ffn_dim", cfg.decoder_ffn_dim),
        ])
        .and_then(|()| {
            check::multiple_of(
                "d_model",
                cfg.d_model,
                "encoder_attention_heads",
                cfg.encoder_attention_heads,
            )
        })
        .and_then(|()| {
            check::multiple_of(
                "d_model",
                cfg.d_model,
                "decoder_attention_heads",
                cfg.decoder_attention_heads,
            )
        })
        .map_err(|why| bad(&why))?;
        Ok(cfg)
    }

    /// Mel frames one window holds: the encoder halves them (conv2 has stride 2).
    pub fn window_frames(&self) -> usize {
        self.max_source_positions * 2
    }
}

/// config.json, tokenizer.json and generation_config.json of a Whisper folder, every special
/// token id checked against the vocabulary: what loading needs before the weights, and what a
/// job checks before it is queued.
pub fn load_checked(dir: &Path) -> Result<(ModelConfig, tokenizers::Tokenizer, Generation)> {
    let cfg = ModelConfig::load(dir)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        Error::bad_input(format!(
            "cannot load the tokenizer {}: {e}; download the model again",
            tokenizer_path.display()
        ))
    })?;
    let generation = Generation::load(dir, &|name| tokenizer.token_to_id(name))?;
    let vocab = cfg.vocab_size as u32;
    let out_of_range = [generation.sot, generation.eot, generation.no_timestamps]
        .into_iter()
        .chain(generation.lang_to_id.values().copied())
        .chain(generation.transcribe)
        .chain(generation.translate)
        .chain(generation.suppress_tokens.iter().copied())
        .chain(generation.begin_suppress_tokens.iter().copied())
        .find(|&id| id >= vocab)
        .or((generation.timestamp_begin >= vocab).then_some(generation.timestamp_begin));
    if let Some(id) = out_of_range {
        return Err(Error::bad_input(format!(
            "{}: token id {id} is outside config.json's `vocab_size` = {vocab}; \
             generation_config.json and config.json are from different models",
            dir.join("generation_config.json").display()
        )));
    }
    Ok((cfg, tokenizer, generation))
}

impl Generation {
    /// Reads generation_config.json (ids missing there are looked up by name in the tokenizer).
    pub fn load(dir: &Path, token_id: &dyn Fn(&str) -> Option<u32>) -> Result<Self> {
        let path = dir.join("generation_config.json");
        let raw: RawGeneration = if path.is_file() {
            read_json(&path)?
        } else {
            RawGeneration::default()
        };
        let need = |value: Option<u32>, name: &str, key: &str| {
            value.or_else(|| token_id(name)).ok_or_else(|| {
                Error::bad_input(format!(
                    "{}: no `{key}` and the tokenizer has no {name} token; is this a Whisper model?",
                    path.display()
                ))
            })
        };
        let sot = need(
            raw.decoder_start_token_id,
            "<|startoftranscript|>",
            "decoder_start_token_id",
        )?;
        let eot = need(raw.eos_token_id, "<|endoftext|>", "eos_token_id")?;
        let no_timestamps = need(
            raw.no_timestamps_token_id,
            "<|notimestamps|>",
            "no_timestamps_token_id",
        )?;
        let mut raw = raw;
        if raw.lang_to_id.is_empty() && raw.is_multilingual != Some(false) {
            // Old folders without lang_to_id: the tokenizer's language tokens say it.
            raw.lang_to_id = super::languages::codes()
                .filter_map(|code| {
                    let token = format!("<|{code}|>");
                    token_id(&token).map(|id| (token, id))
                })
                .collect();
        }
        let multilingual = raw.is_multilingual.unwrap_or(!raw.lang_to_id.is_empty());
        let task = |name: &str| {
            raw.task_to_id
                .get(name)
                .copied()
                .or_else(|| token_id(&format!("<|{name}|>")))
        };
        let forced = |position: usize| {
            raw.forced_decoder_ids
                .iter()
                .flatten()
                .find(|(p, _)| *p == position)
                .and_then(|(_, id)| *id)
        };
        let forced_language = forced(1).filter(|id| raw.lang_to_id.values().any(|v| v == id));
        let forced_task = forced(2).filter(|id| raw.task_to_id.values().any(|v| v == id));
        Ok(Self {
            forced_language,
            forced_task,
            sot,
            eot,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            suppress_tokens: raw.suppress_tokens,
            begin_suppress_tokens: raw.begin_suppress_tokens,
            multilingual,
            transcribe: task("transcribe"),
            translate: task("translate"),
            lang_to_id: raw.lang_to_id,
            max_initial_timestamp_index: raw.max_initial_timestamp_index,
            max_length: raw.max_length,
        })
    }

    /// The id of a language given as a code ("de"), a name ("german") or a token ("<|de|>").
    pub fn language_id(&self, language: &str) -> Result<u32> {
        let wanted = language.trim().to_lowercase();
        let code = if wanted.starts_with("<|") && wanted.ends_with("|>") {
            wanted[2..wanted.len() - 2].to_string()
        } else {
            super::languages::code_of(&wanted)
                .unwrap_or(wanted.as_str())
                .to_string()
        };
        if let Some(id) = self.lang_to_id.get(&format!("<|{code}|>")) {
            return Ok(*id);
        }
        let known: Vec<String> = self
            .lang_to_id
            .keys()
            .map(|k| {
                k.trim_start_matches("<|")
                    .trim_end_matches("|>")
                    .to_string()
            })
            .collect();
        let shown: Vec<&str> = known.iter().take(20).map(String::as_str).collect();
        Err(Error::bad_input(format!(
            "unknown language `{language}` for this Whisper model; use a code such as {}{}",
            shown.join(", "),
            if known.len() > shown.len() {
                format!(" (and {} more)", known.len() - shown.len())
            } else {
                String::new()
            }
        )))
    }

    /// The language code ("en") of a language token id.
    pub fn language_code(&self, id: u32) -> Option<String> {
        self.lang_to_id
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| {
                k.trim_start_matches("<|")
                    .trim_end_matches("|>")
                    .to_string()
            })
    }
}
