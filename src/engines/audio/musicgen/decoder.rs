//! The MusicGen decoder (transformers' `MusicgenForCausalLM`): summed per-codebook embeddings,
//! sinusoidal positions, pre-norm layers with causal self-attention and cross-attention to the
//! (projected) text states, a final layer norm and one lm_head per codebook.
//!
//! The attention blocks and the kv-cache are the shared `nn::attention` ones, the MLP and norms nn's; the caches live in
//! a `DecoderState` made per generation, so the model itself stays `&self` and can be shared
//! behind an `Arc`.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::config::DecoderConfig;
use crate::engines::nn::activation::Activation;
use crate::engines::nn::attention::{
    self, AttentionConfig, KvCache, MultiHeadAttention, Numerics, Precision, ProjectionBias,
    ScaleAt,
};
use crate::engines::nn::mlp::{Mlp, MlpConfig};
use crate::engines::nn::norm;

/// nn.LayerNorm's default epsilon, which MusicGen's decoder uses throughout.
const LN_EPS: f64 = norm::TORCH_NORM_EPS;

/// transformers' MusicgenAttention: the scale on the scores, the softmax in f32 (half-precision
/// scores lose too much in the exponent).
const MUSICGEN_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Scores,
    precision: Precision::SoftmaxF32,
    contiguous_keys: true,
    split_heads_above: None,
};

fn attention(cfg: &DecoderConfig, vb: VarBuilder) -> Result<MultiHeadAttention> {
    let attn = AttentionConfig {
        bias: ProjectionBias::NONE,
        numerics: MUSICGEN_ATTENTION,
        ..AttentionConfig::new(cfg.hidden_size, cfg.num_attention_heads)
    };
    MultiHeadAttention::load(vb, &attn)
}

struct Layer {
    self_attn: MultiHeadAttention,
    self_attn_norm: LayerNorm,
    cross_attn: MultiHeadAttention,
    cross_attn_norm: LayerNorm,
    mlp: Mlp,
    final_norm: LayerNorm,
}

impl Layer {
    fn load(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            self_attn: attention(cfg, vb.pp("self_attn"))?,
            self_attn_norm: norm::layer_norm(d, LN_EPS, vb.pp("self_attn_layer_norm"))?,
            cross_attn: attention(cfg, vb.pp("encoder_attn"))?,
            cross_attn_norm: norm::layer_norm(d, LN_EPS, vb.pp("encoder_attn_layer_norm"))?,
            // MusicGen's activation is "gelu" (the config check refuses others), no biases.
            mlp: Mlp::load(
                vb.clone(),
                &MlpConfig {
                    bias: false,
                    ..MlpConfig::new(d, cfg.ffn_dim, Activation::GeluErf)
                },
            )?,
            final_norm: norm::layer_norm(d, LN_EPS, vb.pp("final_layer_norm"))?,
        })
    }
}

/// One generation's caches: self-attention keys/values so far and the cross-attention
/// keys/values of the text states (computed once).
pub struct DecoderState {
    self_kv: Vec<KvCache>,
    cross_kv: Vec<(Tensor, Tensor)>,
    /// Positions already in the cache.
    offset: usize,
}

pub struct Decoder {
    embed_tokens: Vec<Embedding>,
    layers: Vec<Layer>,
    layer_norm: LayerNorm,
    lm_heads: Vec<Linear>,
    hidden: usize,
    num_codebooks: usize,
    dtype: DType,
    device: Device,
}

