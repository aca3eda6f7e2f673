//! The decoding rules, as pure functions over token ids and logits, in transformers' order
//! (`WhisperGenerationMixin`: begin-suppress, suppress, then the timestamp rules of
//! `WhisperTimeStampLogitsProcessor`), and the split of one window's tokens into timed segments
//! (`_retrieve_segment`), including where the next window starts.

use super::config::Generation;

/// Seconds per timestamp step.
pub const TIME_PRECISION: f64 = 0.02;
/// Seconds per mel frame.
const FRAME_SECONDS: f32 = 0.01;
/// Mel frames per encoder position (conv2's stride).
pub const INPUT_STRIDE: usize = 2;

/// The start of every window's decoder input: `<|startoftranscript|>`, then on multilingual models
/// the language and the task, then `<|notimestamps|>` when timestamps are off.
pub fn init_tokens(
    generation: &Generation,
    language: Option<u32>,
    task: Option<u32>,
    timestamps: bool,
) -> Vec<u32> {
    let mut init = vec![generation.sot];
    if generation.multilingual {
        init.extend(language);
        init.extend(task);
    }
    if !timestamps {
        init.push(generation.no_timestamps);
    }
    init
}

/// The longest decoder sequence (start tokens included) one window may reach: transformers adds
/// the start tokens to generation_config's `max_length`, or takes `max_new_tokens` after them,
/// and never goes past the model's `max_target_positions`.
pub fn max_total_len(
    generation: &Generation,
    max_target_positions: usize,
    init_len: usize,
    max_new_tokens: Option<u32>,
) -> usize {
    let room = max_target_positions.saturating_sub(init_len);
    match max_new_tokens {
        Some(n) => init_len + (n as usize).min(room),
        None => match generation.max_length {
            Some(max) => {
                (max + init_len.min(max_target_positions / 2 - 1)).min(max_target_positions)
            }
            None => max_target_positions,
        },
    }
}

/// Masks the logits of the next token; `generated` is what this window produced so far (after
/// the start tokens).
pub fn process_logits(
    logits: &mut [f32],
    generation: &Generation,
    timestamps: bool,
    generated: &[u32],
) {
    let ninf = f32::NEG_INFINITY;
    let mut mask = |ids: &[u32]| {
        for id in ids {
            if let Some(v) = logits.get_mut(*id as usize) {
                *v = ninf;
            }
        }
    };
    if generated.is_empty() {
        mask(&generation.begin_suppress_tokens);
    }
    mask(&generation.suppress_tokens);
    if timestamps {
        timestamp_rules(logits, generation, generated);
    }
}

fn fill(logits: &mut [f32], from: usize, to: usize) {
    let to = to.min(logits.len());
    if from < to {
        logits[from..to].fill(f32::NEG_INFINITY);
    }
}

fn timestamp_rules(logits: &mut [f32], generation: &Generation, generated: &[u32]) {
    let tb = generation.timestamp_begin as usize;
    let n = logits.len();
    fill(
        logits,
        generation.no_timestamps as usize,
        generation.no_timestamps as usize + 1,
    );
    let is_ts = |t: u32| t as usize >= tb;
    let last_ts = generated.last().is_some_and(|t| is_ts(*t));
    let penultimate_ts = generated.len() < 2 || is_ts(generated[generated.len() - 2]);
    // Timestamps come in pairs (begin, end), except a lone one just before the end of text.
    if last_ts {
        if penultimate_ts {
            fill(logits, tb, n);
        } else {
            fill(logits, 0, generation.eot as usize);
        }
    }
    // Timestamps never go back, and a closed pair's time is not repeated.
    let lowest = match generated.iter().rev().find(|t| is_ts(**t)) {
        Some(last) if last_ts && !penultimate_ts => *last as usize,
        Some(last) => *last as usize + 1,
        None => tb,
    };
    fill(logits, tb, lowest);
    if generated.is_empty() {
        fill(logits, 0, tb);
        if let Some(max) = generation.max_initial_timestamp_index {
            fill(logits, tb + max as usize + 1, n);
        }
    }
    // When all timestamps together are likelier than any single text token, take a timestamp.
    let max_all = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max_all.is_finite() || tb >= n {
        return;
    }
    let log_z = log_sum_exp(logits, max_all);
    let ts_logprob = log_sum_exp(&logits[tb..], max_all) - log_z;
    let text_max = logits[..tb]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let text_logprob = f64::from(text_max - max_all) - (log_z - f64::from(max_all));
    if ts_logprob > text_logprob {
        fill(logits, 0, tb);
    }
}

