//! MusicGen's codebook delay pattern: codebook k runs k frames behind codebook 0, so a step
//! predicts frame t of codebook 0, frame t-1 of codebook 1, ... The pattern is built, applied
//! and reverted exactly as transformers' `build_delay_pattern_mask` /
//! `apply_delay_pattern_mask` and the pad filtering at the end of `generate`.

/// A value in the pattern meaning "predicted by the model" (transformers uses -1 too).
pub const PREDICT: i64 = -1;

/// The pattern for `prompt` (one row a codebook, all rows the same length) over `max_length`
/// columns: `PREDICT` where the model decides, the prompt (shifted by the codebook index)
/// where it was given, `pad` in the leading and trailing delay triangles.
/// Returns (the prompt columns before the first prediction, the pattern).
pub fn build_delay_pattern_mask(
    prompt: &[Vec<i64>],
    pad: i64,
    max_length: usize,
) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let k = prompt.len();
    let seq_len = prompt.first().map_or(0, Vec::len);
    let mut shifted = vec![vec![PREDICT; max_length]; k];
    // transformers leaves short sequences alone: the prompt as is, a pattern of all PREDICT.
    if max_length + 1 < 2 * k {
        return (prompt.to_vec(), shifted);
    }
    for (cb, row) in prompt.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if cb + j < max_length {
                shifted[cb][cb + j] = v;
            }
        }
    }
    // triu(diagonal = L - K + 1) marks the trailing pads, tril the leading ones.
    let trailing_from = max_length - k + 1;
    let pattern: Vec<Vec<i64>> = shifted
        .iter()
        .enumerate()
        .map(|(cb, row)| {
            row.iter()
                .enumerate()
                .map(|(j, &v)| {
                    let is_pad = j <= cb || j >= cb + trailing_from;
                    if is_pad { pad } else { v }
                })
                .collect()
        })
        .collect();
    let first_start = pattern
        .first()
        .and_then(|row| row.iter().position(|&v| v == PREDICT))
        .unwrap_or(seq_len);
    let ids = pattern
        .iter()
        .map(|row| row[..first_start].to_vec())
        .collect();
    (ids, pattern)
}

/// Overwrites every position the pattern fixes (anything but `PREDICT`) in `ids`.
pub fn apply_delay_pattern_mask(ids: &mut [Vec<i64>], pattern: &[Vec<i64>]) {
    for (row, mask) in ids.iter_mut().zip(pattern) {
        for (v, &m) in row.iter_mut().zip(mask) {
            if m != PREDICT {
                *v = m;
            }
        }
    }
}

/// Undoes the delay: the pattern applied, then every `pad` dropped, leaving one row of audio
/// codes a codebook, all of equal length (None when they are not, which a valid pattern
/// never produces).
pub fn revert_delay_pattern(
    ids: &[Vec<i64>],
    pattern: &[Vec<i64>],
    pad: i64,
) -> Option<Vec<Vec<u32>>> {
    let mut ids = ids.to_vec();
    apply_delay_pattern_mask(&mut ids, pattern);
    let rows: Vec<Vec<u32>> = ids
        .iter()
        .map(|row| {
            row.iter()
                .filter(|&&v| v != pad)
                .map(|&v| u32::try_from(v).unwrap_or(u32::MAX))
                .collect()
        })
        .collect();
    let len = rows.first().map_or(0, Vec::len);
    let valid = rows
        .iter()
        .all(|r| r.len() == len && r.iter().all(|&v| v != u32::MAX));
    valid.then_some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: i64 = 9;
    const X: i64 = PREDICT;

    #[test]
    fn pattern_of_four_codebooks_matches_the_transformers_docstring() {
        let prompt = vec![vec![P]; 4];
        let (ids, pattern) = build_delay_pattern_mask(&prompt, P, 8);
        assert_eq!(
            pattern,
            vec![
                vec![P, X, X, X, X, P, P, P],
                vec![P, P, X, X, X, X, P, P],
                vec![P, P, P, X, X, X, X, P],
                vec![P, P, P, P, X, X, X, X],
            ]
        );
        assert_eq!(ids, vec![vec![P]; 4]);
    }

    #[test]
    fn a_prompt_is_shifted_by_the_codebook_index() {
        let prompt = vec![vec![P, 1, 2], vec![P, 3, 4], vec![P, 5, 6], vec![P, 7, 8]];
        let (ids, pattern) = build_delay_pattern_mask(&prompt, P, 8);
        assert_eq!(
            pattern,
            vec![
                vec![P, 1, 2, X, X, P, P, P],
                vec![P, P, 3, 4, X, X, P, P],
                vec![P, P, P, 5, 6, X, X, P],
                vec![P, P, P, P, 7, 8, X, X],
            ]
        );
        assert_eq!(
            ids,
            vec![vec![P, 1, 2], vec![P, P, 3], vec![P, P, P], vec![P, P, P]]
        );
    }

    #[test]
    fn short_sequences_are_left_alone() {
        let prompt = vec![vec![P]; 4];
        let (ids, pattern) = build_delay_pattern_mask(&prompt, P, 6);
        assert_eq!(ids, prompt);
        assert!(
            pattern
                .iter()
                .all(|r| r.len() == 6 && r.iter().all(|&v| v == X))
        );
    }

    #[test]
    fn apply_then_revert_recovers_the_frames() {
        let (_, pattern) = build_delay_pattern_mask(&[vec![P], vec![P], vec![P]], P, 7);
        // What the model "generated" at every column (garbage where the pattern pads).
        let generated: Vec<Vec<i64>> = (0..3)
            .map(|cb| (0..7).map(|j| (10 * cb + j) as i64).collect())
            .collect();
        let codes = revert_delay_pattern(&generated, &pattern, P).unwrap();
        // 7 - 3 = 4 frames; codebook k's frame t sits at column t + k + 1.
        assert_eq!(
            codes,
            vec![vec![1, 2, 3, 4], vec![12, 13, 14, 15], vec![23, 24, 25, 26]]
        );
    }

    #[test]
    fn apply_keeps_only_predicted_positions() {
        let (_, pattern) = build_delay_pattern_mask(&[vec![P], vec![P]], P, 4);
        let mut ids = vec![vec![1, 2, 3], vec![4, 5, 6]];
        apply_delay_pattern_mask(&mut ids, &pattern);
        assert_eq!(ids, vec![vec![P, 2, 3], vec![P, P, 6]]);
    }
}
