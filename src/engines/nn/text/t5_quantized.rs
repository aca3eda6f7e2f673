//! T5's encoder over a GGUF kept quantized: each linear layer's weight stays as stored (Q8_0 for
//! city96's t5-v1_1-xxl-encoder files: 5 GB instead of 19 in f32) and is dequantized for its one
//! matmul, then dropped. The arithmetic is transformers' T5EncoderModel (what `t5::T5Encoder`
//! runs through candle_transformers for dense weights): RMS layer norms in f32, unscaled attention
//! plus a bucketed relative-position bias shared by all layers (UMT5, `load_umt5`: each layer's
//! own), the gated-GELU (tanh) feed-forward. Names are llama.cpp's (`enc.blk.N.attn_q.weight`,
//! ...).

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{D, DType, Device, Tensor};

use super::t5::T5Config;
use crate::engines::nn::weights::gguf::GgufFile;
use crate::error::{Error, Result};

/// A linear layer without bias whose weight (out, in) is dequantized for each call.
#[derive(Debug)]
struct QLinear {
    weight: Arc<QTensor>,
}

impl QLinear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.weight.dequantize(xs.device())?.to_dtype(xs.dtype())?;
        xs.broadcast_matmul(&w.t()?)
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    o: QLinear,
    ffn_norm: Tensor,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// A T5 encoder whose weights stay quantized in memory.
#[derive(Debug)]
pub struct QuantizedT5Encoder {
    config: T5Config,
    /// (vocab, d_model) in f32, dequantized once (looked up, never multiplied).
    embedding: Tensor,
    /// (buckets, heads) in f32: one shared by every layer (T5), or one per layer (UMT5).
    relative_bias: Vec<Tensor>,
    layers: Vec<Layer>,
    final_norm: Tensor,
    dtype: DType,
    device: Device,
}

impl QuantizedT5Encoder {
    /// Loads `path` (a llama.cpp-named T5 encoder GGUF) for `config`, computing in `dtype` (f32
    /// or bf16: T5 overflows f16). Every tensor is checked against the config's shapes.
    pub fn load(path: &Path, config: &T5Config, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(path, config, device, dtype, false)
    }

    /// [`Self::load`] for a UMT5 encoder GGUF (city96's umt5-xxl-encoder files: the T5 names,
    /// with `enc.blk.N.attn_rel_b.weight` in every block). A T5 GGUF (one bias) is refused
    /// naming the missing tensor.
    pub fn load_umt5(
        path: &Path,
        config: &T5Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        Self::load_with(path, config, device, dtype, true)
    }

