//! Parler-TTS's config.json and generation_config.json, read into what the engine needs.
//!
//! config.json nests three sub-configs: `text_encoder` (a T5 config), `audio_encoder` (the DAC
//! codec) and `decoder` (the Parler decoder). candle's structs read the T5 and decoder parts; the
//! codec part is ours because candle hard-codes the 44.1 kHz DAC's layer sizes, which the real
//! configs leave implicit too: a missing size falls back to that codec's.

use std::path::Path;

use candle_transformers::models::parler_tts;
use serde::Deserialize;
use serde_json::Value;

use crate::engines::config_check as check;
use crate::engines::nn::text::t5::{self, T5Config};
use crate::error::{Error, Result};

/// The DAC decoder's shape (only the decoding half is used for speech).
#[derive(Debug, Clone, PartialEq)]
pub struct CodecConfig {
    pub num_codebooks: usize,
    pub codebook_size: usize,
    pub codebook_dim: usize,
    pub latent_dim: usize,
    pub decoder_dim: usize,
    pub decoder_rates: Vec<usize>,
    pub sampling_rate: u32,
    /// Codec frames a second (86 for the 44.1 kHz DAC): turns seconds into decoding steps.
    pub frame_rate: f64,
}

/// Token ids and limits of the generation loop (generation_config.json, falling back to the
/// decoder's config).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub min_new_tokens: usize,
    pub min_length: usize,
    /// transformers' default top-k (50) applies when sampling unless the file says otherwise.
    pub top_k: usize,
}

#[derive(Debug, Clone)]
pub struct ParlerConfig {
    pub text_encoder: T5Config,
    pub decoder: parler_tts::DecoderConfig,
    pub codec: CodecConfig,
    pub generation: GenerationConfig,
    /// Size of the prompt (text to speak) embedding table: the T5 tokenizer's vocabulary.
    pub prompt_vocab: usize,
    pub decoder_start: u32,
}

#[derive(Deserialize)]
struct RawConfig {
    text_encoder: Value,
    audio_encoder: RawCodec,
    decoder: Value,
    vocab_size: usize,
    decoder_start_token_id: Option<u32>,
    #[serde(default)]
    prompt_cross_attention: bool,
}

#[derive(Deserialize)]
struct RawCodec {
    num_codebooks: usize,
    codebook_size: usize,
    latent_dim: usize,
    sampling_rate: u32,
    frame_rate: Option<f64>,
    codebook_dim: Option<usize>,
    decoder_dim: Option<usize>,
    decoder_rates: Option<Vec<usize>>,
}

/// Decoder options candle's struct does not carry but that change the maths.
#[derive(Deserialize, Default)]
struct DecoderExtras {
    #[serde(default)]
    scale_embedding: bool,
    #[serde(default)]
    use_fused_lm_heads: bool,
}

#[derive(Deserialize, Default)]
struct RawGeneration {
    bos_token_id: Option<u32>,
    decoder_start_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    pad_token_id: Option<u32>,
    min_new_tokens: Option<usize>,
    min_length: Option<usize>,
    top_k: Option<usize>,
}

