//! The Parler-TTS decoder (parler_tts's `ParlerTTSForCausalLM`, v1 options: sinusoidal positions,
//! no embedding scale, one LM head per codebook), with the same weight names as candle's
//! `parler_tts::Decoder`. Ours because candle's recomputes the cross-attention keys and values
//! from the description at every step, which costs more than the rest of a step for the real
//! models; here they are projected once per generation and kept in [`DecoderState`].

use candle_core::{D, IndexOp, Module, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, Linear, VarBuilder, linear_no_bias};
use candle_transformers::models::parler_tts::DecoderConfig;
use candle_transformers::utils::repeat_kv;

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(
        hidden: usize,
        heads: usize,
        kv_heads: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let head_dim = hidden / heads;
        Ok(Self {
            q: linear_no_bias(hidden, hidden, vb.pp("q_proj"))?,
            k: linear_no_bias(hidden, kv_heads * head_dim, vb.pp("k_proj"))?,
            v: linear_no_bias(hidden, kv_heads * head_dim, vb.pp("v_proj"))?,
            out: linear_no_bias(hidden, hidden, vb.pp("out_proj"))?,
            heads,
            kv_heads,
            head_dim,
        })
    }

    /// Keys and values of `xs`: each (batch, kv_heads, len, head_dim).
    fn keys_values(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, len, _) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, len, self.kv_heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok((split(self.k.forward(xs)?)?, split(self.v.forward(xs)?)?))
    }

    fn attend(
        &self,
        xs: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, len, hidden) = xs.dims3()?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = (self.q.forward(xs)? * scale)?
            .reshape((b, len, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?;
        let groups = self.heads / self.kv_heads;
        let keys = repeat_kv(keys.clone(), groups)?.contiguous()?;
        let values = repeat_kv(values.clone(), groups)?.contiguous()?;
        let mut weights = q.matmul(&keys.t()?)?;
        if let Some(mask) = mask {
            weights = weights.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&weights)?;
        weights
            .matmul(&values)?
            .transpose(1, 2)?
            .reshape((b, len, hidden))?
            .apply(&self.out)
    }
}

struct Layer {
    self_attn: Attention,
    self_norm: LayerNorm,
    cross_attn: Attention,
    cross_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_norm: LayerNorm,
    activation: Activation,
}

/// Per-generation caches: self-attention keys/values so far, cross-attention ones fixed.
pub struct DecoderState {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
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
        let norm = |vb: VarBuilder| candle_nn::layer_norm(h, 1e-5, vb);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = d.pp("layers").pp(i);
            layers.push(Layer {
                self_attn: Attention::new(h, cfg.num_attention_heads, kv_heads, l.pp("self_attn"))?,
                self_norm: norm(l.pp("self_attn_layer_norm"))?,
                cross_attn: Attention::new(
                    h,
                    cfg.num_attention_heads,
                    cross_kv_heads,
                    l.pp("encoder_attn"),
                )?,
                cross_norm: norm(l.pp("encoder_attn_layer_norm"))?,
                fc1: linear_no_bias(h, cfg.ffn_dim, l.pp("fc1"))?,
                fc2: linear_no_bias(cfg.ffn_dim, h, l.pp("fc2"))?,
                final_norm: norm(l.pp("final_layer_norm"))?,
                activation: cfg.activation_function,
            });
        }
        let lm_heads = (0..cfg.num_codebooks)
            .map(|i| linear_no_bias(h, cfg.vocab_size, vb.pp("lm_heads").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            positions,
            layers,
            norm: norm(d.pp("layer_norm"))?,
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
            self_kv: vec![None; self.layers.len()],
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
            let (k, v) = layer.self_attn.keys_values(&normed)?;
            let (k, v) = match cache.take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            let attended = layer.self_attn.attend(&normed, &k, &v, mask)?;
            *cache = Some((k, v));
            xs = (xs + attended)?;
            let normed = layer.cross_norm.forward(&xs)?;
            xs = (&xs + layer.cross_attn.attend(&normed, ck, cv, None)?)?;
            let ff = layer
                .final_norm
                .forward(&xs)?
                .apply(&layer.fc1)?
                .apply(&layer.activation)?
                .apply(&layer.fc2)?;
            xs = (xs + ff)?;
        }
        let xs = self.norm.forward(&xs)?;
        debug_assert_eq!(xs.dim(D::Minus1)?, self.hidden);
        self.lm_heads.iter().map(|head| head.forward(&xs)).collect()
    }
}
