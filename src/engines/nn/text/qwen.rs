//! The Qwen3 text encoder (transformers' Qwen3Model) as Z-Image uses it: diffusers'
//! ZImagePipeline runs the chat-templated prompt, right-padded, with its attention mask, and
//! takes `hidden_states[-2]` (the input of the last decoder layer, no final norm), keeping the
//! real tokens only. A Llama-style decoder: RMSNorm before attention and MLP, grouped-query
//! attention with per-head RMSNorm on queries and keys (Qwen3's addition), rotate-half RoPE, a
//! SiLU-gated MLP, no biases.
//!
//! Owned rather than candle-transformers' `qwen3`, which returns only the final-normed output
//! of its last layer, takes no padding mask and expects a `model.` prefix. Built from nn's
//! blocks: `rotary::Rope1d`, `norm::rms_norm`, `attention::attend`, `mlp::GatedMlp`.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};

use super::qwen_config::QwenConfig;
use crate::engines::nn::attention::{Numerics, Precision, ScaleAt, attend};
use crate::engines::nn::mlp::GatedMlp;
use crate::engines::nn::norm;
use crate::engines::nn::rotary::{Rope1d, RopeTables};
use crate::engines::nn::weights::Weights;
use crate::error::{Error, Result};

/// The hidden state ZImagePipeline takes: `hidden_states[-2]`.
pub const ZIMAGE_HIDDEN_STATE: isize = -2;

/// transformers' eager attention: scores scaled after the product, softmax in f32.
const QWEN_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Scores,
    precision: Precision::SoftmaxF32,
    contiguous_keys: false,
    split_heads_above: None,
};

/// What masked scores get: far below any score and finite in f32 and bf16 (f32::MIN rounds to
/// -inf in bf16), so a row with no visible key (a prompt that is all padding) averages instead
/// of turning NaN. Visible rows give exactly what transformers' mask gives: exp underflows to 0.
const MASKED: f32 = -1e30;

fn linear(input: usize, output: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    if bias {
        candle_nn::linear(input, output, vb)
    } else {
        candle_nn::linear_no_bias(input, output, vb)
    }
}

/// Qwen3Attention: q/k/v projections, RMSNorm per head on q and k, RoPE, attention, `o_proj`.
#[derive(Debug)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn new(vb: VarBuilder, c: &QwenConfig) -> candle_core::Result<Self> {
        let (h, d, bias) = (c.hidden_size, c.head_dim, c.attention_bias);
        let (q_width, kv_width) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        Ok(Self {
            q: linear(h, q_width, bias, vb.pp("q_proj"))?,
            k: linear(h, kv_width, bias, vb.pp("k_proj"))?,
            v: linear(h, kv_width, bias, vb.pp("v_proj"))?,
            o: linear(q_width, h, bias, vb.pp("o_proj"))?,
            q_norm: norm::rms_norm(d, c.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: norm::rms_norm(d, c.rms_norm_eps, vb.pp("k_norm"))?,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: d,
        })
    }

    /// (b, t, width) -> (b, heads, t, head_dim), normed per head when `norm` is given.
    fn heads_of(
        &self,
        xs: &Tensor,
        heads: usize,
        norm: Option<&RmsNorm>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let mut xs = xs.reshape((b, t, heads, self.head_dim))?;
        if let Some(norm) = norm {
            xs = norm.forward(&xs)?;
        }
        xs.transpose(1, 2)?.contiguous()
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let q = self.heads_of(&self.q.forward(xs)?, self.heads, Some(&self.q_norm))?;
        let k = self.heads_of(&self.k.forward(xs)?, self.kv_heads, Some(&self.k_norm))?;
        let v = self.heads_of(&self.v.forward(xs)?, self.kv_heads, None)?;
        let (q, k) = (rope.apply(&q)?, rope.apply(&k)?);
        let ctx = attend(&q, &k, &v, Some(mask), &QWEN_ATTENTION)?;
        let ctx = ctx
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&ctx)
    }
}

