//! The T5 text encoder (transformers' T5EncoderModel): MusicGen's and Parler-TTS's, and the shape
//! of FLUX's `text_encoder_2` (T5 v1.1: gated-gelu, untied). candle_transformers' T5 does the
//! arithmetic (exact: tests/parity/parity_t5.rs checks a v1.1-style encoder against transformers,
//! log-scaled relative position buckets included); this file owns what is ours: reading and
//! checking the config (a bad value names its file and key), the precision (never f16) and
//! ids -> last hidden state.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use serde_json::Value;

use crate::engines::config_check::{self as check, Check};
use crate::error::{Error, Result};

pub use t5::Config as T5Config;

/// Keys configs saved by older transformers may lack (candle requires them), with transformers'
/// defaults.
const DEFAULTS: [(&str, DefaultValue); 7] = [
    ("is_encoder_decoder", DefaultValue::Bool(true)),
    ("pad_token_id", DefaultValue::Int(0)),
    ("eos_token_id", DefaultValue::Int(1)),
    ("dropout_rate", DefaultValue::Float(0.1)),
    ("initializer_factor", DefaultValue::Float(1.0)),
    ("layer_norm_epsilon", DefaultValue::Float(1e-6)),
    ("relative_attention_num_buckets", DefaultValue::Int(32)),
];

#[derive(Clone, Copy)]
enum DefaultValue {
    Bool(bool),
    Int(u64),
    Float(f64),
}

impl DefaultValue {
    fn to_json(self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(b),
            Self::Int(i) => i.into(),
            Self::Float(f) => f.into(),
        }
    }
}

/// `section.key`, or `key` for a config file of its own (`section` empty).
fn key(section: &str, k: &str) -> String {
    if section.is_empty() {
        k.to_string()
    } else {
        format!("{section}.{k}")
    }
}

/// A T5 config from its JSON (a section of a composite config.json, named by `section`, or a
/// whole file with `section` empty): missing keys take transformers' defaults, then every size
/// is checked. Errors are reasons naming the key; the caller adds the file.
pub fn parse_config(section: &str, mut value: Value) -> std::result::Result<T5Config, String> {
    if let Value::Object(map) = &mut value {
        for (k, default) in DEFAULTS {
            let entry = map.entry(k.to_string()).or_insert(Value::Null);
            if entry.is_null() {
                *entry = default.to_json();
            }
        }
    }
    let what = if section.is_empty() {
        "T5 config".to_string()
    } else {
        format!("`{section}` (T5)")
    };
    let config: T5Config = serde_json::from_value(value).map_err(|e| format!("{what}: {e}"))?;
    check_config(section, &config)?;
    Ok(config)
}

/// A T5 config.json of its own (FLUX's `text_encoder_2/config.json`); every problem is bad input
/// naming the file (and the key).
pub fn load_config(path: &Path) -> Result<T5Config> {
    let text = check::read_config(path)?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| check::bad_config(path, &e.to_string()))?;
    parse_config("", value).map_err(|e| check::bad_config(path, &e))
}

/// The values the encoder divides or indexes by, keys prefixed with `section.`.
pub fn check_config(section: &str, c: &T5Config) -> Check {
    let key = |k: &str| key(section, k);
    check::positive(&[
        (&key("vocab_size"), c.vocab_size),
        (&key("d_model"), c.d_model),
        (&key("d_kv"), c.d_kv),
        (&key("d_ff"), c.d_ff),
        (&key("num_layers"), c.num_layers),
        (&key("num_heads"), c.num_heads),
        (
            &key("relative_attention_num_buckets"),
            c.relative_attention_num_buckets,
        ),
        (
            &key("relative_attention_max_distance"),
            c.relative_attention_max_distance,
        ),
    ])?;
    // Bucketing divides by num_buckets / 2 (bidirectional) and by log(max_distance / max_exact).
    if c.relative_attention_num_buckets < 4 {
        return Err(format!(
            "`{}` = {}: T5 needs at least 4 relative attention buckets",
            key("relative_attention_num_buckets"),
            c.relative_attention_num_buckets
        ));
    }
    check::positive_float(&key("layer_norm_epsilon"), c.layer_norm_epsilon)?;
    check::index_in(
        &key("pad_token_id"),
        c.pad_token_id,
        &key("vocab_size"),
        c.vocab_size,
    )?;
    check::index_in(
        &key("eos_token_id"),
        c.eos_token_id,
        &key("vocab_size"),
        c.vocab_size,
    )
}

/// Refuses an empty sequence or an id past the vocabulary (bad input).
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::bad_input("the T5 encoder got no token ids"));
    }
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::bad_input(format!(
            "token id {bad} is outside the T5 encoder's {vocab} embeddings"
        )));
    }
    Ok(())
}

/// A loaded T5 encoder.
#[derive(Debug, Clone)]
pub struct T5Encoder {
    model: t5::T5EncoderModel,
    config: T5Config,
    dtype: DType,
    device: Device,
}

impl T5Encoder {
    /// The dtype T5 runs in when its weights are asked for in `dtype`: f16 becomes f32 (T5's
    /// activations overflow f16; transformers keeps its `wo` layers in f32 for that reason), bf16
    /// and f32 stay. A family that wants f32 whatever the run's dtype (MusicGen: its encoder is
    /// small) hands over an f32 VarBuilder.
    pub fn dtype_for(dtype: DType) -> DType {
        crate::engines::nn::dtype::widen_f16(dtype)
    }

    /// Builds the encoder from `vb` rooted at the T5's own names (`shared` or
    /// `encoder.embed_tokens`, `encoder.block.N...`), in `dtype_for(vb.dtype())`. An encoder
    /// never has cross-attention, whatever `is_decoder` says.
    pub fn new(vb: VarBuilder, config: &T5Config) -> candle_core::Result<Self> {
        let dtype = Self::dtype_for(vb.dtype());
        let mut config = config.clone();
        config.is_decoder = false;
        let device = vb.device().clone();
        let model = t5::T5EncoderModel::load(vb.set_dtype(dtype), &config)?;
        Ok(Self {
            model,
            device,
            config,
            dtype,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The dtype the encoder computes (and returns) in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The last hidden state for one sequence of ids (no padding, no mask): (1, len, d_model) in
    /// `dtype()`. An empty sequence or an id past the vocabulary is bad input.
    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        check_ids(ids, self.config.vocab_size)?;
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        // candle's encoder needs `&mut` for key/value caches an encoder does not use; a clone
        // shares the weights.
        let mut model = self.model.clone();
        Ok(model.forward(&input)?)
    }
}

#[cfg(test)]
#[path = "t5_tests.rs"]
mod tests;
