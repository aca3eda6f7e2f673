//! Choosing each codebook's next code from the logits: classifier-free guidance, then greedy
//! (temperature 0) or temperature + top-k sampling with our seeded RNG, in the order
//! transformers applies them (CFG processor, temperature warper, top-k warper, multinomial).

use rand::Rng;
use rand::rngs::StdRng;

/// transformers' `ClassifierFreeGuidanceLogitsProcessor`: uncond + scale * (cond - uncond).
pub fn guide(cond: &[f32], uncond: &[f32], scale: f64) -> Vec<f32> {
    let scale = scale as f32;
    cond.iter()
        .zip(uncond)
        .map(|(&c, &u)| u + (c - u) * scale)
        .collect()
}

/// The index of the largest logit (the first one on ties, as torch.argmax).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// One draw from softmax(logits / temperature) restricted to the `top_k` largest (0 = all).
/// `temperature <= 0` is greedy.
pub fn sample(logits: &[f32], temperature: f64, top_k: usize, rng: &mut StdRng) -> usize {
    if temperature <= 0.0 || logits.is_empty() {
        return argmax(logits);
    }
    let scaled: Vec<f64> = logits.iter().map(|&l| f64::from(l) / temperature).collect();
    let k = if top_k == 0 {
        scaled.len()
    } else {
        top_k.min(scaled.len())
    };
    // transformers keeps every logit >= the k-th largest (ties at the threshold stay in).
    let mut sorted = scaled.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    let max = sorted[0];
    let weights: Vec<f64> = scaled
        .iter()
        .map(|&s| if s >= threshold { (s - max).exp() } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    if !total.is_finite() || total <= 0.0 {
        return argmax(logits);
    }
    let mut u = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            if u < w {
                return i;
            }
            u -= w;
        }
    }
    // Rounding left a sliver past the last kept entry: take the last kept one.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn guidance_extrapolates_away_from_unconditional() {
        assert_eq!(guide(&[2.0, 0.0], &[1.0, 1.0], 3.0), vec![4.0, -2.0]);
        assert_eq!(guide(&[2.0], &[1.0], 1.0), vec![2.0]);
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]), 1);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(sample(&[0.0, 3.0, 1.0], 0.0, 250, &mut rng), 1);
    }

    #[test]
    fn top_one_is_greedy_and_top_k_never_leaves_the_k_best() {
        let mut rng = StdRng::seed_from_u64(7);
        let logits = [0.5, 2.0, 1.9, -1.0, 1.8];
        for _ in 0..200 {
            assert_eq!(sample(&logits, 1.0, 1, &mut rng), 1);
            let i = sample(&logits, 5.0, 3, &mut rng);
            assert!([1, 2, 4].contains(&i), "{i}");
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|_| sample(&logits, 1.0, 10, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