/// log(sum(exp(x))) with `max` (the maximum of all logits) as the shift.
fn log_sum_exp(values: &[f32], max: f32) -> f64 {
    let sum: f64 = values.iter().map(|v| f64::from(*v - max).exp()).sum();
    sum.ln() + f64::from(max)
}

/// A timed piece of one window's output, tokens as generated (timestamps included).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSegment {
    pub start_s: f64,
    pub end_s: f64,
    pub tokens: Vec<u32>,
}

/// Splits a window's tokens (final end-of-text removed) into segments at each pair of adjacent
/// timestamps; returns them and how many mel frames to move forward. `seek` is the window's first
/// frame, `window_frames` how many real frames it held.
pub fn split_segments(
    tokens: &[u32],
    generation: &Generation,
    seek: usize,
    window_frames: usize,
) -> (Vec<RawSegment>, usize) {
    let tb = i64::from(generation.timestamp_begin);
    let offset = seek as f64 * TIME_PRECISION / INPUT_STRIDE as f64;
    let time = |pos: i64| offset + pos as f64 * TIME_PRECISION;
    let is_ts: Vec<bool> = tokens.iter().map(|t| i64::from(*t) >= tb).collect();
    let n = tokens.len();
    let single_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1];
    let mut cuts: Vec<usize> = (0..n.saturating_sub(1))
        .filter(|i| is_ts[*i] && is_ts[i + 1])
        .map(|i| i + 1)
        .collect();
    if cuts.is_empty() {
        // No closed segment: the whole window is one, ending at its last timestamp if it has one
        // (other than <|0.00|>), else at the window's end.
        let mut end_pos = ((window_frames as f32 * FRAME_SECONDS) / TIME_PRECISION as f32) as i64;
        if let Some(i) = is_ts.iter().rposition(|t| *t)
            && i64::from(tokens[i]) != tb
        {
            end_pos = i64::from(tokens[i]) - tb;
        }
        let segment = RawSegment {
            start_s: offset,
            end_s: time(end_pos),
            tokens: tokens.to_vec(),
        };
        return (vec![segment], window_frames);
    }
    if single_ending {
        cuts.push(n);
    } else if let Some(last) = cuts.last_mut() {
        // Keep the closing timestamp in the last segment.
        *last += 1;
    }
    let mut segments = Vec::with_capacity(cuts.len());
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        let piece = &tokens[from..to];
        let is_last = i + 1 == cuts.len();
        let end_index = if !is_last || single_ending {
            piece.len() - 1
        } else {
            piece.len().saturating_sub(2)
        };
        segments.push(RawSegment {
            start_s: time(i64::from(piece[0]) - tb),
            end_s: time(i64::from(piece[end_index]) - tb),
            tokens: piece.to_vec(),
        });
        from = to;
    }
    let advance = if single_ending {
        window_frames
    } else {
        // The text after the last closed segment was cut off by the window's end: start the next
        // window at that segment's end.
        let last_pos = i64::from(tokens[from.saturating_sub(2)]) - tb;
        (last_pos.max(0) as usize) * INPUT_STRIDE
    };
    (segments, advance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A vocabulary like the fixture's: text 0..10, eot 10, sot 11, notimestamps 12, timestamps 13..
    fn generation() -> Generation {
        Generation {
            sot: 11,
            eot: 10,
            no_timestamps: 12,
            timestamp_begin: 13,
            suppress_tokens: vec![3],
            begin_suppress_tokens: vec![10],
            multilingual: false,
            lang_to_id: BTreeMap::new(),
            transcribe: None,
            translate: None,
            max_initial_timestamp_index: Some(2),
            max_length: Some(448),
            forced_language: None,
            forced_task: None,
        }
    }

    fn masked(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|i| logits[*i].is_infinite())
            .collect()
    }

    #[test]
    fn the_first_token_is_an_early_timestamp() {
        let mut l = vec![0.0f32; 30];
        process_logits(&mut l, &generation(), true, &[]);
        let open: Vec<usize> = (0..30).filter(|i| l[*i].is_finite()).collect();
        assert_eq!(open, vec![13, 14, 15]);
        let mut l = vec![0.0f32; 30];
        process_logits(&mut l, &generation(), false, &[]);
        assert_eq!(masked(&l), vec![3, 10]);
    }

    #[test]
    fn timestamps_pair_up_and_never_go_back() {
        // After <|t=5|> text: text or a later timestamp (the same time is not repeated).
        let mut l = vec![0.0f32; 30];
        l[1] = 50.0; // a sure text token keeps the probability rule out of the way
        process_logits(&mut l, &generation(), true, &[18, 1]);
        assert!(l[13..19].iter().all(|v| v.is_infinite()) && l[19].is_finite());
        // After a closed pair: text only, no timestamp.
        let mut l = vec![0.0f32; 30];
        l[1] = 50.0;
        process_logits(&mut l, &generation(), true, &[13, 1, 18, 18]);
        assert!(l[13..].iter().all(|v| v.is_infinite()));
        // After text then one timestamp: a timestamp (or eot), no text.
        let mut l = vec![0.0f32; 30];
        process_logits(&mut l, &generation(), true, &[13, 1, 18]);
        assert!(l[..10].iter().all(|v| v.is_infinite()));
        assert!(l[18].is_finite() && l[17].is_infinite());
    }

    #[test]
    fn likely_timestamps_win_over_text() {
        let mut l = vec![0.0f32; 30];
        l[1] = 1.0;
        process_logits(&mut l, &generation(), true, &[13, 1]);
        // 17 timestamps at 0 outweigh one text token at 1.
        assert!(l[..10].iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn segments_split_at_timestamp_pairs() {
        let g = generation();
        // <0.00> a b <0.40><0.40> c <1.00>  (single timestamp ending: the window is done)
        let (segs, advance) = split_segments(&[13, 1, 2, 33, 33, 4, 63], &g, 0, 3000);
        assert_eq!(advance, 3000);
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].start_s, segs[0].end_s), (0.0, 0.4));
        assert_eq!(segs[0].tokens, vec![13, 1, 2, 33]);
        assert_eq!(segs[1].tokens, vec![33, 4, 63]);
        assert!((segs[1].end_s - 1.0).abs() < 1e-12);
        // Ending on a pair: seek to the last timestamp, with the window's offset added.
        let (segs, advance) = split_segments(&[13, 1, 33, 33, 4, 63, 63], &g, 100, 3000);
        assert_eq!(advance, 100);
        assert_eq!(segs.len(), 2);
        assert!((segs[1].start_s - 1.4).abs() < 1e-12 && (segs[1].end_s - 2.0).abs() < 1e-12);
        // No pair: one segment to the last timestamp.
        let (segs, advance) = split_segments(&[13, 1, 2, 40], &g, 0, 300);
        assert_eq!((segs.len(), advance), (1, 300));
        assert!((segs[0].end_s - 0.54).abs() < 1e-12);
        let (segs, _) = split_segments(&[1, 2], &g, 0, 300);
        assert!((segs[0].end_s - 3.0).abs() < 1e-12);
    }

    #[test]
    fn lengths_follow_transformers() {
        let g = generation();
        assert_eq!(max_total_len(&g, 448, 4, None), 448);
        assert_eq!(max_total_len(&g, 64, 4, Some(5)), 9);
        assert_eq!(max_total_len(&g, 64, 4, Some(500)), 64);
        assert_eq!(init_tokens(&g, Some(5), Some(6), false), vec![11, 12]);
        let mut multi = g.clone();
        multi.multilingual = true;
        assert_eq!(init_tokens(&multi, Some(5), Some(6), true), vec![11, 5, 6]);
    }
}