impl ParlerConfig {
    /// Reads `dir/config.json` and, when present, `dir/generation_config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::bad_input(format!(
                "cannot read {}: {e}; a Parler-TTS folder needs the config.json of \
                 parler-tts/parler-tts-mini-v1 or -large-v1",
                path.display()
            ))
        })?;
        let gen_path = dir.join("generation_config.json");
        let gen_text = match std::fs::read_to_string(&gen_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&gen_path, e)),
        };
        Self::parse(&text, gen_text.as_deref()).map_err(|why| {
            Error::bad_input(format!(
                "{} is not a Parler-TTS config: {why}",
                if why.starts_with("generation_config") {
                    gen_path.display()
                } else {
                    path.display()
                }
            ))
        })
    }

    /// Parses the two files' text; errors are plain reasons, the caller names the file.
    pub fn parse(config: &str, generation: Option<&str>) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(config).map_err(|e| e.to_string())?;
        if raw.prompt_cross_attention {
            return Err("prompt_cross_attention models are not supported".into());
        }
        // Missing T5 keys take transformers' defaults there (older configs lack newer keys).
        let text_encoder = t5::parse_config("text_encoder", raw.text_encoder)?;
        let mut decoder_value = raw.decoder;
        fill_defaults(
            &mut decoder_value,
            &[
                ("activation_function", "gelu".into()),
                ("scale_embedding", Value::Bool(false)),
                ("tie_word_embeddings", Value::Bool(false)),
                ("rope_embeddings", Value::Bool(false)),
                ("rope_theta", 10_000.0.into()),
            ],
        );
        let extras: DecoderExtras =
            serde_json::from_value(decoder_value.clone()).map_err(|e| format!("decoder: {e}"))?;
        let decoder: parler_tts::DecoderConfig =
            serde_json::from_value(decoder_value).map_err(|e| format!("decoder: {e}"))?;
        if extras.scale_embedding || extras.use_fused_lm_heads || decoder.rope_embeddings {
            return Err("decoder options scale_embedding, use_fused_lm_heads and \
                        rope_embeddings are not supported (Parler-TTS v1 uses none)"
                .into());
        }
        let a = raw.audio_encoder;
        let decoder_rates = a.decoder_rates.unwrap_or_else(|| vec![8, 8, 4, 2]);
        let decoder_dim = a.decoder_dim.unwrap_or(1536);
        if decoder_rates.is_empty() || decoder_dim >> decoder_rates.len() == 0 {
            return Err("audio_encoder: decoder_dim too small for its decoder_rates".into());
        }
        let hop: usize = decoder_rates.iter().product();
        let codec = CodecConfig {
            num_codebooks: a.num_codebooks,
            codebook_size: a.codebook_size,
            codebook_dim: a.codebook_dim.unwrap_or(8),
            latent_dim: a.latent_dim,
            decoder_dim,
            frame_rate: a
                .frame_rate
                .unwrap_or(f64::from(a.sampling_rate) / hop.max(1) as f64),
            decoder_rates,
            sampling_rate: a.sampling_rate,
        };
        if decoder.num_codebooks > codec.num_codebooks {
            return Err(format!(
                "the decoder predicts {} codebooks but the codec has {}",
                decoder.num_codebooks, codec.num_codebooks
            ));
        }
        let g: RawGeneration = match generation {
            Some(t) => {
                serde_json::from_str(t).map_err(|e| format!("generation_config.json: {e}"))?
            }
            None => RawGeneration::default(),
        };
        let eos = match g.eos_token_id {
            Some(Value::Number(n)) => n.as_u64().map(|v| v as u32),
            Some(Value::Array(v)) => v.first().and_then(Value::as_u64).map(|v| v as u32),
            _ => None,
        }
        .unwrap_or(decoder.eos_token_id as u32);
        let decoder_start = g
            .decoder_start_token_id
            .or(raw.decoder_start_token_id)
            .unwrap_or(decoder.bos_token_id as u32);
        let generation = GenerationConfig {
            bos: g.bos_token_id.unwrap_or(decoder.bos_token_id as u32),
            eos,
            pad: g.pad_token_id.unwrap_or(decoder.pad_token_id as u32),
            min_new_tokens: g.min_new_tokens.unwrap_or(0),
            min_length: g.min_length.unwrap_or(0),
            top_k: g.top_k.unwrap_or(50),
        };
        let cfg = Self {
            text_encoder,
            decoder,
            codec,
            generation,
            prompt_vocab: raw.vocab_size,
            decoder_start,
        };
        cfg.check_sizes()?;
        Ok(cfg)
    }

    /// The values the engine divides or indexes by: heads into the width, key/value heads into
    /// heads, token ids into the embedding tables, the codec's rates and sizes.
    fn check_sizes(&self) -> check::Check {
        let d = &self.decoder;
        check::positive(&[
            ("vocab_size", self.prompt_vocab),
            ("decoder.vocab_size", d.vocab_size),
            ("decoder.hidden_size", d.hidden_size),
            ("decoder.num_hidden_layers", d.num_hidden_layers),
            ("decoder.ffn_dim", d.ffn_dim),
            ("decoder.num_codebooks", d.num_codebooks),
            ("decoder.max_position_embeddings", d.max_position_embeddings),
        ])?;
        check::multiple_of(
            "decoder.hidden_size",
            d.hidden_size,
            "decoder.num_attention_heads",
            d.num_attention_heads,
        )?;
        for kv_key in ["num_key_value_heads", "num_cross_attention_key_value_heads"] {
            let kv = match kv_key {
                "num_key_value_heads" => d.num_key_value_heads,
                _ => d.num_cross_attention_key_value_heads,
            };
            if let Some(kv) = kv {
                check::multiple_of(
                    "decoder.num_attention_heads",
                    d.num_attention_heads,
                    &format!("decoder.{kv_key}"),
                    kv,
                )?;
            }
        }
        // The decoder's embedding tables have vocab_size + 1 rows (the extra one is BOS).
        let rows = d.vocab_size + 1;
        let g = &self.generation;
        for (key, id) in [
            ("bos_token_id", g.bos),
            ("eos_token_id", g.eos),
            ("pad_token_id", g.pad),
            ("decoder_start_token_id", self.decoder_start),
        ] {
            check::index_in(key, id as usize, "decoder.vocab_size + 1", rows)?;
        }
        let c = &self.codec;
        check::positive(&[
            ("audio_encoder.num_codebooks", c.num_codebooks),
            ("audio_encoder.codebook_size", c.codebook_size),
            ("audio_encoder.codebook_dim", c.codebook_dim),
            ("audio_encoder.latent_dim", c.latent_dim),
            ("audio_encoder.sampling_rate", c.sampling_rate as usize),
        ])?;
        check::all_positive("audio_encoder.decoder_rates", &c.decoder_rates)?;
        check::positive_float("audio_encoder.frame_rate", c.frame_rate)
    }
}

