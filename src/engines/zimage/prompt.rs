//! Z-Image's prompt conditioning, as ZImagePipeline._encode_prompt: the prompt in Qwen3's chat
//! template (one user message, generation prompt, thinking on), padded to max_sequence_length
//! with its attention mask, through the Qwen3 encoder; `hidden_states[-2]` at the real tokens
//! only, so each prompt gives (real tokens, hidden) rows.
//!
//! The encoder is causal and the real tokens come first when the tokenizer pads on the right
//! (Qwen3's does), so they never see the padding: the real tokens alone give the same states and
//! cost a fraction of a 512-token pass. A tokenizer that pads on the left runs the whole padded
//! sequence with its mask, as diffusers does.

use candle_core::{DType, Tensor};

use super::tokenizer::QwenTokenizer;
use crate::engines::nn::text::qwen::{QwenEncoder, ZIMAGE_HIDDEN_STATE, real_tokens};
use crate::error::{Error, Result};

/// One prompt's caption features (real tokens, hidden) in `dtype`.
pub fn encode(
    tokenizer: &QwenTokenizer,
    encoder: &QwenEncoder,
    prompt: &str,
    max_sequence_length: usize,
    dtype: DType,
) -> Result<Tensor> {
    let encoded = tokenizer.encode(prompt, max_sequence_length)?;
    let real = encoded.real_tokens();
    if real == 0 {
        return Err(Error::bad_input(
            "the Qwen3 tokenizer left no prompt token: raise --max-sequence-length",
        ));
    }
    if real == max_sequence_length {
        tracing::warn!(
            max_sequence_length,
            "the templated prompt fills all {max_sequence_length} tokens and may be cut: Qwen3 \
             reads its start only (raise --max-sequence-length)"
        );
    }
    let device = candle_core::Device::Cpu;
    let prefix = encoded.mask.iter().take(real).all(|&m| m != 0);
    let states = if prefix {
        let ids = Tensor::new(&encoded.ids[..real], &device)?.unsqueeze(0)?;
        encoder
            .encode(&ids, None, ZIMAGE_HIDDEN_STATE)?
            .squeeze(0)?
    } else {
        let ids = Tensor::new(encoded.ids.as_slice(), &device)?.unsqueeze(0)?;
        let mask = Tensor::new(encoded.mask.as_slice(), &device)?.unsqueeze(0)?;
        let hidden = encoder.encode(&ids, Some(&mask), ZIMAGE_HIDDEN_STATE)?;
        let mask = mask.to_device(hidden.device())?;
        real_tokens(&hidden, &mask)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::job_failed("internal: no prompt states"))?
    };
    Ok(states.to_dtype(dtype)?)
}
