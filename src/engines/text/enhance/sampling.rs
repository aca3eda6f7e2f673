//! Next-token choice: greedy at temperature 0, otherwise temperature + top-p (nucleus) sampling
//! driven by our own seeded RNG so a seed always gives the same prompt.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

pub struct Sampler {
    temperature: f64,
    top_p: f64,
    rng: StdRng,
}

impl Sampler {
    pub fn new(seed: u64, temperature: f64, top_p: f64) -> Result<Self> {
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(Error::bad_input(format!(
                "enhancer temperature must be 0 (greedy) or positive, got {temperature}"
            )));
        }
        if !top_p.is_finite() || top_p <= 0.0 || top_p > 1.0 {
            return Err(Error::bad_input(format!(
                "enhancer top_p must be in (0, 1], got {top_p}"
            )));
        }
        Ok(Self {
            temperature,
            top_p,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Picks the next token id from one position's logits.
    pub fn next(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.iter().any(|l| l.is_nan()) {
            return Err(Error::job_failed("the enhancer model produced NaN logits"));
        }
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        // Softmax in f64 on max-shifted logits (stable for any temperature).
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((l as f64 - max) / self.temperature).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        // Highest first; ties keep id order so the choice is reproducible.
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0.0;
        let mut nucleus = 0;
        for (_, p) in &probs {
            kept += p / total;
            nucleus += 1;
            if kept >= self.top_p {
                break;
            }
        }
        probs.truncate(nucleus.max(1));
        let mass: f64 = probs.iter().map(|p| p.1).sum();
        let mut draw = self.rng.random::<f64>() * mass;
        for &(id, p) in &probs {
            if draw < p {
                return Ok(id);
            }
            draw -= p;
        }
        // Rounding left a sliver past the last token: it is the last one.
        probs
            .last()
            .map(|p| p.0)
            .ok_or_else(|| Error::job_failed("empty logits"))
    }
}

/// The first highest logit (torch.argmax picks the first of equal maxima too).
fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| Error::job_failed("empty logits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_max() {
        let mut s = Sampler::new(0, 0.0, 1.0).unwrap();
        assert_eq!(s.next(&[0.1, 3.0, 3.0, -1.0]).unwrap(), 1);
    }

    #[test]
    fn tiny_top_p_is_greedy_and_seed_reproduces() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let mut s = Sampler::new(7, 1.0, 1e-9).unwrap();
        assert_eq!(s.next(&logits).unwrap(), argmax(&logits).unwrap());
        let draw = |seed| {
            let mut s = Sampler::new(seed, 1.5, 0.95).unwrap();
            (0..32)
                .map(|_| s.next(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn bad_options_are_bad_input() {
        assert!(matches!(
            Sampler::new(0, -1.0, 1.0),
            Err(Error::BadInput { .. })
        ));
        assert!(matches!(
            Sampler::new(0, 1.0, 0.0),
            Err(Error::BadInput { .. })
        ));
    }
}
