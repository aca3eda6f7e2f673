//! The Parler-TTS decoder (parler_tts's `ParlerTTSForCausalLM`, v1 options: sinusoidal positions,
//! no embedding scale, one LM head per codebook), with the same weight names as candle's
//! `parler_tts::Decoder`. Ours because candle's recomputes the cross-attention keys and values
//! from the description at every step, which costs more than the rest of a step for the real
//! models; here they are projected once per generation and kept in [`DecoderState`]. The
//! attention blocks and the self-attention cache are the shared `nn::attention` ones, the MLP
//! and the norms nn's.

use candle_core::{D, IndexOp, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, linear_no_bias};
use candle_transformers::models::parler_tts::DecoderConfig;

use crate::engines::nn::activation::Activation;
use crate::engines::nn::attention::{
    AttentionConfig, KvCache, MultiHeadAttention, Numerics, ProjectionBias,
};
use crate::engines::nn::mlp::{Mlp, MlpConfig};
use crate::engines::nn::norm;

/// parler_tts's attention: queries scaled, scores and softmax in the model's type, grouped
/// key/value heads.
fn attention(
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    vb: VarBuilder,
) -> candle_core::Result<MultiHeadAttention> {
    let cfg = AttentionConfig {
        kv_heads,
        bias: ProjectionBias::NONE,
        numerics: Numerics::default(),
        ..AttentionConfig::new(hidden, heads)
    };
    MultiHeadAttention::load(vb, &cfg)
}

struct Layer {
    self_attn: MultiHeadAttention,
    self_norm: LayerNorm,
    cross_attn: MultiHeadAttention,
    cross_norm: LayerNorm,
    mlp: Mlp,
    final_norm: LayerNorm,
}

/// Per-generation caches: self-attention keys/values so far, cross-attention ones fixed.
pub struct DecoderState {
    self_kv: Vec<KvCache>,
    cross_kv: Vec<(Tensor, Tensor)>,
}

pub struct Decoder {
    embed_tokens: Vec<Embedding>,
    positions: Tensor,
    layers: Vec<Layer>,
    norm: LayerNorm,
    lm_heads: Vec<Linear>,
    hidden: usize,
}

impl Decoder {
    /// `vb` points at the checkpoint's `decoder` module.
    pub fn new(cfg: &DecoderConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let d = vb.pp("model").pp("decoder");
        let embed_tokens = (0..cfg.num_codebooks)
            .map(|i| candle_nn::embedding(cfg.vocab_size + 1, h, d.pp("embed_tokens").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let positions = d.get((cfg.max_position_embeddings, h), "embed_positions.weights")?;
        let kv_heads = cfg.num_key_value_heads.unwrap_or(cfg.num_attention_heads);
        let cross_kv_heads = cfg.num_cross_attention_key_value_heads.unwrap_or(kv_heads);
        let layer_norm = |vb: VarBuilder| norm::layer_norm(h, norm::TORCH_NORM_EPS, vb);
        let mlp = MlpConfig {
            bias: false,
            ..MlpConfig::new(
                h,
                cfg.ffn_dim,
                Activation::from_candle(cfg.activation_function),
            )
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = d.pp("layers").pp(i);
            layers.push(Layer {
                self_attn: attention(h, cfg.num_attention_heads, kv_heads, l.pp("self_attn"))?,
                self_norm: layer_norm(l.pp("self_attn_layer_norm"))?,
                cross_attn: attention(
                    h,
                    cfg.num_attention_heads,
                    cross_kv_heads,
                    l.pp("encoder_attn"),
                )?,
                cross_norm: layer_norm(l.pp("encoder_attn_layer_norm"))?,
                mlp: Mlp::load(l.clone(), &mlp)?,
                final_norm: layer_norm(l.pp("final_layer_norm"))?,
            });
        }
        let lm_heads = (0..cfg.num_codebooks)
            .map(|i| linear_no_bias(h, cfg.vocab_size, vb.pp("lm_heads").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            positions,
            layers,
            norm: layer_norm(d.pp("layer_norm"))?,
            lm_heads,
            hidden: h,
        })
    }

    /// Fresh caches for a generation that cross-attends to `cross` (1, len, hidden).
    pub fn start(&self, cross: &Tensor) -> candle_core::Result<DecoderState> {
        let cross_kv = self
            .layers
            .iter()
            .map(|l| l.cross_attn.keys_values(cross))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(DecoderState {
            self_kv: vec![KvCache::new(); self.layers.len()],
            cross_kv,
        })
    }

    /// Feeds `ids` (batch, codebooks, len), after `prompt` (batch, plen, hidden) when given, at
    /// position `offset`; `mask` is added to the self-attention scores. Returns each codebook's
    /// logits (batch, plen + len, vocab).
    pub fn forward(
        &self,
        state: &mut DecoderState,
        ids: &Tensor,
        prompt: Option<&Tensor>,
        mask: Option<&Tensor>,
        offset: usize,
    ) -> candle_core::Result<Vec<Tensor>> {
        let (_, codebooks, _) = ids.dims3()?;
        if codebooks != self.embed_tokens.len() {
            candle_core::bail!(
                "{codebooks} codebooks fed to a decoder of {}",
                self.embed_tokens.len()
            );
        }
        // The input is the sum of every codebook's embedding.
        let mut xs: Option<Tensor> = None;
        for (i, embed) in self.embed_tokens.iter().enumerate() {
            let e = embed.forward(&ids.i((.., i))?)?;
            xs = Some(match xs {
                None => e,
                Some(sum) => (sum + e)?,
            });
        }
        let Some(mut xs) = xs else {
            candle_core::bail!("no codebooks");
        };
        if let Some(prompt) = prompt {
            xs = Tensor::cat(&[prompt, &xs], 1)?;
        }
        let len = xs.dim(1)?;
        if offset + len > self.positions.dim(0)? {
            candle_core::bail!(
                "position {} is past the decoder's {} positions",
                offset + len,
                self.positions.dim(0)?
            );
        }
        xs = xs.broadcast_add(&self.positions.narrow(0, offset, len)?.unsqueeze(0)?)?;
        for ((layer, cache), (ck, cv)) in self
            .layers
            .iter()
            .zip(state.self_kv.iter_mut())
            .zip(&state.cross_kv)
        {
            let normed = layer.self_norm.forward(&xs)?;
            let attended = layer.self_attn.forward_cached(&normed, cache, mask)?;
            xs = (xs + attended)?;
            let normed = layer.cross_norm.forward(&xs)?;
            xs = (&xs + layer.cross_attn.attend(&normed, ck, cv, None)?)?;
            let ff = layer.mlp.forward(&layer.final_norm.forward(&xs)?)?;
            xs = (xs + ff)?;
        }
        let xs = self.norm.forward(&xs)?;
        debug_assert_eq!(xs.dim(D::Minus1)?, self.hidden);
        self.lm_heads.iter().map(|head| head.forward(&xs)).collect()
    }
}
