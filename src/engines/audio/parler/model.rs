//! The networks of a Parler-TTS checkpoint: T5 text encoder (the voice description), prompt
//! embedding (the text to speak), decoder over codec tokens, DAC codec. The T5 encoder is
//! nn::text::t5's. The decoder's caches live in a per-generation [`DecoderState`].

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Embedding, Linear, Module};

use super::codec::DacDecoder;
use super::config::ParlerConfig;
use super::decoder::{Decoder, DecoderState};
use crate::engines::nn::text::t5::T5Encoder;
use crate::engines::nn::weights::Weights;
use crate::error::Result;

pub struct Networks {
    pub text_encoder: T5Encoder,
    pub enc_to_dec_proj: Option<Linear>,
    pub embed_prompts: Embedding,
    pub decoder: Decoder,
    pub codec: DacDecoder,
    pub num_codebooks: usize,
    pub dtype: DType,
    pub device: Device,
}

impl Networks {
    pub fn load(
        cfg: &ParlerConfig,
        weights: &Weights,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        // In f16 runs T5 is kept in f32 (it overflows f16; it runs once per utterance).
        let text_encoder = weights.build("T5 text encoder", |vb| {
            T5Encoder::new(vb.pp("text_encoder"), &cfg.text_encoder)
        })?;
        let hidden = cfg.decoder.hidden_size;
        // parler_tts adds the projection only when the encoder and decoder widths differ.
        let enc_to_dec_proj = if cfg.text_encoder.d_model != hidden {
            Some(weights.build("encoder projection", |vb| {
                candle_nn::linear(cfg.text_encoder.d_model, hidden, vb.pp("enc_to_dec_proj"))
            })?)
        } else {
            None
        };
        let embed_prompts = weights.build("prompt embedding", |vb| {
            candle_nn::embedding(cfg.prompt_vocab, hidden, vb.pp("embed_prompts"))
        })?;
        let decoder =
            weights.build("decoder", |vb| Decoder::new(&cfg.decoder, vb.pp("decoder")))?;
        let codec = weights.build("DAC codec", |vb| {
            DacDecoder::new(&cfg.codec, vb.pp("audio_encoder").pp("model"))
        })?;
        Ok(Self {
            text_encoder,
            enc_to_dec_proj,
            embed_prompts,
            decoder,
            codec,
            num_codebooks: cfg.decoder.num_codebooks,
            dtype,
            device: device.clone(),
        })
    }

    /// T5's last hidden state for the description ids: (1, len, d_model).
    pub fn encode_description(&self, ids: &[u32]) -> Result<Tensor> {
        self.text_encoder.encode(ids)
    }

    /// What the decoder cross-attends to: the encoder output, projected to the decoder width.
    pub fn cross_states(&self, encoded: &Tensor) -> Result<Tensor> {
        let encoded = encoded.to_dtype(self.dtype)?;
        Ok(match &self.enc_to_dec_proj {
            Some(proj) => proj.forward(&encoded)?,
            None => encoded,
        })
    }

    /// The text to speak, embedded: (1, len, hidden); prepended to the decoder's inputs.
    pub fn embed_prompt(&self, ids: &[u32]) -> Result<Tensor> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self.embed_prompts.forward(&input)?)
    }

    /// Caches for one generation cross-attending to `cross` (see [`Self::cross_states`]).
    pub fn start(&self, cross: &Tensor) -> Result<DecoderState> {
        Ok(self.decoder.start(cross)?)
    }

    /// Feeds `columns` (codebooks x len, already delay-masked) at decoder position `pos`; the
    /// prompt goes in front on the first call (`pos == 0`). Returns the logits of the last
    /// position, one row per codebook, as f32 on the CPU.
    pub fn step(
        &self,
        state: &mut DecoderState,
        prompt: &Tensor,
        pos: usize,
        columns: &[Vec<u32>],
    ) -> Result<Vec<Vec<f32>>> {
        let logits = self.forward(state, prompt, pos, columns)?;
        let mut last = Vec::with_capacity(logits.len());
        for l in &logits {
            last.push(l.i((0, l.dim(1)? - 1))?);
        }
        // One device-to-host copy a step, not one per codebook.
        Ok(Tensor::stack(&last, 0)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?)
    }

    /// Logits of every fed position: per codebook, (1, len, vocab) (prompt positions dropped).
    pub fn forward(
        &self,
        state: &mut DecoderState,
        prompt: &Tensor,
        pos: usize,
        columns: &[Vec<u32>],
    ) -> Result<Vec<Tensor>> {
        let len = columns.first().map_or(0, Vec::len);
        let flat: Vec<u32> = columns.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (1, columns.len(), len), &self.device)?;
        let (prompt_states, offset, prompt_len) = if pos == 0 {
            (Some(prompt), 0, prompt.dim(1)?)
        } else {
            // Positions count the prompt, which sits in the cache before the codec tokens.
            (None, pos + prompt.dim(1)?, 0)
        };
        let q_len = prompt_len + len;
        // Causal over prompt and tokens (parler_tts concatenates them before its causal mask);
        // a single new position may see the whole cache, so it needs none.
        let mask = if q_len > 1 {
            let kv_len = offset + q_len;
            let data: Vec<f32> = (0..q_len)
                .flat_map(|i| {
                    (0..kv_len).map(move |j| {
                        if j > i + offset {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(data, (q_len, kv_len), &self.device)?.to_dtype(self.dtype)?)
        } else {
            None
        };
        let logits = self
            .decoder
            .forward(state, &ids, prompt_states, mask.as_ref(), offset)?;
        logits
            .into_iter()
            .map(|l| Ok(l.narrow(1, prompt_len, len)?))
            .collect()
    }
}
