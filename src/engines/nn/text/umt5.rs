//! The UMT5 encoder (transformers' UMT5EncoderModel; Wan's `text_encoder/`). The same network as
//! T5 v1.1 (`t5.rs`: RMS layer norms, gated-GELU feed-forward, unscaled attention with a learned
//! relative position bias) except that every layer has its own relative attention bias, where
//! T5 shares the first layer's. candle_transformers' T5 cannot load that, so the arithmetic is
//! ours here; the config (`T5Config`, its defaults and checks) and the id checks are `t5.rs`'s.

use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::t5::{T5Config, check_ids};
use crate::engines::EngineSwitches;
use crate::engines::nn::activation::Activation;
use crate::engines::nn::weights::Weights;
use crate::error::Result;

/// T5's relative position bucket of `memory - query` for an encoder (bidirectional), as
/// transformers' `_relative_position_bucket`: half the buckets per direction, half of those exact
/// distances, the rest logarithmic up to `max_distance` (the log taken in f32, as torch does).
pub fn relative_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> u32 {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative > 0 { half } else { 0 };
    let distance = relative.abs();
    let max_exact = half / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        let ratio = (distance as f32 / max_exact as f32).ln()
            / (max_distance as f64 / max_exact as f64).ln() as f32;
        let large = max_exact + (ratio * (half - max_exact) as f32) as i64;
        bucket += large.min(half - 1);
    }
    bucket as u32
}

/// (len * len) bucket indices, query-major.
fn bucket_indices(len: usize, c: &T5Config, device: &Device) -> candle_core::Result<Tensor> {
    let mut ids = Vec::with_capacity(len * len);
    for q in 0..len as i64 {
        for k in 0..len as i64 {
            ids.push(relative_bucket(
                k - q,
                c.relative_attention_num_buckets,
                c.relative_attention_max_distance,
            ));
        }
    }
    Tensor::from_vec(ids, len * len, device)
}

/// RMS norm without mean removal, its statistics in f32 (transformers' UMT5LayerNorm).
fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let x = xs.to_dtype(DType::F32)?;
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(weight.dtype())?
        .broadcast_mul(weight)
}

#[derive(Debug, Clone)]
struct Layer {
    norm_attn: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// (num_buckets, heads).
    bias: Embedding,
    norm_ff: Tensor,
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, c: &T5Config) -> candle_core::Result<Self> {
        let inner = c.num_heads * c.d_kv;
        let attn = vb.pp("layer.0");
        let sa = attn.pp("SelfAttention");
        let ff = vb.pp("layer.1");
        let dense = ff.pp("DenseReluDense");
        let lin = |vb: VarBuilder, i, o| candle_nn::linear_no_bias(i, o, vb);
        let gated = c.feed_forward_proj.gated;
        Ok(Self {
            norm_attn: attn.get(c.d_model, "layer_norm.weight")?,
            q: lin(sa.pp("q"), c.d_model, inner)?,
            k: lin(sa.pp("k"), c.d_model, inner)?,
            v: lin(sa.pp("v"), c.d_model, inner)?,
            o: lin(sa.pp("o"), inner, c.d_model)?,
            bias: candle_nn::embedding(
                c.relative_attention_num_buckets,
                c.num_heads,
                sa.pp("relative_attention_bias"),
            )?,
            norm_ff: ff.get(c.d_model, "layer_norm.weight")?,
            wi_0: lin(
                dense.pp(if gated { "wi_0" } else { "wi" }),
                c.d_model,
                c.d_ff,
            )?,
            wi_1: if gated {
                Some(lin(dense.pp("wi_1"), c.d_model, c.d_ff)?)
            } else {
                None
            },
            wo: lin(dense.pp("wo"), c.d_ff, c.d_model)?,
        })
    }

    /// One layer over `x` (1, len, d_model); `buckets` from [`bucket_indices`].
    fn forward(&self, x: &Tensor, buckets: &Tensor, c: &T5Config) -> candle_core::Result<Tensor> {
        let (b, len, _) = x.dims3()?;
        let (h, d) = (c.num_heads, c.d_kv);
        let eps = c.layer_norm_epsilon;
        let normed = rms_norm(x, &self.norm_attn, eps)?;
        let heads = |t: Tensor| t.reshape((b, len, h, d))?.transpose(1, 2)?.contiguous();
        let q = heads(self.q.forward(&normed)?)?;
        let k = heads(self.k.forward(&normed)?)?;
        let v = heads(self.v.forward(&normed)?)?;
        // (len*len, heads) -> (1, heads, len, len)
        let bias = self
            .bias
            .forward(buckets)?
            .reshape((len, len, h))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let scores = q
            .matmul(&k.t()?)?
            .broadcast_add(&bias.to_dtype(q.dtype())?)?;
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        let attn = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, len, h * d))?;
        let x = (x + self.o.forward(&attn)?)?;
        let normed = rms_norm(&x, &self.norm_ff, eps)?;
        let act = Activation::from_candle(c.feed_forward_proj.activation);
        let mut hidden = act.apply(&self.wi_0.forward(&normed)?)?;
        if let Some(wi_1) = &self.wi_1 {
            hidden = (hidden * wi_1.forward(&normed)?)?;
        }
        x + self.wo.forward(&hidden)?
    }
}