impl Decoder {
    /// `vb` at the checkpoint's `decoder` prefix.
    pub fn load(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let base = vb.pp("model").pp("decoder");
        // vocab_size + 1 rows: the extra one is the pad / start token.
        let embed_tokens = (0..cfg.num_codebooks)
            .map(|i| candle_nn::embedding(cfg.vocab_size + 1, d, base.pp("embed_tokens").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(cfg, base.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let layer_norm = norm::layer_norm(d, LN_EPS, base.pp("layer_norm"))?;
        let lm_heads = (0..cfg.num_codebooks)
            .map(|i| candle_nn::linear_no_bias(d, cfg.vocab_size, vb.pp("lm_heads").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            layer_norm,
            lm_heads,
            hidden: d,
            num_codebooks: cfg.num_codebooks,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Starts a generation against `encoder_states` (b, s, hidden), already projected.
    pub fn start(&self, encoder_states: &Tensor) -> Result<DecoderState> {
        let enc = encoder_states.to_dtype(self.dtype)?;
        let cross_kv = self
            .layers
            .iter()
            .map(|l| l.cross_attn.keys_values(&enc))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            self_kv: vec![KvCache::new(); self.layers.len()],
            cross_kv,
            offset: 0,
        })
    }

    /// Feeds codes (b, num_codebooks, t) and returns f32 logits (b, num_codebooks, t, vocab).
    pub fn forward(&self, codes: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        let (_b, k, t) = codes.dims3()?;
        if k != self.num_codebooks {
            candle_core::bail!("expected {} codebooks, got {k}", self.num_codebooks);
        }
        let mut xs = self.embed_tokens[0].forward(&codes.narrow(1, 0, 1)?.squeeze(1)?)?;
        for (i, emb) in self.embed_tokens.iter().enumerate().skip(1) {
            xs = (xs + emb.forward(&codes.narrow(1, i, 1)?.squeeze(1)?)?)?;
        }
        let pos = sinusoidal(state.offset, t, self.hidden, &self.device)?.to_dtype(self.dtype)?;
        xs = xs.broadcast_add(&pos)?;
        let mask = causal_mask(t, state.offset, &self.device)?.map(|m| m.to_dtype(self.dtype));
        let mask = mask.transpose()?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_attn_norm.forward(&xs)?;
            let attended =
                layer
                    .self_attn
                    .forward_cached(&h, &mut state.self_kv[i], mask.as_ref())?;
            xs = (&xs + attended)?;

            let h = layer.cross_attn_norm.forward(&xs)?;
            let (ck, cv) = &state.cross_kv[i];
            xs = (&xs + layer.cross_attn.attend(&h, ck, cv, None)?)?;

            let h = layer.final_norm.forward(&xs)?;
            let h = layer.mlp.forward(&h)?;
            xs = (&xs + h)?;
        }
        state.offset += t;
        let xs = self.layer_norm.forward(&xs)?;
        let logits = self
            .lm_heads
            .iter()
            .map(|head| head.forward(&xs))
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&logits, 1)?.to_dtype(DType::F32)
    }
}

/// transformers' `MusicgenSinusoidalPositionalEmbedding` rows `offset..offset + len`:
/// [cos | sin] halves (in that order), frequencies exp(-i * ln(10000) / (half - 1)), in f32.
pub fn sinusoidal(offset: usize, len: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let step = (10000f32).ln() / (half.saturating_sub(1).max(1)) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| (i as f32 * -step).exp()).collect();
    let mut data = Vec::with_capacity(len * dim);
    for p in offset..offset + len {
        let angles: Vec<f32> = freqs.iter().map(|f| p as f32 * f).collect();
        data.extend(angles.iter().map(|a| a.cos()));
        data.extend(angles.iter().map(|a| a.sin()));
        if dim % 2 == 1 {
            data.push(0.0);
        }
    }
    Tensor::from_vec(data, (len, dim), device)
}

/// Additive causal mask (1, 1, t, offset + t) for t > 1 new positions; None for one step.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if t <= 1 {
        return Ok(None);
    }
    let mask = attention::causal_mask(t, offset, f32::NEG_INFINITY, device)?;
    Ok(Some(mask.unsqueeze(0)?.unsqueeze(0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_rows_start_with_cos_then_sin() {
        let pos = sinusoidal(0, 3, 6, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = pos.to_vec2().unwrap();
        assert_eq!(rows[0], vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        // half = 3, step = ln(10000) / 2: frequencies 1, 0.01, 0.0001.
        assert!((rows[2][0] - 2f32.cos()).abs() < 1e-6);
        assert!((rows[2][4] - 0.02f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn causal_mask_hides_the_future_only() {
        assert!(causal_mask(1, 5, &Device::Cpu).unwrap().is_none());
        let m = causal_mask(2, 1, &Device::Cpu).unwrap().unwrap();
        let rows: Vec<Vec<f32>> = m.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(rows[0][..2], [0.0, 0.0]);
        assert!(rows[0][2].is_infinite());
        assert_eq!(rows[1], vec![0.0, 0.0, 0.0]);
    }
}
