//! The CLIP text encoder (transformers' CLIPTextModel and CLIPTextModelWithProjection).
//!
//! Owned rather than candle-transformers' because that one cannot be configured from
//! config.json (private fields, fixed layer-norm eps), computes `gelu` with the tanh
//! approximation where transformers uses erf, and lacks `text_projection` and the pooled output
//! that SDXL needs. Its attention is the shared `nn::attention` block, its MLP and norms nn's. SD 1.x/2.x/XL use it, and
//! so will every family with a CLIP text encoder (FLUX's `text_encoder`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::clip_config::TextEncoderConfig;
use crate::engines::nn::activation::Activation;
use crate::engines::nn::attention::{
    AttentionConfig, MultiHeadAttention, Numerics, Precision, ScaleAt, causal_mask,
};
use crate::engines::nn::mlp::{Mlp, MlpConfig};
use crate::engines::nn::norm;
use crate::engines::nn::weights::Weights;
use crate::error::{Error, Result};

/// What the SD pipelines take from a text encoder.
#[derive(Debug, Clone)]
pub struct TextEncoderOutput {
    /// After the final layer norm: SD 1.x/2.x `prompt_embeds`.
    pub last_hidden_state: Tensor,
    /// `hidden_states[-2]`: the second-to-last layer's output, no final norm (SDXL's embeds).
    pub penultimate: Tensor,
    /// The final-normed state at the EOS position, projected by `text_projection` when present.
    pub pooled: Tensor,
}

/// One CLIP transformer layer (text and vision towers alike: `clip_vision`).
#[derive(Debug)]
pub(super) struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: MultiHeadAttention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

/// transformers' CLIPAttention: queries scaled in the model's type, then scores and softmax in
/// f32 (77 tokens: the whole score matrix is tiny, so no chunking).
const CLIP_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Queries,
    precision: Precision::ScoresF32,
    contiguous_keys: false,
    split_heads_above: None,
};

/// The sizes of a CLIP layer (from a text or a vision config).
#[derive(Debug, Clone)]
pub(super) struct LayerShape<'a> {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub eps: f64,
    pub act: &'a str,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &TextEncoderConfig) -> candle_core::Result<Self> {
        Self::load(
            vb,
            &LayerShape {
                hidden: c.hidden_size,
                heads: c.num_attention_heads,
                intermediate: c.intermediate_size,
                eps: c.layer_norm_eps,
                act: &c.hidden_act,
            },
        )
    }

    pub(super) fn load(vb: VarBuilder, c: &LayerShape) -> candle_core::Result<Self> {
        let h = c.hidden;
        let attn = AttentionConfig {
            numerics: CLIP_ATTENTION,
            ..AttentionConfig::new(h, c.heads)
        };
        Ok(Self {
            layer_norm1: norm::layer_norm(h, c.eps, vb.pp("layer_norm1"))?,
            self_attn: MultiHeadAttention::load(vb.pp("self_attn"), &attn)?,
            layer_norm2: norm::layer_norm(h, c.eps, vb.pp("layer_norm2"))?,
            // The config admits quick_gelu, gelu, gelu_new and gelu_pytorch_tanh.
            mlp: Mlp::load(
                vb.pp("mlp"),
                &MlpConfig::new(
                    h,
                    c.intermediate,
                    Activation::parse(c.act).unwrap_or(Activation::QuickGelu),
                ),
            )?,
        })
    }

    /// `mask`: the text tower's additive causal mask (seq, seq) in f32; none for images.
    pub(super) fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let normed = self.layer_norm1.forward(xs)?;
        let xs = (xs + self.self_attn.forward(&normed, mask)?)?;
        let mlp = self.mlp.forward(&self.layer_norm2.forward(&xs)?)?;
        xs + mlp
    }
}

/// A CLIP text encoder loaded from a `text_encoder*/` folder.
#[derive(Debug)]
pub struct TextEncoder {
    config: TextEncoderConfig,
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    text_projection: Option<Linear>,
    device: Device,
}

