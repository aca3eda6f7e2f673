//! Parler-TTS's decoding loop over the delayed codebook pattern, as parler_tts's `generate()`
//! runs it for one sequence; the model step is a closure so this logic stands alone.
//!
//! The decoder sequence is a (codebooks x length) grid whose first column is BOS. Codebook `k`
//! runs `k` steps behind codebook 0: its first `k + 1` positions are forced to BOS, and its last
//! positions before `max_length` to PAD (parler_tts's `build_delay_pattern_mask`). Each step the
//! model sees the masked last column and predicts the next one for every codebook.
//!
//! End of speech (`eos`, equal to PAD in Parler): codebook `k` may only emit it once codebooks
//! `0..k` have, one codebook further per step (`ParlerTTSLogitsProcessor`); a codebook that
//! emitted it is forced to PAD from then on; generation stops when every codebook has, or at
//! `max_length`. `min_new_tokens` / `min_length` forbid it early, as transformers does.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// What one decoding run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub num_codebooks: usize,
    /// Total decoder length, the BOS column included (transformers' `max_length`).
    pub max_length: usize,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    /// The first column (`decoder_start_token_id`).
    pub start: u32,
    pub min_new_tokens: usize,
    pub min_length: usize,
}

impl Plan {
    /// The token the delay pattern forces at (`codebook`, `pos`), if any.
    fn forced(&self, codebook: usize, pos: usize) -> Option<u32> {
        let n = self.num_codebooks;
        if self.max_length < 2 * n - 1 {
            return None; // parler_tts applies no pattern to sequences this short
        }
        if pos <= codebook {
            Some(self.bos)
        } else if pos > codebook + self.max_length - n {
            Some(self.pad)
        } else {
            None
        }
    }

    /// The number of model steps at most (one per generated column).
    pub fn steps(&self) -> usize {
        self.max_length.saturating_sub(1)
    }
}

/// How a token is picked from a codebook's logits.
pub enum Sampler {
    Greedy,
    Sample {
        rng: Box<StdRng>,
        temperature: f64,
        top_k: usize,
    },
}

impl Sampler {
    /// Greedy at temperature 0 (or below), else temperature + top-k sampling with a seeded RNG.
    pub fn new(seed: u64, temperature: f64, top_k: usize) -> Self {
        if temperature > 0.0 && temperature.is_finite() {
            Self::Sample {
                rng: Box::new(StdRng::seed_from_u64(seed)),
                temperature,
                top_k,
            }
        } else {
            Self::Greedy
        }
    }

