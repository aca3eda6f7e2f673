//! MusicGen's composite config.json (text_encoder: t5, audio_encoder: encodec, decoder:
//! musicgen_decoder) and generation_config.json, read with the defaults transformers uses when a
//! key is absent.

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check as check;
use crate::engines::nn::text::t5::{self, T5Config};
use crate::error::{Error, Result};

/// The `decoder` section (transformers' `MusicgenDecoderConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct DecoderConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_ffn")]
    pub ffn_dim: usize,
    #[serde(default = "d_codebooks")]
    pub num_codebooks: usize,
    #[serde(default = "one")]
    pub audio_channels: usize,
    #[serde(default = "d_pad")]
    pub pad_token_id: u32,
    #[serde(default = "d_act")]
    pub activation_function: String,
    #[serde(default)]
    pub cross_attention_hidden_size: Option<usize>,
}

/// The `audio_encoder` section (transformers' `EncodecConfig`), as far as decoding needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct CodecConfig {
    #[serde(default = "d_bandwidths")]
    pub target_bandwidths: Vec<f64>,
    #[serde(default = "d_rate")]
    pub sampling_rate: usize,
    #[serde(default = "one")]
    pub audio_channels: usize,
    #[serde(default = "d_codec_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_filters")]
    pub num_filters: usize,
    #[serde(default = "one")]
    pub num_residual_layers: usize,
    #[serde(default = "d_ratios")]
    pub upsampling_ratios: Vec<usize>,
    #[serde(default = "d_norm")]
    pub norm_type: String,
    #[serde(default = "d_kernel")]
    pub kernel_size: usize,
    #[serde(default = "d_kernel")]
    pub last_kernel_size: usize,
    #[serde(default = "d_res_kernel")]
    pub residual_kernel_size: usize,
    #[serde(default = "two")]
    pub dilation_growth_rate: usize,
    #[serde(default = "yes")]
    pub use_causal_conv: bool,
    #[serde(default = "d_pad_mode")]
    pub pad_mode: String,
    #[serde(default = "two")]
    pub compress: usize,
    #[serde(default = "two")]
    pub num_lstm_layers: usize,
    #[serde(default = "d_trim")]
    pub trim_right_ratio: f64,
    #[serde(default = "d_codebook_size")]
    pub codebook_size: usize,
    #[serde(default)]
    pub codebook_dim: Option<usize>,
    #[serde(default = "yes")]
    pub use_conv_shortcut: bool,
}

impl CodecConfig {
    /// Codes per second: transformers' `ceil(sampling_rate / prod(upsampling_ratios))`.
    pub fn frame_rate(&self) -> usize {
        let hop: usize = self.upsampling_ratios.iter().product::<usize>().max(1);
        self.sampling_rate.div_ceil(hop)
    }

    pub fn codebook_dim(&self) -> usize {
        self.codebook_dim.unwrap_or(self.hidden_size)
    }
}

/// The whole config.json.
#[derive(Debug, Clone)]
pub struct MusicgenConfig {
    pub text_encoder: T5Config,
    pub audio_encoder: CodecConfig,
    pub decoder: DecoderConfig,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    model_type: Option<String>,
    text_encoder: serde_json::Value,
    audio_encoder: serde_json::Value,
    decoder: serde_json::Value,
}

