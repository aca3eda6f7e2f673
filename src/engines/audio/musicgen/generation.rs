//! The decoding loop of `MusicGen`: delay pattern, classifier-free guidance batch, kv-cache,
//! sampling, progress and cancel every step; as transformers' `generate` + `_sample`.

use std::time::Instant;

use candle_core::{Module, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{MusicGen, MusicOptions, delay, sampling};
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

/// How many steps of logits `generate_codes` keeps for inspection (parity tests).
const TRACED_STEPS: usize = 3;

/// The codes one generation produced, plus the first steps' logits.
pub struct GeneratedCodes {
    /// One row a codebook, delay pattern reverted: (num_codebooks, frames).
    pub codes: Vec<Vec<u32>>,
    /// Raw decoder logits of the first steps, (batch * num_codebooks, vocab) each; with
    /// guidance the conditional rows come first, then the unconditional ones.
    pub raw_logits: Vec<Tensor>,
    /// The same steps after guidance: (num_codebooks, vocab) each.
    pub guided_logits: Vec<Vec<Vec<f32>>>,
}

impl MusicGen {
    /// Runs the decoder for `max_new_tokens` steps (transformers' `max_new_tokens`) and
    /// reverts the delay pattern: the frames are `max_new_tokens + 1 - num_codebooks`.
    pub fn generate_codes(
        &self,
        prompt: &str,
        max_new_tokens: usize,
        opts: &MusicOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<GeneratedCodes> {
        check_sampling(opts)?;
        let k = self.num_codebooks();
        if max_new_tokens < k {
            return Err(Error::bad_input(format!(
                "{max_new_tokens} steps give no audio with {k} delayed codebooks"
            )));
        }
        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let states = {
            let started = Instant::now();
            let _span = tracing::info_span!("musicgen_encode").entered();
            let ids = self.tokenize(prompt)?;
            let hidden = self.encode_text(&ids)?;
            let hidden = match &self.enc_to_dec_proj {
                Some(proj) => proj.forward(&hidden.to_dtype(proj.weight().dtype())?)?,
                None => hidden,
            };
            tracing::info!(
                tokens = ids.len(),
                elapsed_s = started.elapsed().as_secs_f64(),
                "prompt encoded"
            );
            hidden
        };
        let guided = opts.guidance > 1.0;
        // transformers' unconditional half: the text states zeroed (attention mask 0).
        let states = if guided {
            Tensor::cat(&[&states, &states.zeros_like()?], 0)?
        } else {
            states
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        sink.emit(EngineEvent::Loading {
            stage: "decoder".into(),
        });
        let started = Instant::now();
        let _span = tracing::info_span!("musicgen_decode", steps = max_new_tokens).entered();
        let pad = i64::from(self.pad);
        let (mut ids, pattern) =
            delay::build_delay_pattern_mask(&vec![vec![pad]; k], pad, max_new_tokens + 1);
        let mut state = self.decoder.start(&states)?;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let batch = if guided { 2 } else { 1 };
        let mut raw_logits = Vec::new();
        let mut guided_logits = Vec::new();
        for step in 0..max_new_tokens {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            delay::apply_delay_pattern_mask(&mut ids, &pattern);
            let column: Vec<u32> = ids
                .iter()
                .map(|row| row.last().copied().unwrap_or(pad) as u32)
                .collect();
            let column: Vec<u32> = column.repeat(batch);
            let input = Tensor::from_vec(column, (batch, k, 1), &self.device)?;
            let logits = self.decoder.forward(&input, &mut state)?.squeeze(2)?; // (b, k, vocab)
            let rows: Vec<Vec<Vec<f32>>> = logits.to_vec3()?;
            let scores: Vec<Vec<f32>> = (0..k)
                .map(|cb| {
                    if guided {
                        sampling::guide(&rows[0][cb], &rows[1][cb], opts.guidance)
                    } else {
                        rows[0][cb].clone()
                    }
                })
                .collect();
            if scores.iter().flatten().any(|v| !v.is_finite()) {
                return Err(Error::job_failed(format!(
                    "MusicGen produced non-finite logits at step {step}; try f32 or another dtype"
                )));
            }
            for (row, s) in ids.iter_mut().zip(&scores) {
                let next = sampling::sample(s, opts.temperature, opts.top_k, &mut rng);
                row.push(next as i64);
            }
            if step < TRACED_STEPS {
                raw_logits.push(logits.flatten_to(1)?);
                guided_logits.push(scores);
            }
            let elapsed_s = started.elapsed().as_secs_f64();
            let done = step + 1;
            sink.emit(EngineEvent::Progress {
                step: done as u32,
                steps: max_new_tokens as u32,
                elapsed_s,
                eta_s: elapsed_s / done as f64 * (max_new_tokens - done) as f64,
            });
        }
        tracing::info!(
            steps = max_new_tokens,
            elapsed_s = started.elapsed().as_secs_f64(),
            "codes generated"
        );
        let codes = delay::revert_delay_pattern(&ids, &pattern, pad)
            .ok_or_else(|| Error::job_failed("the generated codes do not fit the delay pattern"))?;
        Ok(GeneratedCodes {
            codes,
            raw_logits,
            guided_logits,
        })
    }
}

fn check_sampling(opts: &MusicOptions) -> Result<()> {
    if !opts.guidance.is_finite() || opts.guidance < 0.0 {
        return Err(Error::bad_input(format!(
            "guidance {} is invalid; use 0..10 (3 is MusicGen's default, 1 or less turns it off)",
            opts.guidance
        )));
    }
    if !opts.temperature.is_finite() || opts.temperature < 0.0 {
        return Err(Error::bad_input(format!(
            "temperature {} is invalid; use 0 (greedy) or more",
            opts.temperature
        )));
    }
    Ok(())
}
