//! `text_encoder/config.json` of a Qwen3 text encoder (transformers' Qwen3Config, as Z-Image's
//! Qwen3-4B ships it), read with transformers' defaults for missing or null keys, and checked:
//! every value the encoder divides or indexes by, and every feature it does not implement
//! (scaled RoPE, sliding-window layers) is refused by name rather than computed wrongly.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::engines::config_check::{self as check, Check, bad_config, read_config, unsupported};
use crate::engines::nn::activation::Activation;
use crate::error::Result;

/// transformers' `RotaryEmbeddingConfigMixin.default_theta`, for configs that name no theta.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// Qwen3Config's own fields; `None` (missing or null) takes transformers' default.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawQwenConfig {
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_parameters: Option<Value>,
    /// The key older configs use for `rope_parameters` (transformers reads it in its place).
    rope_scaling: Option<Value>,
    attention_bias: Option<bool>,
    use_sliding_window: Option<bool>,
    layer_types: Option<Vec<String>>,
}

/// A Qwen3 decoder's shape, as the encoder runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenConfig {
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per head; Qwen3 sets it apart from hidden_size (Qwen3-4B: 32 heads x 128 over 2560).
    pub head_dim: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Biases on q/k/v/o (false for every released Qwen3).
    pub attention_bias: bool,
}

impl QwenConfig {
    /// Parses and checks a config.json's text; errors are reasons naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawQwenConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_raw(raw)
    }

    /// A config.json file; every problem is bad input naming the file (and the key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    fn from_raw(r: RawQwenConfig) -> std::result::Result<Self, String> {
        let act_name = r.hidden_act.unwrap_or_else(|| "silu".to_string());
        let hidden_act =
            Activation::parse(&act_name).ok_or_else(|| unsupported("hidden_act", &act_name))?;
        if r.use_sliding_window == Some(true) {
            return Err(unsupported("use_sliding_window", true));
        }
        if let Some(types) = &r.layer_types
            && let Some((i, t)) = types
                .iter()
                .enumerate()
                .find(|(_, t)| t.as_str() != "full_attention")
        {
            return Err(unsupported(&format!("layer_types[{i}]"), t));
        }
        let num_attention_heads = r.num_attention_heads.unwrap_or(32);
        let c = Self {
            architectures: r.architectures,
            vocab_size: r.vocab_size.unwrap_or(151_936),
            hidden_size: r.hidden_size.unwrap_or(4096),
            intermediate_size: r.intermediate_size.unwrap_or(22_016),
            num_hidden_layers: r.num_hidden_layers.unwrap_or(32),
            num_attention_heads,
            num_key_value_heads: r.num_key_value_heads.unwrap_or(num_attention_heads),
            head_dim: r.head_dim.unwrap_or(128),
            hidden_act,
            max_position_embeddings: r.max_position_embeddings.unwrap_or(32_768),
            rms_norm_eps: r.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: rope_theta(r.rope_parameters, r.rope_scaling, r.rope_theta)?,
            attention_bias: r.attention_bias.unwrap_or(false),
        };
        c.check()?;
        Ok(c)
    }

    /// The values the encoder divides or indexes by.
    pub fn check(&self) -> Check {
        check::positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ])?;
        // Grouped-query attention shares each key/value head among heads / kv_heads queries.
        check::multiple_of(
            "num_attention_heads",
            self.num_attention_heads,
            "num_key_value_heads",
            self.num_key_value_heads,
        )?;
        // Rotate-half RoPE pairs value i with i + head_dim / 2.
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "`head_dim` = {}: rotary embeddings need an even head size",
                self.head_dim
            ));
        }
        check::positive_float("rms_norm_eps", self.rms_norm_eps)?;
        check::positive_float("rope_theta", self.rope_theta)
    }

    /// Parameters of the encoder's weights (embeddings, every layer, the final norm; no LM head).
    pub fn parameters(&self) -> u64 {
        let [h, i, hd] =
            [self.hidden_size, self.intermediate_size, self.head_dim].map(|v| v as u64);
        let (q, kv) = (
            self.num_attention_heads as u64 * hd,
            self.num_key_value_heads as u64 * hd,
        );
        let bias = if self.attention_bias {
            q + 2 * kv + h
        } else {
            0
        };
        let attention = 2 * h * q + 2 * h * kv + bias + 2 * hd;
        let layer = attention + 3 * h * i + 2 * h;
        self.vocab_size as u64 * h + self.num_hidden_layers as u64 * layer + h
    }

    /// Upper bound of the activations of one `encode` beyond the weights, for `batch` prompts of
    /// `tokens` ids at `elem` bytes a value: a few copies of the hidden states, one layer's
    /// q/k/v (keys and values repeated to every head), its scores and f32 softmax, its MLP.
    pub fn working_bytes(&self, batch: usize, tokens: usize, elem: usize) -> u64 {
        let [b, t, e] = [batch, tokens, elem].map(|v| v as u64);
        let heads = self.num_attention_heads as u64;
        let hidden = 4 * b * t * self.hidden_size as u64 * e;
        let qkv = 4 * b * t * heads * self.head_dim as u64 * e;
        let scores = b * heads * t * t * (2 * e + 2 * 4);
        let mlp = 3 * b * t * self.intermediate_size as u64 * e;
        hidden + qkv + scores + mlp
    }
}

/// transformers' theta: `rope_parameters` (or the older `rope_scaling` in its place) may hold
/// `rope_theta`, else the top-level `rope_theta`, else 10000. Only the plain ("default") RoPE is
/// implemented: a scaled one (yarn, linear, ...) is refused.
fn rope_theta(
    parameters: Option<Value>,
    scaling: Option<Value>,
    top_level: Option<f64>,
) -> std::result::Result<f64, String> {
    let (key, params) = match (scaling, parameters) {
        (Some(s), _) if !s.is_null() => ("rope_scaling", s),
        (_, Some(p)) if !p.is_null() => ("rope_parameters", p),
        _ => return Ok(top_level.unwrap_or(DEFAULT_ROPE_THETA)),
    };
    let Value::Object(map) = params else {
        return Err(format!("`{key}` = {params}: expected an object"));
    };
    let kind = map
        .get("rope_type")
        .or_else(|| map.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    if kind != "default" {
        return Err(unsupported(&format!("{key}.rope_type"), kind));
    }
    match map.get("rope_theta") {
        None | Some(Value::Null) => Ok(top_level.unwrap_or(DEFAULT_ROPE_THETA)),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("`{key}.rope_theta` = {v}: it must be a number above 0")),
    }
}
