//! FLUX's prompt conditioning, as FluxPipeline.encode_prompt: CLIP-L's pooled output of the
//! prompt padded to 77 tokens, and T5's last hidden state of the prompt padded to
//! max_sequence_length (no attention mask: padding is encoded too, as diffusers does).

use candle_core::{DType, Device, Tensor};

use super::tokenizer::T5Tokenizer;
use crate::engines::nn::text::clip::TextEncoder;
use crate::engines::nn::text::t5_text::T5Text;
use crate::engines::sd::tokenizer::ClipTokenizer;
use crate::error::Result;

/// One prompt's conditioning: pooled (1, clip width), T5 states (1, seq, d_model), both in the
/// transformer's dtype.
#[derive(Debug, Clone)]
pub struct PromptEmbeds {
    pub pooled: Tensor,
    pub t5: Tensor,
}

impl PromptEmbeds {
    /// The same conditioning for `n` images.
    pub fn repeat(&self, n: usize) -> Result<Self> {
        Ok(Self {
            pooled: self.pooled.repeat((n, 1))?,
            t5: self.t5.repeat((n, 1, 1))?,
        })
    }
}

pub struct Encoders<'a> {
    pub clip_tokenizer: &'a ClipTokenizer,
    pub clip: &'a TextEncoder,
    pub t5_tokenizer: &'a T5Tokenizer,
    pub t5: &'a T5Text,
    /// T5 tokens (`--max-sequence-length`).
    pub max_sequence_length: usize,
}

impl Encoders<'_> {
    pub fn encode(&self, prompt: &str, device: &Device, dtype: DType) -> Result<PromptEmbeds> {
        let clip_ids = self.clip_tokenizer.encode(prompt);
        if clip_ids.truncated_tokens > 0 {
            tracing::warn!(
                dropped = clip_ids.truncated_tokens,
                "the prompt is longer than CLIP's {} tokens: CLIP reads its start only (T5 reads \
                 up to --max-sequence-length)",
                self.clip_tokenizer.max_length()
            );
        }
        let ids = Tensor::new(clip_ids.ids.as_slice(), device)?.unsqueeze(0)?;
        let pooled = self.clip.forward(&ids)?.pooled.to_dtype(dtype)?;
        let t5_ids = self.t5_tokenizer.encode(prompt, self.max_sequence_length)?;
        let t5 = self.t5.encode(&t5_ids)?.to_dtype(dtype)?;
        Ok(PromptEmbeds { pooled, t5 })
    }
}
