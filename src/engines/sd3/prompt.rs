//! SD 3's prompt conditioning, as StableDiffusion3Pipeline.encode_prompt: both CLIPs read the
//! prompt padded to 77 tokens; their penultimate hidden states side by side, zero-padded to T5's
//! width, then T5's last hidden state (max_sequence_length tokens) after them along the tokens;
//! the pooled embedding is both CLIPs' projected pooled outputs side by side. Without T5
//! (`--no-t5`, text_encoder_3=None) its states are zeros, as diffusers fills them.

use candle_core::{D, DType, Device, Tensor};

use crate::engines::flux::tokenizer::T5Tokenizer;
use crate::engines::nn::text::clip::{TextEncoder, TextEncoderOutput};
use crate::engines::nn::text::t5_text::T5Text;
use crate::engines::sd::tokenizer::ClipTokenizer;
use crate::error::{Error, Result};

/// One prompt's conditioning in the transformer's dtype: states (1, 77 + seq, joint_dim) and
/// pooled (1, pooled_dim).
#[derive(Debug, Clone)]
pub struct Sd3Embeds {
    pub states: Tensor,
    pub pooled: Tensor,
}

impl Sd3Embeds {
    /// The same conditioning for `n` images.
    pub fn repeat(&self, n: usize) -> Result<Self> {
        Ok(Self {
            states: self.states.repeat((n, 1, 1))?,
            pooled: self.pooled.repeat((n, 1))?,
        })
    }

    /// `[self; a, other; b]` along the batch (the negative and positive halves of a CFG batch).
    pub fn stack(a: &Self, b: &Self) -> Result<Self> {
        Ok(Self {
            states: Tensor::cat(&[&a.states, &b.states], 0)?,
            pooled: Tensor::cat(&[&a.pooled, &b.pooled], 0)?,
        })
    }
}

/// A CLIP tokenizer and its encoder.
pub struct Clip<'a> {
    pub tokenizer: &'a ClipTokenizer,
    pub encoder: &'a TextEncoder,
}

impl Clip<'_> {
    fn encode(&self, prompt: &str, device: &Device) -> Result<TextEncoderOutput> {
        let encoded = self.tokenizer.encode(prompt);
        if encoded.truncated_tokens > 0 {
            tracing::warn!(
                dropped = encoded.truncated_tokens,
                "the prompt is longer than CLIP's {} tokens: the CLIPs read its start only (T5 \
                 reads up to --max-sequence-length)",
                self.tokenizer.max_length()
            );
        }
        let ids = Tensor::new(encoded.ids.as_slice(), device)?.unsqueeze(0)?;
        self.encoder.forward(&ids)
    }
}

pub struct Encoders<'a> {
    pub clip_l: Clip<'a>,
    pub clip_g: Clip<'a>,
    /// None: `--no-t5` (zeros in its place).
    pub t5: Option<(&'a T5Tokenizer, &'a T5Text)>,
    /// T5 tokens (`--max-sequence-length`; diffusers' default 256).
    pub max_sequence_length: usize,
    /// The transformer's `joint_attention_dim` (the zeros' width without T5).
    pub joint_dim: usize,
}

impl Encoders<'_> {
    pub fn encode(&self, prompt: &str, device: &Device, dtype: DType) -> Result<Sd3Embeds> {
        let _span = tracing::debug_span!("sd3_encode_prompt").entered();
        let l = self.clip_l.encode(prompt, device)?;
        let g = self.clip_g.encode(prompt, device)?;
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        let clip = Tensor::cat(&[f32(&l.penultimate)?, f32(&g.penultimate)?], D::Minus1)?;
        let pooled = Tensor::cat(&[f32(&l.pooled)?, f32(&g.pooled)?], D::Minus1)?;
        let t5 = match self.t5 {
            Some((tokenizer, encoder)) => {
                let ids = tokenizer.encode(prompt, self.max_sequence_length)?;
                f32(&encoder.encode(&ids)?)?
            }
            None => Tensor::zeros(
                (1, self.max_sequence_length, self.joint_dim),
                DType::F32,
                device,
            )?,
        };
        let (clip_w, t5_w) = (clip.dim(D::Minus1)?, t5.dim(D::Minus1)?);
        if clip_w > t5_w {
            return Err(Error::bad_input(format!(
                "the two CLIPs' states are {clip_w} wide together, wider than the T5 states \
                 ({t5_w}) they are padded to: the text encoders do not belong together"
            )));
        }
        let clip = clip.pad_with_zeros(D::Minus1, 0, t5_w - clip_w)?;
        let states = Tensor::cat(&[clip, t5], 1)?;
        Ok(Sd3Embeds {
            states: states.to_dtype(dtype)?,
            pooled: pooled.to_dtype(dtype)?,
        })
    }
}