impl TextEncoder {
    /// `load_with` with no PALLAIDIUM_* switches set (parity tests, tools); jobs pass theirs.
    pub fn load(dir: &Path, device: &Device, dtype: DType, fp16_variant: bool) -> Result<Self> {
        Self::load_with(dir, device, dtype, fp16_variant, Default::default())
    }

    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        Self::load_patched(dir, device, dtype, fp16_variant, switches, None)
    }

    /// `load_with` with LoRA deltas merged into the weights.
    pub fn load_patched(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: crate::engines::EngineSwitches,
        patch: Option<&std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_text_encoder", dir = %dir.display()).entered();
        let config = TextEncoderConfig::load(&dir.join("config.json"))?;
        let weights = Weights::open_patched(dir, device, dtype, fp16_variant, switches, patch)?;
        let model = weights.build("text encoder", |vb| Self::new(vb, config.clone()))?;
        Ok(model)
    }

    /// Builds from a VarBuilder rooted at the weight file. transformers 5 saves CLIPTextModel
    /// without the `text_model.` prefix that older checkpoints (and every SD repo) have.
    pub fn new(vb: VarBuilder, config: TextEncoderConfig) -> candle_core::Result<Self> {
        let c = &config;
        let tm = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb.clone()
        };
        let h = c.hidden_size;
        let emb = tm.pp("embeddings");
        let token_embedding = candle_nn::embedding(c.vocab_size, h, emb.pp("token_embedding"))?;
        let position_embedding =
            candle_nn::embedding(c.max_position_embeddings, h, emb.pp("position_embedding"))?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::new(tm.pp(format!("encoder.layers.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_layer_norm = norm::layer_norm(h, c.layer_norm_eps, tm.pp("final_layer_norm"))?;
        let text_projection = if vb.contains_tensor("text_projection.weight") {
            let out = c.projection_dim.unwrap_or(h);
            Some(candle_nn::linear_no_bias(h, out, vb.pp("text_projection"))?)
        } else {
            None
        };
        Ok(Self {
            device: vb.device().clone(),
            config,
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm,
            text_projection,
        })
    }

    pub fn config(&self) -> &TextEncoderConfig {
        &self.config
    }

    /// Whether `pooled` is projected (SDXL's text_encoder_2).
    pub fn has_projection(&self) -> bool {
        self.text_projection.is_some()
    }

    /// `ids`: (batch, seq) token ids (u32 or i64), seq at most `max_position_embeddings`.
    pub fn forward(&self, ids: &Tensor) -> Result<TextEncoderOutput> {
        let (b, n) = ids.dims2()?;
        if n == 0 || n > self.config.max_position_embeddings {
            return Err(Error::bad_input(format!(
                "the text encoder takes 1 to {} tokens per prompt, got {n}",
                self.config.max_position_embeddings
            )));
        }
        let ids = ids.to_dtype(DType::U32)?.to_device(&self.device)?;
        let host_ids = ids.to_vec2::<u32>()?;
        if let Some(bad) = host_ids
            .iter()
            .flatten()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(Error::bad_input(format!(
                "token id {bad} is outside the text encoder's vocabulary of {}",
                self.config.vocab_size
            )));
        }
        let positions = Tensor::arange(0u32, n as u32, &self.device)?;
        let mut xs = self
            .token_embedding
            .forward(&ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        // As transformers: f32::MIN above the diagonal.
        let mask = causal_mask(n, 0, f32::MIN, &self.device)?;
        let mut penultimate = xs.clone();
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            if i == last {
                penultimate = xs.clone();
            }
            xs = layer.forward(&xs, Some(&mask))?;
        }
        let last_hidden_state = self.final_layer_norm.forward(&xs)?;
        let eos_positions: Vec<u32> = host_ids
            .iter()
            .map(|row| self.eos_position(row) as u32)
            .collect();
        let rows = (0..b)
            .map(|i| last_hidden_state.get(i)?.get(eos_positions[i] as usize))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut pooled = Tensor::stack(&rows, 0)?;
        if let Some(proj) = &self.text_projection {
            pooled = proj.forward(&pooled)?;
        }
        Ok(TextEncoderOutput {
            last_hidden_state,
            penultimate,
            pooled,
        })
    }

    /// transformers: configs from before its PR #24773 say eos_token_id == 2 and pool at the
    /// highest id (argmax); newer ones pool at the first EOS (padding may repeat it).
    fn eos_position(&self, row: &[u32]) -> usize {
        let eos = self.config.eos_token_id;
        if eos == 2 {
            // torch's argmax returns the first maximal index.
            let mut best = 0;
            for (i, &id) in row.iter().enumerate() {
                if id > row[best] {
                    best = i;
                }
            }
            best
        } else {
            row.iter().position(|&id| id == eos).unwrap_or(0)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny_config(eos: u32) -> TextEncoderConfig {
        TextEncoderConfig::from_json(&format!(
            r#"{{"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
                "num_hidden_layers": 2, "vocab_size": 20, "max_position_embeddings": 6,
                "eos_token_id": {eos}, "projection_dim": 4}}"#
        ))
        .unwrap()
    }

    #[test]
    fn pooled_position_follows_transformers_eos_rule() {
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let enc = TextEncoder::new(vb.clone(), tiny_config(7)).unwrap();
        assert_eq!(enc.eos_position(&[1, 3, 7, 7, 9]), 2);
        let legacy = TextEncoder::new(vb, tiny_config(2)).unwrap();
        assert_eq!(legacy.eos_position(&[1, 19, 3, 19]), 1);
    }

    #[test]
    fn forward_shapes_and_bad_ids() {
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        // Request the projection so `has_projection` is exercised.
        vb.get((4, 8), "text_projection.weight").unwrap();
        let enc = TextEncoder::new(vb, tiny_config(7)).unwrap();
        assert!(enc.has_projection());
        let ids = Tensor::new(&[[1u32, 5, 7, 7], [1, 7, 7, 7]], &Device::Cpu).unwrap();
        let out = enc.forward(&ids).unwrap();
        assert_eq!(out.last_hidden_state.dims(), &[2, 4, 8]);
        assert_eq!(out.penultimate.dims(), &[2, 4, 8]);
        assert_eq!(out.pooled.dims(), &[2, 4]);
        let bad = Tensor::new(&[[1u32, 50]], &Device::Cpu).unwrap();
        assert_eq!(enc.forward(&bad).unwrap_err().exit_code(), 2);
    }
}