/// Qwen3DecoderLayer: pre-norm attention and MLP, each added to the residual.
#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: SelfAttention,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
}

impl DecoderLayer {
    fn new(vb: VarBuilder, c: &QwenConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            input_layernorm: norm::rms_norm(h, c.rms_norm_eps, vb.pp("input_layernorm"))?,
            self_attn: SelfAttention::new(vb.pp("self_attn"), c)?,
            post_attention_layernorm: norm::rms_norm(
                h,
                c.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: GatedMlp::load(
                vb.pp("mlp"),
                h,
                c.intermediate_size,
                c.hidden_act,
                ["gate_proj", "up_proj", "down_proj"],
            )?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(xs)?, rope, mask)?;
        let xs = (xs + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        xs + mlp
    }
}

/// A Qwen3 text encoder loaded from a `text_encoder/` folder.
#[derive(Debug)]
pub struct QwenEncoder {
    config: QwenConfig,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rope: Rope1d,
    dtype: DType,
    device: Device,
}

impl QwenEncoder {
    /// The dtype the encoder computes in when `dtype` is asked for on `device`: f32 on the CPU
    /// (candle has no bf16 matmul there and f16 is emulated); elsewhere f16 becomes f32 (a
    /// Qwen residual stream carries outliers past f16's range; the checkpoints are bf16), bf16
    /// and f32 stay.
    pub fn dtype_for(dtype: DType, device: &Device) -> DType {
        if device.is_cpu() {
            DType::F32
        } else {
            crate::engines::nn::dtype::widen_f16(dtype)
        }
    }

    /// `load_with` with no PALLAIDIUM_* switches set (parity tests, tools); jobs pass theirs.
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(dir, device, dtype, Default::default())
    }

