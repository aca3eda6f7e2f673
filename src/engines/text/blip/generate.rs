//! Greedy caption decoding, as `BlipTextLMHeadModel.generate` with `do_sample=False,
//! num_beams=1`: the image's cross-attention keys/values once, the prompt in one pass, then one
//! token a step with the self-attention kv cache, argmax of the last position's logits, stop
//! after [SEP] or `max_tokens` new tokens.

use std::time::Instant;

use candle_core::{DType, IndexOp, Tensor};

use super::{BlipCaptioner, Caption};
use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

pub(super) fn greedy(
    model: &BlipCaptioner,
    image_embeds: &Tensor,
    prompt: Vec<u32>,
    max_tokens: u32,
    sink: &dyn ProgressSink,
    cancel: &CancelToken,
) -> Result<Caption> {
    if max_tokens == 0 {
        return Err(Error::bad_input(
            "max_tokens is 0: a caption needs at least one new token",
        ));
    }
    let span = tracing::info_span!("blip_decode", max_tokens);
    let _enter = span.enter();
    let started = Instant::now();
    // Positions beyond max_position_embeddings do not exist; cap the planned steps there.
    let room = model.cfg.candle.text_config.max_position_embeddings - prompt.len();
    let steps = (max_tokens as usize).min(room);
    let sep = model.cfg.sep_token_id;

    let mut state = model.decoder.start(image_embeds)?;
    let mut ids = prompt;
    let mut input = ids.clone();
    let mut stream = TextStream::default();
    // A prefix is part of the caption: stream it first so the deltas add up to the result.
    stream.update(&model.decode(&ids)?, sink);
    for step in 0..steps {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let xs = Tensor::new(input.as_slice(), model.device())?.unsqueeze(0)?;
        let logits = model.decoder.forward(&mut state, &xs, false)?;
        let last = logits.i((0, 0))?.to_dtype(DType::F32)?;
        let next = argmax(&last.to_vec1::<f32>()?)?;
        ids.push(next);
        input = vec![next];

        let done = step + 1;
        let elapsed = started.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * (steps - done) as f64;
        sink.emit(EngineEvent::Progress {
            step: done as u32,
            steps: steps as u32,
            elapsed_s: elapsed,
            eta_s: if next == sep { 0.0 } else { eta },
        });
        stream.update(&model.decode(&ids)?, sink);
        if next == sep {
            break;
        }
    }
    let text = model.decode(&ids)?;
    tracing::info!(
        tokens = ids.len(),
        elapsed_s = started.elapsed().as_secs_f64(),
        "caption decoded"
    );
    Ok(Caption { ids, text })
}

/// The first index of the largest value (torch.argmax's choice on ties); NaN logits are a
/// broken model, not a caption.
fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            return Err(Error::job_failed(
                "the text decoder produced NaN logits (damaged weights or a dtype overflow; \
                 try f32)",
            ));
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| Error::job_failed("the text decoder produced no logits"))
}

/// Turns successive full decodes into `Text` deltas. WordPiece decoding only appends as tokens
/// arrive ("##" pieces glue on, punctuation cleanup touches the new token's own space), so each
/// decode normally extends the previous one; when it does not, nothing is emitted until it does.
#[derive(Default)]
struct TextStream {
    emitted: String,
}

impl TextStream {
    fn update(&mut self, full: &str, sink: &dyn ProgressSink) {
        if let Some(delta) = full.strip_prefix(self.emitted.as_str())
            && !delta.is_empty()
        {
            sink.emit(EngineEvent::Text {
                delta: delta.to_string(),
            });
            self.emitted = full.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]).unwrap(), 1);
        assert!(argmax(&[0.0, f32::NAN]).is_err());
        assert!(argmax(&[]).is_err());
    }

    #[test]
    fn deltas_add_up_to_the_text() {
        let seen = Mutex::new(String::new());
        let sink = |e: EngineEvent| {
            if let EngineEvent::Text { delta } = e {
                seen.lock().unwrap().push_str(&delta);
            }
        };
        let mut stream = TextStream::default();
        for full in ["a", "a dog", "a dogs", "a dogs.", "a dogs."] {
            stream.update(full, &sink);
        }
        assert_eq!(*seen.lock().unwrap(), "a dogs.");
    }
}