/// Sets `defaults` on a JSON object where its keys are absent (or null).
fn fill_defaults(value: &mut Value, defaults: &[(&str, Value)]) {
    if let Value::Object(map) = value {
        for (key, default) in defaults {
            let entry = map.entry(key.to_string()).or_insert(Value::Null);
            if entry.is_null() {
                *entry = default.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts of parler-tts-mini-v1's config.json the engine reads, older-style: no rope
    /// fields, no codec sizes.
    const MINI: &str = r#"{
        "vocab_size": 32128, "decoder_start_token_id": 1025, "pad_token_id": 1024,
        "text_encoder": {"vocab_size": 32128, "d_model": 1024, "d_kv": 64, "d_ff": 2816,
            "num_layers": 24, "num_heads": 16, "relative_attention_num_buckets": 32,
            "feed_forward_proj": "gated-gelu", "is_encoder_decoder": true,
            "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
            "pad_token_id": 0, "eos_token_id": 1},
        "audio_encoder": {"num_codebooks": 9, "model_bitrate": 8, "codebook_size": 1024,
            "latent_dim": 1024, "frame_rate": 86, "sampling_rate": 44100},
        "decoder": {"vocab_size": 1088, "max_position_embeddings": 4096,
            "num_hidden_layers": 24, "ffn_dim": 4096, "num_attention_heads": 16,
            "num_key_value_heads": 16, "activation_function": "gelu", "hidden_size": 1024,
            "num_codebooks": 9, "pad_token_id": 1024, "bos_token_id": 1025,
            "eos_token_id": 1024}
    }"#;

    #[test]
    fn reads_a_real_style_config_with_defaults() {
        let cfg = ParlerConfig::parse(MINI, None).unwrap();
        assert_eq!(cfg.codec.decoder_dim, 1536);
        assert_eq!(cfg.codec.decoder_rates, vec![8, 8, 4, 2]);
        assert_eq!(cfg.codec.codebook_dim, 8);
        assert!((cfg.codec.frame_rate - 86.0).abs() < 1e-9);
        assert_eq!(cfg.decoder_start, 1025);
        let expected = GenerationConfig {
            bos: 1025,
            eos: 1024,
            pad: 1024,
            min_new_tokens: 0,
            min_length: 0,
            top_k: 50,
        };
        assert_eq!(cfg.generation, expected);
        assert_eq!(cfg.prompt_vocab, 32128);
    }

    #[test]
    fn generation_config_overrides_and_lists() {
        let gen_cfg = r#"{"eos_token_id": [1024], "min_new_tokens": 10, "top_k": 0,
            "decoder_start_token_id": 1025, "bos_token_id": 1025, "pad_token_id": 1024}"#;
        let cfg = ParlerConfig::parse(MINI, Some(gen_cfg)).unwrap();
        assert_eq!(cfg.generation.min_new_tokens, 10);
        assert_eq!(cfg.generation.top_k, 0);
        assert_eq!(cfg.generation.eos, 1024);
    }

    #[test]
    fn unsupported_and_broken_configs_are_reasons() {
        let rope = MINI.replace(
            r#""eos_token_id": 1024}"#,
            r#""eos_token_id": 1024, "rope_embeddings": true}"#,
        );
        assert!(
            ParlerConfig::parse(&rope, None)
                .unwrap_err()
                .contains("rope")
        );
        assert!(ParlerConfig::parse("{}", None).is_err());
        for (from, to, key) in [
            (
                r#""num_attention_heads": 16"#,
                r#""num_attention_heads": 0"#,
                "`decoder.num_attention_heads` = 0",
            ),
            (
                r#""num_heads": 16"#,
                r#""num_heads": 0"#,
                "`text_encoder.num_heads` = 0",
            ),
            (
                r#""num_key_value_heads": 16"#,
                r#""num_key_value_heads": 3"#,
                "not a multiple of `decoder.num_key_value_heads` = 3",
            ),
            (
                r#""bos_token_id": 1025"#,
                r#""bos_token_id": 5000"#,
                "`bos_token_id` = 5000",
            ),
            (
                r#""codebook_size": 1024"#,
                r#""codebook_size": 0"#,
                "codebook_size` = 0",
            ),
        ] {
            let broken = MINI.replace(from, to);
            assert_ne!(broken, MINI, "{from}");
            let err = ParlerConfig::parse(&broken, None).unwrap_err();
            assert!(err.contains(key), "{to}: {err}");
        }
        let err = ParlerConfig::parse(MINI, Some("[")).unwrap_err();
        assert!(err.starts_with("generation_config"), "{err}");
    }
}
