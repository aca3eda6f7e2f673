//! BLIP's text decoder (`BlipTextLMHeadModel`: a BERT with cross-attention to the image and an MLM
//! head), read under transformers' weight names. Ours rather than candle-transformers' because
//! that one recomputes the cross-attention keys/values over all image tokens in every layer at
//! every step; here they are projected once per image (`DecodeState::new`) and the
//! self-attention keys/values are cached per step, so a step costs one token's worth of matmuls.
//! The attention blocks and the cache are the shared `nn::attention` ones, the MLP nn's.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::blip_text::Config;

use crate::engines::nn::attention::{
    self, AttentionConfig, KvCache, MultiHeadAttention, Numerics, Precision, ProjectionNames,
    ScaleAt,
};
use crate::engines::nn::norm;
use crate::engines::nn::{
    self,
    mlp::{Mlp, MlpConfig},
};

/// transformers' BlipTextSelfAttention: the scale on the scores, scores and softmax in the
/// model's type.
const BLIP_TEXT_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Scores,
    precision: Precision::Native,
    contiguous_keys: true,
    split_heads_above: None,
};

/// Attention and the residual + LayerNorm after it (`BlipTextAttention`).
struct Attention {
    attention: MultiHeadAttention,
    norm: LayerNorm,
}

impl Attention {
    fn new(cfg: &Config, kv_in: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let attention = AttentionConfig {
            kv_input: kv_in,
            names: ProjectionNames {
                q: "self.query",
                k: "self.key",
                v: "self.value",
                out: "output.dense",
            },
            numerics: BLIP_TEXT_ATTENTION,
            ..AttentionConfig::new(hidden, cfg.num_attention_heads)
        };
        Ok(Self {
            attention: MultiHeadAttention::load(vb.clone(), &attention)?,
            norm: norm::layer_norm(hidden, cfg.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    /// The residual and LayerNorm after an attention output.
    fn close(&self, xs: &Tensor, attended: &Tensor) -> Result<Tensor> {
        (attended + xs)?.apply(&self.norm)
    }
}

struct Layer {
    attention: Attention,
    cross: Attention,
    /// BERT's intermediate.dense -> act -> output.dense.
    mlp: Mlp,
    norm: LayerNorm,
}

impl Layer {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attention: Attention::new(cfg, cfg.hidden_size, vb.pp("attention"))?,
            cross: Attention::new(cfg, cfg.encoder_hidden_size, vb.pp("crossattention"))?,
            mlp: Mlp::load(
                vb.clone(),
                &MlpConfig {
                    fc1: "intermediate.dense",
                    fc2: "output.dense",
                    ..MlpConfig::new(
                        cfg.hidden_size,
                        cfg.intermediate_size,
                        nn::activation::Activation::from_candle(cfg.hidden_act),
                    )
                },
            )?,
            norm: norm::layer_norm(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
        })
    }
}

/// One caption's decoding state: the image's cross-attention keys/values per layer (computed
/// once) and the self-attention keys/values of the tokens read so far.
pub(super) struct DecodeState {
    cross: Vec<(Tensor, Tensor)>,
    past: Vec<KvCache>,
    len: usize,
}

pub(super) struct TextDecoder {
    word: Embedding,
    position: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    head_dense: Linear,
    head_act: Activation,
    head_norm: LayerNorm,
    head: Linear,
    max_positions: usize,
}

impl TextDecoder {
    /// `vb` points at `text_decoder` (holding `bert.*` and `cls.*`).
    pub(super) fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let bert = vb.pp("bert");
        let emb = bert.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, bert.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let pred = vb.pp("cls").pp("predictions");
        let transform = pred.pp("transform");
        let head = Linear::new(
            pred.get((cfg.vocab_size, hidden), "decoder.weight")?,
            Some(pred.get(cfg.vocab_size, "bias")?),
        );
        Ok(Self {
            word: candle_nn::embedding(cfg.vocab_size, hidden, emb.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                cfg.max_position_embeddings,
                hidden,
                emb.pp("position_embeddings"),
            )?,
            embed_norm: norm::layer_norm(hidden, cfg.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
            head_dense: candle_nn::linear(hidden, hidden, transform.pp("dense"))?,
            head_act: cfg.hidden_act,
            head_norm: norm::layer_norm(hidden, cfg.layer_norm_eps, transform.pp("LayerNorm"))?,
            head,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// A fresh state for one image: `image_embeds` (b, n, encoder_hidden) projected to every
    /// layer's cross-attention keys and values.
    pub(super) fn start(&self, image_embeds: &Tensor) -> Result<DecodeState> {
        let cross = self
            .layers
            .iter()
            .map(|l| l.cross.attention.keys_values(image_embeds))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecodeState {
            cross,
            past: vec![KvCache::new(); self.layers.len()],
            len: 0,
        })
    }

    /// Reads `ids` (b, s) after the state's tokens; logits (b, s, vocab) for every new position,
    /// or (b, 1, vocab) for the last one only when `all_positions` is false.
    pub(super) fn forward(
        &self,
        state: &mut DecodeState,
        ids: &Tensor,
        all_positions: bool,
    ) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let past = state.len;
        if past + s > self.max_positions {
            candle_core::bail!(
                "the caption would reach {} tokens; the decoder reads at most {}",
                past + s,
                self.max_positions
            );
        }
        let positions =
            Tensor::arange(past as u32, (past + s) as u32, ids.device())?.unsqueeze(0)?;
        let mut xs = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .apply(&self.embed_norm)?;
        let mask = causal_mask(past, s, xs.dtype(), xs.device())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let attended =
                layer
                    .attention
                    .attention
                    .forward_cached(&xs, &mut state.past[i], mask.as_ref())?;
            xs = layer.attention.close(&xs, &attended)?;
            let (ck, cv) = &state.cross[i];
            let attended = layer.cross.attention.attend(&xs, ck, cv, None)?;
            xs = layer.cross.close(&xs, &attended)?;
            xs = (layer.mlp.forward(&xs)? + &xs)?.apply(&layer.norm)?;
        }
        state.len += s;
        if !all_positions {
            xs = xs.narrow(1, s - 1, 1)?;
        }
        xs.apply(&self.head_dense)?
            .apply(&self.head_act)?
            .apply(&self.head_norm)?
            .apply(&self.head)
    }
}

/// (s, past + s) additive mask hiding later tokens; none for a single new token (it sees all).
fn causal_mask(
    past: usize,
    s: usize,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<Option<Tensor>> {
    if s <= 1 {
        return Ok(None);
    }
    attention::causal_mask(s, past, f32::NEG_INFINITY, device)?
        .to_dtype(dtype)
        .map(Some)
}
