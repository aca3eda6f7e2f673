//! Prompt encoding: token ids -> text embeddings the UNet attends to, for SD 1.x/2.x (one encoder,
//! last hidden state) and SDXL (two encoders, penultimate states concatenated, pooled embedding and
//! size/crop time ids), as diffusers' encode_prompt does.

use candle_core::{DType, Device, Tensor};

use super::tokenizer::ClipTokenizer;
use crate::engines::nn::text::clip::TextEncoder;
use crate::error::Result;

/// One tokenizer + encoder pair (SD has one, SDXL two), and the token length prompts are cut
/// and padded to (the tokenizer's `max_length()` unless `--max-sequence-length` asks less).
pub struct EncoderPair<'a> {
    pub tokenizer: &'a ClipTokenizer,
    pub encoder: &'a TextEncoder,
    pub length: usize,
}

/// What the denoising loop needs from the prompts.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// (1, 77, D) for the prompt (77: the encoder pairs' `length`).
    pub prompt: Tensor,
    /// (1, 77, D) for the negative prompt; None when guidance is off.
    pub negative: Option<Tensor>,
    /// SDXL: (1, P) pooled embeddings of the prompt and negative prompt.
    pub pooled: Option<Tensor>,
    pub negative_pooled: Option<Tensor>,
}

/// The ids as a (1, length) tensor, and how many tokens did not fit.
fn ids_tensor(pair: &EncoderPair<'_>, text: &str, device: &Device) -> Result<(Tensor, usize)> {
    let encoded = pair.tokenizer.encode_to(text, pair.length);
    let ids = Tensor::new(encoded.ids.as_slice(), device)?.unsqueeze(0)?;
    Ok((ids, encoded.truncated_tokens))
}

/// One warning per prompt of a job (SDXL's two tokenizers cut alike), naming the count.
fn warn_dropped(what: &str, pair: &EncoderPair<'_>, dropped: usize) {
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "the {what} is longer than the {} tokens the text encoder reads: its last {dropped} \
             tokens were dropped",
            pair.length.min(pair.tokenizer.max_length())
        );
    }
}

/// SD 1.x / 2.x: the last hidden state of the single encoder.
pub fn encode_sd(
    pair: &EncoderPair<'_>,
    prompt: &str,
    negative: Option<&str>,
    device: &Device,
    dtype: DType,
) -> Result<Conditioning> {
    let encode = |what: &str, text: &str| -> Result<Tensor> {
        let (ids, dropped) = ids_tensor(pair, text, device)?;
        warn_dropped(what, pair, dropped);
        Ok(pair
            .encoder
            .forward(&ids)?
            .last_hidden_state
            .to_dtype(dtype)?)
    };
    let prompt_embeds = encode("prompt", prompt)?;
    let negative_embeds = negative.map(|n| encode("negative prompt", n)).transpose()?;
    Ok(Conditioning {
        prompt: prompt_embeds,
        negative: negative_embeds,
        pooled: None,
        negative_pooled: None,
    })
}

/// SDXL: both encoders' penultimate hidden states concatenated on the feature axis; the pooled
/// (projected) output of the second encoder. An empty negative prompt becomes zeros when the model
/// asks for it (force_zeros_for_empty_prompt), as diffusers does for a missing negative prompt.
pub fn encode_sdxl(
    pairs: [&EncoderPair<'_>; 2],
    prompt: &str,
    negative: Option<&str>,
    force_zeros_for_empty_prompt: bool,
    device: &Device,
    dtype: DType,
) -> Result<Conditioning> {
    let encode = |what: &str, text: &str| -> Result<(Tensor, Tensor)> {
        let mut states = Vec::with_capacity(2);
        let mut pooled = None;
        for (i, pair) in pairs.iter().enumerate() {
            let (ids, dropped) = ids_tensor(pair, text, device)?;
            if i == 0 {
                warn_dropped(what, pair, dropped);
            }
            let out = pair.encoder.forward(&ids)?;
            states.push(out.penultimate.to_dtype(dtype)?);
            pooled = Some(out.pooled.to_dtype(dtype)?);
        }
        let pooled =
            pooled.ok_or_else(|| crate::Error::job_failed("SDXL needs two text encoders"))?;
        Ok((Tensor::cat(&states, 2)?, pooled))
    };
    let (prompt_embeds, pooled) = encode("prompt", prompt)?;
    let (negative_embeds, negative_pooled) = match negative {
        None => (None, None),
        Some(text) if text.is_empty() && force_zeros_for_empty_prompt => (
            Some(prompt_embeds.zeros_like()?),
            Some(pooled.zeros_like()?),
        ),
        Some(text) => {
            let (e, p) = encode("negative prompt", text)?;
            (Some(e), Some(p))
        }
    };
    Ok(Conditioning {
        prompt: prompt_embeds,
        negative: negative_embeds,
        pooled: Some(pooled),
        negative_pooled,
    })
}

/// SDXL's micro-conditioning: original size, crop top-left, target size, as (1, 6).
pub fn sdxl_time_ids(height: u32, width: u32, device: &Device, dtype: DType) -> Result<Tensor> {
    let v = [height, width, 0, 0, height, width].map(|x| x as f32);
    Ok(Tensor::new(&v, device)?.unsqueeze(0)?.to_dtype(dtype)?)
}

impl Conditioning {
    /// The encoder hidden states for a batch of `n` images: [negative x n, prompt x n] with guidance,
    /// else [prompt x n], matching the order diffusers concatenates them in.
    pub fn hidden_states(&self, n: usize) -> Result<Tensor> {
        let pos = self.prompt.repeat((n, 1, 1))?;
        Ok(match &self.negative {
            Some(neg) => Tensor::cat(&[&neg.repeat((n, 1, 1))?, &pos], 0)?,
            None => pos,
        })
    }

    /// SDXL pooled embeddings, batched like `hidden_states`.
    pub fn pooled_batch(&self, n: usize) -> Result<Option<Tensor>> {
        let Some(pooled) = &self.pooled else {
            return Ok(None);
        };
        let pos = pooled.repeat((n, 1))?;
        Ok(Some(match &self.negative_pooled {
            Some(neg) => Tensor::cat(&[&neg.repeat((n, 1))?, &pos], 0)?,
            None => pos,
        }))
    }
}