    fn load_with(
        path: &Path,
        config: &T5Config,
        device: &Device,
        dtype: DType,
        per_layer_bias: bool,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_t5_gguf", path = %path.display()).entered();
        let file = GgufFile::open(path)?;
        file.expect_architecture("t5encoder")?;
        file.check_supported()?;
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        let (d, ff, heads) = (config.d_model, config.d_ff, config.num_heads);
        let inner = config.d_kv * heads;
        let shape_of = |name: &str| -> Result<Vec<usize>> { Ok(file.tensor(name)?.shape.clone()) };
        let expect = |name: &str, want: &[usize]| -> Result<()> {
            let got = shape_of(name)?;
            if got != want {
                return Err(bad(format!(
                    "{name} is {got:?}, the encoder's config.json says {want:?}; \
                     the GGUF is another T5"
                )));
            }
            Ok(())
        };
        let quantized = |name: &str, want: [usize; 2]| -> Result<QLinear> {
            expect(name, &want)?;
            Ok(QLinear {
                weight: Arc::new(file.qtensor(name, device)?),
            })
        };
        let vector = |name: &str, len: usize| -> Result<Tensor> {
            expect(name, &[len])?;
            file.load(name, DType::F32, device)
        };
        expect("token_embd.weight", &[config.vocab_size, d])?;
        let embedding = file.load("token_embd.weight", DType::F32, device)?;
        let buckets = config.relative_attention_num_buckets;
        let bias_layers = if per_layer_bias { config.num_layers } else { 1 };
        let relative_bias = (0..bias_layers)
            .map(|i| {
                let name = format!("enc.blk.{i}.attn_rel_b.weight");
                expect(&name, &[buckets, heads])?;
                file.load(&name, DType::F32, device)
            })
            .collect::<Result<Vec<_>>>()?;
        if !config.feed_forward_proj.gated {
            return Err(bad(
                "a T5 without the gated feed-forward (v1.0); FLUX's T5 is v1.1 (gated-gelu)".into(),
            ));
        }
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let n = |s: &str| format!("enc.blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector(&n("attn_norm"), d)?,
                q: quantized(&n("attn_q"), [inner, d])?,
                k: quantized(&n("attn_k"), [inner, d])?,
                v: quantized(&n("attn_v"), [inner, d])?,
                o: quantized(&n("attn_o"), [d, inner])?,
                ffn_norm: vector(&n("ffn_norm"), d)?,
                gate: quantized(&n("ffn_gate"), [ff, d])?,
                up: quantized(&n("ffn_up"), [ff, d])?,
                down: quantized(&n("ffn_down"), [d, ff])?,
            });
        }
        if file.contains(&format!("enc.blk.{}.attn_q.weight", config.num_layers)) {
            return Err(bad(format!(
                "it has more than the config's {} blocks; the GGUF is another T5",
                config.num_layers
            )));
        }
        Ok(Self {
            config: config.clone(),
            embedding,
            relative_bias,
            layers,
            final_norm: vector("enc.output_norm.weight", d)?,
            dtype,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes the quantized weights hold.
    pub fn stored_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down])
            .map(|q| q.weight.storage_size_in_bytes())
            .sum()
    }

    /// transformers' bidirectional relative position buckets for `len` tokens: (len, len) ids.
    fn buckets(&self, len: usize) -> Vec<u32> {
        let half = self.config.relative_attention_num_buckets / 2;
        let max_exact = half / 2;
        let max_distance = self.config.relative_attention_max_distance;
        let mut out = Vec::with_capacity(len * len);
        for q in 0..len {
            for k in 0..len {
                let (offset, n) = if k > q { (half, k - q) } else { (0, q - k) };
                let bucket = if n < max_exact {
                    n
                } else {
                    let scaled = ((n as f32 / max_exact as f32).ln()
                        / (max_distance as f32 / max_exact as f32).ln()
                        * (half - max_exact) as f32) as usize;
                    (max_exact + scaled).min(half - 1)
                };
                out.push((offset + bucket) as u32);
            }
        }
        out
    }

    /// T5's RMS norm: in f32, x / sqrt(mean(x^2) + eps), then the weight, in `dtype`.
    fn norm(&self, xs: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
        let x = xs.to_dtype(DType::F32)?;
        let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x.broadcast_mul(
            &(variance + self.config.layer_norm_epsilon)?
                .sqrt()?
                .recip()?,
        )?;
        normed.broadcast_mul(weight)?.to_dtype(self.dtype)
    }

    /// The last hidden state of `ids` (no padding mask, as FLUX encodes): (1, len, d_model) in
    /// `dtype()`.
    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        super::t5::check_ids(ids, self.config.vocab_size)?;
        let len = ids.len();
        let (heads, d_kv) = (self.config.num_heads, self.config.d_kv);
        let index = Tensor::new(ids, &self.device)?;
        let mut hidden = self
            .embedding
            .index_select(&index, 0)?
            .to_dtype(self.dtype)?
            .unsqueeze(0)?;
        let buckets = Tensor::from_vec(self.buckets(len), len * len, &self.device)?;
        // (1, heads, len, len) in f32, per layer (or one for all).
        let biases = self
            .relative_bias
            .iter()
            .map(|table| {
                table
                    .index_select(&buckets, 0)?
                    .reshape((len, len, heads))?
                    .permute((2, 0, 1))?
                    .unsqueeze(0)?
                    .contiguous()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((1, len, heads, d_kv))?
                .transpose(1, 2)?
                .contiguous()
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let bias = &biases[i.min(biases.len() - 1)];
            let normed = self.norm(&hidden, &layer.attn_norm)?;
            let q = split(layer.q.forward(&normed)?)?;
            let k = split(layer.k.forward(&normed)?)?;
            let v = split(layer.v.forward(&normed)?)?;
            // T5 does not scale its scores; softmax in f32 as transformers does.
            let scores = (q.matmul(&k.t()?)?.to_dtype(DType::F32)? + bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(self.dtype)?;
            let attn = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((1, len, heads * d_kv))?;
            hidden = (hidden + layer.o.forward(&attn)?)?;
            let normed = self.norm(&hidden, &layer.ffn_norm)?;
            // The config's activation (FLUX's T5 v1.1: gelu_new, the tanh approximation).
            let gated = layer
                .gate
                .forward(&normed)?
                .apply(&self.config.feed_forward_proj.activation)?;
            let ff = (gated * layer.up.forward(&normed)?)?;
            hidden = (hidden + layer.down.forward(&ff)?)?;
        }
        Ok(self.norm(&hidden, &self.final_norm)?)
    }
}
