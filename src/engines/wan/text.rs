//! Wan's prompt encoding: the UMT5 encoder of `text_encoder/` (`nn::text::umt5`, or a GGUF kept
//! quantized, `nn::text::t5_quantized`) and the T5 tokenizer of `tokenizer/` (FLUX's
//! `T5Tokenizer`, the same tokenizer.json format), used as diffusers'
//! `WanPipeline._get_t5_prompt_embeds` uses them.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::engines::EngineSwitches;
pub use crate::engines::flux::tokenizer::T5Tokenizer;
use crate::engines::nn::text::t5::{T5Config, T5Encoder};
use crate::engines::nn::text::t5_quantized::QuantizedT5Encoder;
use crate::engines::nn::text::umt5;
use crate::error::{Error, Result};

/// Wan's UMT5 text encoder: the folder's safetensors, or a llama.cpp/city96 GGUF whose matrices
/// stay quantized in memory (each dequantized for its one matmul).
#[derive(Debug)]
pub struct Umt5Encoder {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Dense(umt5::Umt5Encoder),
    Quantized(QuantizedT5Encoder),
}

impl Umt5Encoder {
    /// `dir` = the model's `text_encoder/` (config.json + safetensors, sharded or not); f16 is
    /// widened to f32 (T5's activations overflow it).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        Ok(Self {
            inner: Inner::Dense(umt5::Umt5Encoder::load(dir, device, dtype, switches)?),
        })
    }

    /// A UMT5 encoder GGUF (`enc.blk.N.attn_rel_b` in every block) with `config` (the model's
    /// `text_encoder/config.json`, `nn::text::t5::load_config`), its matrices kept quantized;
    /// computing in `dtype` (f16 widened to f32).
    pub fn load_gguf(
        path: &Path,
        config: &T5Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let dtype = T5Encoder::dtype_for(dtype);
        Ok(Self {
            inner: Inner::Quantized(QuantizedT5Encoder::load_umt5(path, config, device, dtype)?),
        })
    }

    /// The last hidden state for one unpadded id sequence: (1, len, d_model) in `dtype()`.
    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.inner {
            Inner::Dense(e) => e.encode(ids),
            Inner::Quantized(e) => e.encode(ids),
        }
    }

    /// The dtype the encoder computes (and returns) in.
    pub fn dtype(&self) -> DType {
        match &self.inner {
            Inner::Dense(e) => e.dtype(),
            Inner::Quantized(e) => e.dtype(),
        }
    }

    /// Its config (`d_model` is the transformer's `text_dim`).
    pub fn config(&self) -> &T5Config {
        match &self.inner {
            Inner::Dense(e) => e.config(),
            Inner::Quantized(e) => e.config(),
        }
    }
}

/// The prompt length Wan's pipelines pad to (`max_sequence_length`, 512 in WanPipeline's call;
/// the transformer's image cross-attention assumes it).
pub const MAX_SEQUENCE_LENGTH: usize = 512;

/// `WanPipeline._get_t5_prompt_embeds` for one prompt: `prompt_clean`, the tokenizer with
/// `padding="max_length", max_length=max_len, truncation=True`, the encoder's last hidden state
/// for the prompt's tokens, zero rows past them: (1, max_len, d_model) in the encoder's dtype.
/// diffusers runs the padded ids with the attention mask; the prompt's rows are the same as the
/// unpadded run's, which is what runs here.
pub fn prompt_embeds(
    encoder: &Umt5Encoder,
    tokenizer: &T5Tokenizer,
    prompt: &str,
    max_len: usize,
) -> Result<Tensor> {
    let (ids, mask) = tokenizer.encode_masked(&prompt_clean(prompt), max_len)?;
    let kept: Vec<u32> = ids
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(id, _)| *id)
        .collect();
    if kept.is_empty() {
        return Err(Error::job_failed("the T5 tokenizer gave no tokens"));
    }
    let hidden = encoder.encode(&kept)?;
    let pad = max_len - kept.len();
    if pad == 0 {
        return Ok(hidden);
    }
    let zeros = Tensor::zeros(
        (1, pad, encoder.config().d_model),
        hidden.dtype(),
        hidden.device(),
    )?;
    Ok(Tensor::cat(&[hidden, zeros], 1)?)
}

/// diffusers' `prompt_clean` without ftfy (diffusers skips it when ftfy is not installed):
/// HTML entities unescaped twice, whitespace runs collapsed to one space, ends trimmed.
pub fn prompt_clean(prompt: &str) -> String {
    let text = html_unescape(&html_unescape(prompt));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Python's `html.unescape` for the entities prompts carry: `&amp;`, `&lt;`, `&gt;`, `&quot;`,
/// `&apos;`, `&nbsp;` and numeric `&#N;` / `&#xH;`; anything else is left as written.
fn html_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name.strip_prefix('#').and_then(|num| {
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::prompt_clean;

    #[test]
    fn prompt_clean_follows_diffusers() {
        // diffusers.pipelines.wan.pipeline_wan.prompt_clean (no ftfy) on the same strings.
        assert_eq!(prompt_clean("  a  cat &amp; a\tdog\n"), "a cat & a dog");
        assert_eq!(
            prompt_clean("&amp;lt;b&gt; &#65;&#x42; &bogus; &"),
            "<b> AB &bogus; &"
        );
    }
}