    fn pick(&mut self, logits: &[f32]) -> u32 {
        match self {
            Self::Greedy => argmax(logits),
            Self::Sample {
                rng,
                temperature,
                top_k,
            } => {
                let mut scores: Vec<f64> = logits
                    .iter()
                    .map(|&l| f64::from(l) / *temperature)
                    .collect();
                // transformers' TopKLogitsWarper: drop everything below the k-th largest score.
                if *top_k > 0 && *top_k < scores.len() {
                    let mut sorted = scores.clone();
                    sorted.sort_by(|a, b| b.total_cmp(a));
                    let kth = sorted[*top_k - 1];
                    for s in scores.iter_mut().filter(|s| **s < kth) {
                        *s = f64::NEG_INFINITY;
                    }
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if !max.is_finite() {
                    return argmax(logits);
                }
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut target = rng.random::<f64>() * total;
                for (i, w) in weights.iter().enumerate() {
                    if *w > 0.0 && target < *w {
                        return i as u32;
                    }
                    target -= w;
                }
                // Rounding left the draw past the end: the last token with any mass.
                weights.iter().rposition(|w| *w > 0.0).unwrap_or(0) as u32
            }
        }
    }
}

/// First index of the largest value (torch.argmax's tie rule); NaN never wins.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Runs the loop. `step(pos, column)` feeds the masked column at decoder position `pos` and
/// returns each codebook's logits for the next position; `before_step(i)` runs before model step
/// `i` (cancellation, progress). Returns the raw grid, one row per codebook, BOS column included.
pub fn run(
    plan: &Plan,
    sampler: &mut Sampler,
    mut step: impl FnMut(usize, &[u32]) -> Result<Vec<Vec<f32>>>,
    mut before_step: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Vec<u32>>> {
    let n = plan.num_codebooks;
    let mut rows: Vec<Vec<u32>> = vec![vec![plan.start]; n];
    let mut finished = vec![false; n];
    let mut eos_seen = vec![false; n];
    let mut first_unfinished = 0usize;
    while rows[0].len() < plan.max_length {
        let len = rows[0].len();
        before_step(len - 1)?;
        let pos = len - 1;
        let column: Vec<u32> = (0..n)
            .map(|k| plan.forced(k, pos).unwrap_or(rows[k][pos]))
            .collect();
        let mut logits = step(pos, &column)?;
        if logits.len() != n {
            return Err(crate::error::Error::job_failed(format!(
                "the decoder returned {} codebooks, expected {n}",
                logits.len()
            )));
        }
        if logits.iter().flatten().any(|v| v.is_nan()) {
            return Err(crate::error::Error::job_failed(
                "the decoder produced NaN logits (try f32 or bf16 instead of f16)",
            ));
        }
        // ParlerTTSLogitsProcessor: advance by at most one codebook a step.
        if eos_seen[first_unfinished] && first_unfinished + 1 < n {
            first_unfinished += 1;
        }
        let too_early = len < plan.min_length || len - 1 < plan.min_new_tokens;
        let eos = plan.eos as usize;
        for (k, row_logits) in logits.iter_mut().enumerate() {
            if (too_early || k > first_unfinished) && eos < row_logits.len() {
                row_logits[eos] = f32::NEG_INFINITY;
            }
            let token = if finished[k] {
                plan.pad
            } else {
                sampler.pick(row_logits)
            };
            rows[k].push(token);
            if token == plan.eos {
                finished[k] = true;
                eos_seen[k] = true;
            }
        }
        if finished.iter().all(|f| *f) {
            break;
        }
    }
    Ok(rows)
}

/// The codec frames of a finished grid: the delay undone (codebook `k` shifted left by `k + 1`),
/// then every frame holding a non-audio token (BOS, PAD/EOS, or past the codebook) dropped, as
/// parler_tts does before decoding. Rows of equal length, possibly empty.
pub fn frames(rows: &[Vec<u32>], codebook_size: usize) -> Vec<Vec<u32>> {
    let n = rows.len();
    let len = rows.first().map_or(0, Vec::len);
    let count = len.saturating_sub(n);
    let shifted: Vec<&[u32]> = rows
        .iter()
        .enumerate()
        .map(|(k, row)| &row[(k + 1).min(row.len())..(k + 1 + count).min(row.len())])
        .collect();
    let keep: Vec<usize> = (0..count)
        .filter(|&i| {
            shifted
                .iter()
                .all(|r| r.get(i).is_some_and(|&t| (t as usize) < codebook_size))
        })
        .collect();
    shifted
        .iter()
        .map(|r| keep.iter().map(|&i| r[i]).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: usize, max_length: usize) -> Plan {
        Plan {
            num_codebooks: n,
            max_length,
            bos: 9,
            eos: 8,
            pad: 8,
            start: 9,
            min_new_tokens: 0,
            min_length: 0,
        }
    }

    #[test]
    fn pattern_matches_parler_docstring() {
        // parler_tts's example: 4 codebooks, length 8.
        let p = plan(4, 8);
        let row = |k: usize| -> String {
            (0..8)
                .map(|j| match p.forced(k, j) {
                    Some(9) => 'B',
                    Some(8) => 'P',
                    _ => '-',
                })
                .collect()
        };
        assert_eq!(row(0), "B----PPP");
        assert_eq!(row(1), "BB----PP");
        assert_eq!(row(2), "BBB----P");
        assert_eq!(row(3), "BBBB----");
    }

    #[test]
    fn eos_is_staggered_and_stops_the_loop() {
        // A model that always prefers EOS (8) over token 1.
        let p = plan(3, 20);
        let rows = run(
            &p,
            &mut Sampler::Greedy,
            |_, _| {
                Ok(vec![
                    vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0];
                    3
                ])
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(rows[0], vec![9, 8, 8, 8]);
        assert_eq!(rows[1], vec![9, 1, 8, 8]);
        assert_eq!(rows[2], vec![9, 1, 1, 8]);
        assert!(frames(&rows, 8).iter().all(Vec::is_empty));
    }

    #[test]
    fn frames_undo_the_delay() {
        let rows = vec![vec![9, 1, 2, 8, 8], vec![9, 9, 4, 5, 6]];
        assert_eq!(frames(&rows, 8), vec![vec![1, 2], vec![4, 5]]);
    }

    #[test]
    fn sampling_is_seeded() {
        let logits: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut s = Sampler::new(seed, 1.0, 5);
            (0..32).map(|_| s.pick(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let mut top: Vec<u32> = (0..16).collect();
        top.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        assert!(draw(5).iter().all(|t| top[..5].contains(t)));
    }
}
