//! The Whisper encoder-decoder, written after transformers' `WhisperModel` rather than taken from
//! candle-transformers: candle's copy uses the tanh approximation of GELU (transformers and the
//! checkpoints use the exact erf GELU), computes the encoder positions instead of loading them,
//! fixes the MLP at 4 x d_model and re-runs the whole prefix every step (no self-attention cache).
//! Tensor names are transformers' (`model.encoder.layers.0.self_attn.q_proj.weight` ...). The
//! attention blocks and the decoder's key/value cache are the shared `nn::attention` ones; the
//! MLPs, their activation (the exact GELU on all CPU cores) and the norms are nn's.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, VarBuilder};

use super::config::ModelConfig;
use crate::engines::nn::activation::Activation;
use crate::engines::nn::attention::{
    self, AttentionConfig, KvCache, MultiHeadAttention, Numerics, Precision, ProjectionBias,
    ScaleAt,
};
use crate::engines::nn::mlp::{Mlp, MlpConfig};
use crate::engines::nn::norm;

fn activation(name: &str) -> candle_core::Result<Activation> {
    Activation::parse(name).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "config.json: unsupported activation_function `{name}`"
        ))
    })
}

fn layer_norm(size: usize, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    // Whisper's layer norms use PyTorch's default eps.
    norm::layer_norm(size, norm::TORCH_NORM_EPS, vb)
}

/// transformers' WhisperAttention: queries scaled by head_dim^-0.5, softmax in f32 (candle's CPU
/// kernel sums in the tensor's type, which costs bf16 ~7% over a few hundred positions; torch
/// accumulates half types in f32 too); the encoder's scores over 1500 positions one head at a
/// time, ~9 MB reused instead of ~72 MB allocated fresh by every layer.
const WHISPER_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Queries,
    precision: Precision::SoftmaxF32,
    contiguous_keys: false,
    split_heads_above: Some(8 << 20),
};

fn attention(d: usize, heads: usize, vb: VarBuilder) -> candle_core::Result<MultiHeadAttention> {
    let cfg = AttentionConfig {
        // Whisper's key projection has no bias.
        bias: ProjectionBias {
            k: false,
            ..ProjectionBias::ALL
        },
        numerics: WHISPER_ATTENTION,
        ..AttentionConfig::new(d, heads)
    };
    MultiHeadAttention::load(vb, &cfg)
}

/// The layer's feed-forward with its pre-norm and residual.
struct FeedForward {
    mlp: Mlp,
    norm: LayerNorm,
}

impl FeedForward {
    fn load(d: usize, ffn: usize, act: Activation, vb: &VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            mlp: Mlp::load(vb.clone(), &MlpConfig::new(d, ffn, act))?,
            norm: layer_norm(d, vb.pp("final_layer_norm"))?,
        })
    }

    fn residual(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x + self.mlp.forward(&self.norm.forward(x)?)?
    }
}

struct EncoderLayer {
    attn: MultiHeadAttention,
    attn_norm: LayerNorm,
    mlp: FeedForward,
}

pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
    act: Activation,
}

impl Encoder {
    fn load(cfg: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let conv = |stride| Conv1dConfig {
            padding: 1,
            stride,
            ..Default::default()
        };
        let act = activation(&cfg.activation_function)?;
        let conv1 = candle_nn::conv1d(cfg.num_mel_bins, d, 3, conv(1), vb.pp("conv1"))?;
        let conv2 = candle_nn::conv1d(d, d, 3, conv(2), vb.pp("conv2"))?;
        let positions = vb.get((cfg.max_source_positions, d), "embed_positions.weight")?;
        let layers = (0..cfg.encoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(EncoderLayer {
                    attn: attention(d, cfg.encoder_attention_heads, vb.pp("self_attn"))?,
                    attn_norm: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
                    mlp: FeedForward::load(d, cfg.encoder_ffn_dim, act, &vb)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            conv1,
            conv2,
            positions,
            layers,
            norm: layer_norm(d, vb.pp("layer_norm"))?,
            act,
        })
    }

    /// `(1, n_mels, 2 * max_source_positions)` features -> `(1, max_source_positions, d_model)`.
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.act.apply(&self.conv1.forward(features)?)?;
        let x = self.act.apply(&self.conv2.forward(&x)?)?;
        let x = x.transpose(1, 2)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, x.dim(1)?)?)?;
        for layer in &self.layers {
            let h = layer.attn_norm.forward(&x)?;
            x = (&x + layer.attn.forward(&h, None)?)?;
            x = layer.mlp.residual(&x)?;
        }
        self.norm.forward(&x)
    }
}