impl MusicgenConfig {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
            format!("not a MusicGen config (needs text_encoder, audio_encoder, decoder): {e}")
        })?;
        if let Some(t) = raw.model_type.as_deref()
            && t != "musicgen"
        {
            return Err(format!(
                "model_type {t:?} is not supported; this engine runs model_type \"musicgen\" \
                 (facebook/musicgen-small, -medium, -large)"
            ));
        }
        let text_encoder = t5::parse_config("text_encoder", raw.text_encoder)?;
        let audio_encoder: CodecConfig = serde_json::from_value(raw.audio_encoder)
            .map_err(|e| format!("audio_encoder (EnCodec) section: {e}"))?;
        let decoder: DecoderConfig =
            serde_json::from_value(raw.decoder).map_err(|e| format!("decoder section: {e}"))?;
        let cfg = Self {
            text_encoder,
            audio_encoder,
            decoder,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::bad_input(format!(
                "cannot read {}: {e}; a MusicGen folder needs the repo's config.json",
                path.display()
            ))
        })?;
        Self::from_json(&text).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))
    }

    /// Refuses what the engine does not implement, instead of producing noise.
    fn validate(&self) -> std::result::Result<(), String> {
        let d = &self.decoder;
        if d.audio_channels != 1 || self.audio_encoder.audio_channels != 1 {
            return Err(
                "stereo MusicGen (audio_channels 2) is not supported; use a mono model".into(),
            );
        }
        check::positive(&[
            ("decoder.vocab_size", d.vocab_size),
            ("decoder.hidden_size", d.hidden_size),
            ("decoder.num_hidden_layers", d.num_hidden_layers),
            ("decoder.ffn_dim", d.ffn_dim),
            ("decoder.num_codebooks", d.num_codebooks),
        ])?;
        check::multiple_of(
            "decoder.hidden_size",
            d.hidden_size,
            "decoder.num_attention_heads",
            d.num_attention_heads,
        )?;
        // The embedding tables have vocab_size + 1 rows: the pad (and start) token is the last.
        check::index_in(
            "decoder.pad_token_id",
            d.pad_token_id as usize,
            "decoder.vocab_size + 1",
            d.vocab_size + 1,
        )?;
        if d.activation_function != "gelu" {
            return Err(format!(
                "decoder activation_function {:?} is not supported (MusicGen uses gelu)",
                d.activation_function
            ));
        }
        let c = &self.audio_encoder;
        if c.norm_type != "weight_norm" {
            return Err(format!(
                "audio_encoder norm_type {:?} is not supported (MusicGen's EnCodec uses weight_norm)",
                c.norm_type
            ));
        }
        if !["reflect", "constant", "replicate"].contains(&c.pad_mode.as_str()) {
            return Err(format!(
                "audio_encoder pad_mode {:?} is not supported",
                c.pad_mode
            ));
        }
        if c.upsampling_ratios.is_empty() || c.compress == 0 || c.sampling_rate == 0 {
            return Err("audio_encoder needs upsampling_ratios, compress and sampling_rate".into());
        }
        check::all_positive("audio_encoder.upsampling_ratios", &c.upsampling_ratios)?;
        check::positive(&[
            ("audio_encoder.hidden_size", c.hidden_size),
            ("audio_encoder.num_filters", c.num_filters),
            ("audio_encoder.num_residual_layers", c.num_residual_layers),
            ("audio_encoder.kernel_size", c.kernel_size),
            ("audio_encoder.last_kernel_size", c.last_kernel_size),
            ("audio_encoder.residual_kernel_size", c.residual_kernel_size),
            ("audio_encoder.dilation_growth_rate", c.dilation_growth_rate),
            ("audio_encoder.num_lstm_layers", c.num_lstm_layers),
            ("audio_encoder.codebook_size", c.codebook_size),
            ("audio_encoder.codebook_dim", c.codebook_dim()),
        ])?;
        if c.target_bandwidths.is_empty() {
            return Err("`audio_encoder.target_bandwidths` is empty".into());
        }
        for bw in &c.target_bandwidths {
            check::positive_float("audio_encoder.target_bandwidths", *bw)?;
        }
        if let Some(x) = d.cross_attention_hidden_size
            && x != self.text_encoder.d_model
        {
            return Err("decoder cross_attention_hidden_size differs from the T5 d_model".into());
        }
        Ok(())
    }

    /// transformers adds `enc_to_dec_proj` when the T5 width differs from the decoder's and no
    /// cross_attention_hidden_size is set.
    pub fn has_enc_to_dec_proj(&self) -> bool {
        self.text_encoder.d_model != self.decoder.hidden_size
            && self.decoder.cross_attention_hidden_size.is_none()
    }
}

/// generation_config.json; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    pub guidance_scale: Option<f64>,
    pub top_k: Option<usize>,
    pub temperature: Option<f64>,
    pub do_sample: Option<bool>,
    pub max_new_tokens: Option<usize>,
    pub pad_token_id: Option<u32>,
    pub decoder_start_token_id: Option<u32>,
}

impl GenerationConfig {
    /// A missing file means transformers' defaults; a broken one is the user's to fix.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::bad_input(format!("{}: not a generation config: {e}", path.display()))
        })
    }
}

fn d_vocab() -> usize {
    2048
}
fn d_hidden() -> usize {
    1024
}
fn d_layers() -> usize {
    24
}
fn d_heads() -> usize {
    16
}
fn d_ffn() -> usize {
    4096
}
fn d_codebooks() -> usize {
    4
}
fn d_pad() -> u32 {
    2048
}
fn d_act() -> String {
    "gelu".into()
}
fn d_bandwidths() -> Vec<f64> {
    vec![1.5, 3.0, 6.0, 12.0, 24.0]
}
fn d_rate() -> usize {
    24_000
}
fn d_codec_hidden() -> usize {
    128
}
fn d_filters() -> usize {
    32
}
fn d_ratios() -> Vec<usize> {
    vec![8, 5, 4, 2]
}
fn d_norm() -> String {
    "weight_norm".into()
}
fn d_kernel() -> usize {
    7
}
fn d_res_kernel() -> usize {
    3
}
fn d_pad_mode() -> String {
    "reflect".into()
}
fn d_trim() -> f64 {
    1.0
}
fn d_codebook_size() -> usize {
    1024
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/musicgen-tiny/config.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn values_divided_or_indexed_by_are_checked_naming_the_key() {
        MusicgenConfig::from_json(&tiny().to_string()).unwrap();
        for (section, key, value, names) in [
            (
                "decoder",
                "num_attention_heads",
                0,
                "`decoder.num_attention_heads` = 0",
            ),
            ("decoder", "num_attention_heads", 5, "not a multiple"),
            ("decoder", "num_codebooks", 0, "`decoder.num_codebooks` = 0"),
            ("decoder", "pad_token_id", 99, "`decoder.pad_token_id` = 99"),
            (
                "text_encoder",
                "num_heads",
                0,
                "`text_encoder.num_heads` = 0",
            ),
            (
                "text_encoder",
                "vocab_size",
                0,
                "`text_encoder.vocab_size` = 0",
            ),
            (
                "audio_encoder",
                "num_filters",
                0,
                "`audio_encoder.num_filters` = 0",
            ),
            (
                "audio_encoder",
                "codebook_size",
                0,
                "`audio_encoder.codebook_size` = 0",
            ),
        ] {
            let mut json = tiny();
            json[section][key] = value.into();
            let err = MusicgenConfig::from_json(&json.to_string()).unwrap_err();
            assert!(err.contains(names), "{section}.{key}: {err}");
        }
    }
}