/// A loaded UMT5 encoder.
#[derive(Debug, Clone)]
pub struct Umt5Encoder {
    embed: Embedding,
    layers: Vec<Layer>,
    final_norm: Tensor,
    config: T5Config,
    dtype: DType,
    device: Device,
}

impl Umt5Encoder {
    /// Loads a transformers folder (`dir`: config.json + model.safetensors, sharded or not; Wan's
    /// `text_encoder/`), weights asked for in `dtype` (f16 computes in f32). A bad config or
    /// missing tensor is bad input naming the file.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_umt5", dir = %dir.display()).entered();
        let config = super::t5::load_config(&dir.join("config.json"))?;
        let dtype = super::t5::T5Encoder::dtype_for(dtype);
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        weights.build("UMT5 text encoder", |vb| Self::new(vb, &config))
    }

    /// Builds the encoder from `vb` rooted at the model's names (`shared` or
    /// `encoder.embed_tokens`, `encoder.block.N...`, `encoder.final_layer_norm`), in
    /// `T5Encoder::dtype_for(vb.dtype())` (f16 widened to f32: T5's activations overflow it).
    pub fn new(vb: VarBuilder, config: &T5Config) -> candle_core::Result<Self> {
        let dtype = super::t5::T5Encoder::dtype_for(vb.dtype());
        let vb = vb.set_dtype(dtype);
        let c = config;
        let embed_vb = if vb.contains_tensor("shared.weight") {
            vb.pp("shared")
        } else {
            vb.pp("encoder.embed_tokens")
        };
        let embed = candle_nn::embedding(c.vocab_size, c.d_model, embed_vb)?;
        let enc = vb.pp("encoder");
        let layers = (0..c.num_layers)
            .map(|i| Layer::load(enc.pp(format!("block.{i}")), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_norm = enc.get(c.d_model, "final_layer_norm.weight")?;
        Ok(Self {
            embed,
            layers,
            final_norm,
            config: config.clone(),
            dtype,
            device: vb.device().clone(),
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
        let c = &self.config;
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let buckets = bucket_indices(ids.len(), c, &self.device)?;
        let mut x = self.embed.forward(&input)?;
        for layer in &self.layers {
            x = layer.forward(&x, &buckets, c)?;
        }
        Ok(rms_norm(&x, &self.final_norm, c.layer_norm_epsilon)?)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_follow_transformers() {
        // transformers' UMT5Attention._relative_position_bucket(arange(-20, 21)), 8 buckets,
        // max_distance 12, and (arange(-200, 201, 7)) with Wan's 32 buckets, max_distance 128.
        let got: Vec<u32> = (-20..=20).map(|r| relative_bucket(r, 8, 12)).collect();
        let mut want = vec![3; 16];
        want.extend([2, 2, 2, 1, 0, 5, 6, 6, 6]);
        want.extend([7; 16]);
        assert_eq!(got, want);
        let got: Vec<u32> = (-200..=200)
            .step_by(7)
            .map(|r| relative_bucket(r, 32, 128))
            .collect();
        let mut want = vec![15; 16];
        want.extend([
            14, 14, 14, 14, 13, 13, 13, 12, 12, 11, 10, 8, 4, 19, 24, 26, 27, 27,
        ]);
        want.extend([28, 28, 29, 29, 30, 30, 30, 30]);
        want.extend([31; 16]);
        assert_eq!(got, want);
    }
}