    /// A diffusers `text_encoder/` folder: config.json and model.safetensors (or shards), in
    /// `dtype_for(dtype, device)`. A bad config or weight file is bad input naming it.
    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_qwen_encoder", dir = %dir.display()).entered();
        let config = QwenConfig::load(&dir.join("config.json"))?;
        let dtype = Self::dtype_for(dtype, device);
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        weights.build("Qwen3 text encoder", |vb| Self::new(vb, config))
    }

    /// Builds from a VarBuilder rooted at the weight file: Qwen3Model's names (`embed_tokens`,
    /// `layers.N`, `norm`), or Qwen3ForCausalLM's under `model.` (its `lm_head` is not read).
    pub fn new(vb: VarBuilder, config: QwenConfig) -> candle_core::Result<Self> {
        let c = &config;
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            vb
        };
        let embed_tokens =
            candle_nn::embedding(c.vocab_size, c.hidden_size, vb.pp("embed_tokens"))?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| DecoderLayer::new(vb.pp(format!("layers.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let norm = norm::rms_norm(c.hidden_size, c.rms_norm_eps, vb.pp("norm"))?;
        let rope = Rope1d::new(c.head_dim, c.rope_theta)?;
        Ok(Self {
            dtype: vb.dtype(),
            device: vb.device().clone(),
            embed_tokens,
            layers,
            norm,
            rope,
            config,
        })
    }

    pub fn config(&self) -> &QwenConfig {
        &self.config
    }

    /// The dtype the encoder computes (and returns) in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// One of transformers' `hidden_states` for `ids` (batch, seq) (u32 or i64): index `which`
    /// of the layers + 1 states, Python-style (negative counts from the end). 0 is the
    /// embeddings, `i` the output of layer `i - 1`, the last (-1) the final-normed output;
    /// [`ZIMAGE_HIDDEN_STATE`] (-2) is the input of the last layer. `mask` (batch, seq), 1 for
    /// a real token and 0 for padding (the tokenizer's attention mask), hides padded keys from
    /// every query; positions count from 0 in every row, as transformers' do without
    /// `position_ids`, so padding goes on the right. Returns (batch, seq, hidden) in `dtype()`;
    /// padded positions hold values too (they attend to the real tokens before them).
    pub fn encode(&self, ids: &Tensor, mask: Option<&Tensor>, which: isize) -> Result<Tensor> {
        let states = self.layers.len() + 1;
        let index = resolve_index(which, states).ok_or_else(|| {
            Error::bad_input(format!(
                "hidden state {which} does not exist: the Qwen3 text encoder has {states} \
                 (-{states} to {})",
                states - 1
            ))
        })?;
        let (b, t) = ids.dims2()?;
        if b == 0 || t == 0 {
            return Err(Error::bad_input("the Qwen3 text encoder got no token ids"));
        }
        let ids = ids.to_dtype(DType::U32)?;
        let vocab = self.config.vocab_size;
        if let Some(bad) = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .into_iter()
            .find(|&id| id as usize >= vocab)
        {
            return Err(Error::bad_input(format!(
                "token id {bad} is outside the Qwen3 text encoder's {vocab} embeddings"
            )));
        }
        let mask = self.additive_mask(mask, b, t)?;
        let rope = self.rope.tables(0, t, &self.device)?;
        let mut xs = self
            .embed_tokens
            .forward(&ids.to_device(&self.device)?)?
            .to_dtype(self.dtype)?;
        for layer in self.layers.iter().take(index.min(self.layers.len())) {
            xs = layer.forward(&xs, &rope, &mask)?;
        }
        if index == self.layers.len() {
            xs = self.norm.forward(&xs)?;
        }
        Ok(xs)
    }

    /// (b, 1, t, t) f32: 0 where query i may see key j (j <= i, j a real token), else `MASKED`.
    fn additive_mask(&self, mask: Option<&Tensor>, b: usize, t: usize) -> Result<Tensor> {
        let real: Vec<bool> = match mask {
            None => vec![true; b * t],
            Some(m) => {
                if m.dims() != [b, t] {
                    return Err(Error::bad_input(format!(
                        "the attention mask is {:?}; the ids are ({b}, {t})",
                        m.dims()
                    )));
                }
                m.to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(|v| v != 0.0)
                    .collect()
            }
        };
        let mut values = Vec::with_capacity(b * t * t);
        for row in real.chunks(t) {
            for i in 0..t {
                values.extend((0..t).map(|j| if j <= i && row[j] { 0.0 } else { MASKED }));
            }
        }
        Ok(Tensor::from_vec(values, (b, 1, t, t), &self.device)?)
    }
}

/// `which` as an index into `states` hidden states (Python's negative indexing), if it exists.
fn resolve_index(which: isize, states: usize) -> Option<usize> {
    let states = isize::try_from(states).ok()?;
    let index = if which < 0 { states + which } else { which };
    usize::try_from(index)
        .ok()
        .filter(|&i| (i as isize) < states)
}

/// What ZImagePipeline keeps of a (batch, seq, hidden) state: per prompt, the rows at its real
/// tokens (`prompt_embeds[i][prompt_masks[i]]`), (real tokens, hidden) each.
pub fn real_tokens(hidden: &Tensor, mask: &Tensor) -> Result<Vec<Tensor>> {
    let (b, t, _) = hidden.dims3()?;
    if mask.dims() != [b, t] {
        return Err(Error::bad_input(format!(
            "the attention mask is {:?}; the hidden states are {:?}",
            mask.dims(),
            hidden.dims()
        )));
    }
    let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let keep: Vec<u32> = (0..t as u32).filter(|&j| row[j as usize] != 0.0).collect();
            let n = keep.len();
            let index = Tensor::from_vec(keep, n, hidden.device())?;
            Ok(hidden.get(i)?.index_select(&index, 0)?)
        })
        .collect()
}

#[cfg(test)]
#[path = "qwen_tests.rs"]
mod tests;