struct DecoderLayer {
    self_attn: MultiHeadAttention,
    self_norm: LayerNorm,
    cross_attn: MultiHeadAttention,
    cross_norm: LayerNorm,
    mlp: FeedForward,
}

pub struct Decoder {
    tokens: Embedding,
    positions: Tensor,
    layers: Vec<DecoderLayer>,
    norm: LayerNorm,
    embed_scale: f64,
    max_positions: usize,
}

/// One decoding run's caches: the self-attention keys/values so far and the cross-attention
/// keys/values of the window's encoder output (computed once).
pub struct DecoderState {
    self_kv: Vec<KvCache>,
    cross_kv: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl Decoder {
    fn load(cfg: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let act = activation(&cfg.activation_function)?;
        let tokens = candle_nn::embedding(cfg.vocab_size, d, vb.pp("embed_tokens"))?;
        let positions = vb.get((cfg.max_target_positions, d), "embed_positions.weight")?;
        let layers = (0..cfg.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let heads = cfg.decoder_attention_heads;
                Ok(DecoderLayer {
                    self_attn: attention(d, heads, vb.pp("self_attn"))?,
                    self_norm: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
                    cross_attn: attention(d, heads, vb.pp("encoder_attn"))?,
                    cross_norm: layer_norm(d, vb.pp("encoder_attn_layer_norm"))?,
                    mlp: FeedForward::load(d, cfg.decoder_ffn_dim, act, &vb)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            tokens,
            positions,
            layers,
            norm: layer_norm(d, vb.pp("layer_norm"))?,
            embed_scale: if cfg.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            max_positions: cfg.max_target_positions,
        })
    }

    pub fn start(&self, encoded: &Tensor) -> candle_core::Result<DecoderState> {
        let cross_kv = self
            .layers
            .iter()
            .map(|l| l.cross_attn.keys_values(encoded))
            .collect::<candle_core::Result<_>>()?;
        Ok(DecoderState {
            self_kv: vec![KvCache::new(); self.layers.len()],
            cross_kv,
            len: 0,
        })
    }

    /// Feeds `tokens` after what `state` holds; returns the f32 logits of every new position,
    /// `(tokens.len(), vocab)`. The output projection is tied to the token embedding.
    pub fn step(&self, tokens: &[u32], state: &mut DecoderState) -> candle_core::Result<Tensor> {
        let t = tokens.len();
        if state.len + t > self.max_positions {
            return Err(candle_core::Error::Msg(format!(
                "decoder length {} exceeds max_target_positions {}",
                state.len + t,
                self.max_positions
            )));
        }
        let device = self.positions.device();
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let x = (self.tokens.forward(&ids)? * self.embed_scale)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, state.len, t)?)?;
        let mask = causal_mask(t, state.len, x.dtype(), device)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_norm.forward(&x)?;
            x = (&x
                + layer
                    .self_attn
                    .forward_cached(&h, &mut state.self_kv[i], mask.as_ref())?)?;
            let h = layer.cross_norm.forward(&x)?;
            let (ck, cv) = &state.cross_kv[i];
            x = (&x + layer.cross_attn.attend(&h, ck, cv, None)?)?;
            x = layer.mlp.residual(&x)?;
        }
        state.len += t;
        let x = self.norm.forward(&x)?.squeeze(0)?;
        x.matmul(&self.tokens.embeddings().t()?)?
            .to_dtype(DType::F32)
    }
}

/// New positions attend to everything cached plus themselves and what comes before them; a
/// single new position sees everything (no mask).
fn causal_mask(
    t: usize,
    past: usize,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    attention::causal_mask(t, past, f32::NEG_INFINITY, device)?
        .to_dtype(dtype)
        .map(Some)
}

pub struct Whisper {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Whisper {
    pub fn load(cfg: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            encoder: Encoder::load(cfg, vb.pp("model.encoder"))?,
            decoder: Decoder::load(cfg, vb.pp("model.decoder"))?,
        })
    }
}

/// The index of the largest value, the first one on ties (as torch.argmax).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY, 0.5]), 2);
    }

    #[test]
    fn the_mask_hides_later_positions_only() -> candle_core::Result<()> {
        let m = causal_mask(2, 3, DType::F32, &Device::Cpu)?;
        let rows = m
            .map(|m| m.to_vec2::<f32>())
            .transpose()?
            .unwrap_or_default();
        assert_eq!(rows[0][..4], [0.0; 4]);
        assert!(rows[0][4].is_infinite());
        assert_eq!(rows[1], vec![0.0; 5]);
        assert!(causal_mask(1, 7, DType::F32, &Device::Cpu)?.is_none());
        Ok(())
    }
}
