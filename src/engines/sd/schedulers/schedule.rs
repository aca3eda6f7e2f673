//! The scalar arithmetic the schedulers share: betas, cumulative alphas, sigmas and timestep
//! spacings, written to reproduce diffusers' numpy/torch code (including numpy's banker's rounding
//! and float32 storage), so timesteps come out identical and sigmas within float32 rounding.

use super::config::{BetaSchedule, Resolved, TimestepSpacing};

/// Round to float32 and back: diffusers keeps these arrays as float32.
pub(crate) fn f32r(x: f64) -> f64 {
    x as f32 as f64
}

/// `numpy.linspace(start, stop, n)` (endpoint included), value for value.
pub(crate) fn np_linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
            v[n - 1] = stop;
            v
        }
    }
}

/// `numpy.arange(start, stop, step)` for floats: numpy fills `start + i * ((start + step) - start)`.
pub(crate) fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    // NaN (a zero step) counts as empty too.
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let len = len as usize;
    let delta = (start + step) - start;
    (0..len)
        .map(|i| {
            if i == 0 {
                start
            } else {
                start + i as f64 * delta
            }
        })
        .collect()
}

/// `numpy.interp(x, arange(len(fp)), fp)`: linear interpolation, clamped at both ends.
pub(crate) fn interp_index(x: f64, fp: &[f64]) -> f64 {
    let last = fp.len() - 1;
    if x <= 0.0 {
        return fp[0];
    }
    if x >= last as f64 {
        return fp[last];
    }
    let j = x.floor() as usize;
    let slope = fp[j + 1] - fp[j];
    slope * (x - j as f64) + fp[j]
}

/// The training betas, float32 as diffusers stores them.
pub(crate) fn betas(r: &Resolved) -> Vec<f64> {
    let n = r.num_train_timesteps;
    let raw: Vec<f64> = if let Some(trained) = &r.trained_betas {
        trained.iter().map(|&b| f32r(b)).collect()
    } else {
        match r.beta_schedule {
            BetaSchedule::Linear => np_linspace(r.beta_start, r.beta_end, n)
                .into_iter()
                .map(f32r)
                .collect(),
            BetaSchedule::ScaledLinear => np_linspace(r.beta_start.sqrt(), r.beta_end.sqrt(), n)
                .into_iter()
                .map(|x| {
                    let v = x as f32;
                    (v * v) as f64
                })
                .collect(),
            BetaSchedule::SquaredCosCapV2 => cosine_betas(n),
        }
    };
    if r.rescale_betas_zero_snr {
        rescale_zero_terminal_snr(&raw)
    } else {
        raw
    }
}

/// diffusers' `betas_for_alpha_bar` with the cosine transform and max_beta 0.999.
fn cosine_betas(n: usize) -> Vec<f64> {
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            f32r((1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999))
        })
        .collect()
}

/// Rescale betas to zero terminal SNR (arXiv 2305.08891, Algorithm 1).
fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut sqrt_ab: Vec<f64> = alphas_cumprod_of(betas).iter().map(|a| a.sqrt()).collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    for v in &mut sqrt_ab {
        *v = (*v - last) * first / (first - last);
    }
    let ab: Vec<f64> = sqrt_ab.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(f32r(1.0 - ab[0]));
    for w in ab.windows(2) {
        out.push(f32r(1.0 - w[1] / w[0]));
    }
    out
}

/// Cumulative products of `1 - beta`: float32 alphas, accumulated in f64 as torch's CPU cumprod
/// does, each stored as float32.
fn alphas_cumprod_of(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            acc *= (1.0f32 - b as f32) as f64;
            f32r(acc)
        })
        .collect()
}

pub(crate) fn alphas_cumprod(r: &Resolved) -> Vec<f64> {
    alphas_cumprod_of(&betas(r))
}

/// The cumulative alphas the sigma-based schedulers use: with zero-terminal-SNR betas the last one
/// is 0, and diffusers sets it to 2^-24 to keep the last sigma finite.
pub(crate) fn sigma_alphas_cumprod(r: &Resolved) -> Vec<f64> {
    let mut ac = alphas_cumprod(r);
    if r.rescale_betas_zero_snr
        && let Some(last) = ac.last_mut()
    {
        *last = 2f64.powi(-24);
    }
    ac
}

/// `((1 - ac) / ac) ** 0.5` in float32, as torch computes it.
pub(crate) fn sigma_of(ac: f64) -> f64 {
    let a = ac as f32;
    ((1.0f32 - a) / a).sqrt() as f64
}

/// Training sigmas, index = training timestep.
pub(crate) fn train_sigmas(ac: &[f64]) -> Vec<f64> {
    ac.iter().map(|&a| sigma_of(a)).collect()
}

/// `np.log` of the float32 training sigmas (a float32 array in diffusers).
pub(crate) fn log_sigmas(train_sigmas: &[f64]) -> Vec<f64> {
    train_sigmas.iter().map(|s| f32r(s.ln())).collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose log-sigma matches.
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // The last index whose log-sigma is <= log_sigma (0 when none), clipped so low+1 exists.
    let count = log_sigmas
        .iter()
        .filter(|&&ls| log_sigma - ls >= 0.0)
        .count();
    let low_idx = count.saturating_sub(1).min(log_sigmas.len() - 2);
    let (low, high) = (log_sigmas[low_idx], log_sigmas[low_idx + 1]);
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * (low_idx + 1) as f64
}

/// Karras et al. (2022) sigmas, rho = 7, from sigma_max down to sigma_min.
pub(crate) fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0;
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    np_linspace(0.0, 1.0, n)
        .into_iter()
        .map(|ramp| (max_inv + ramp * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// alpha_t and sigma_t of the variance-preserving process at this (variance-exploding) sigma.
pub(crate) fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// Timesteps of DDIM and the Euler samplers (`n` of them, highest first, not yet rounded for
/// linspace spacing: DDIM rounds them, Euler keeps them fractional).
pub(crate) fn discrete_timesteps(
    spacing: TimestepSpacing,
    num_train: usize,
    n: usize,
    offset: i64,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => {
            let mut v = np_linspace(0.0, (num_train - 1) as f64, n);
            v.reverse();
            v
        }
        TimestepSpacing::Leading => {
            let ratio = (num_train / n) as i64;
            (0..n as i64)
                .rev()
                .map(|i| (i * ratio + offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => trailing(num_train as f64, num_train, n),
    }
}

/// Timesteps of the multistep solvers (DPM-Solver, UniPC): `n + 1` points with the last dropped.
/// `last_timestep` is DPM-Solver's lambda_min_clipped cut (the train length when not clipped).
pub(crate) fn multistep_timesteps(
    spacing: TimestepSpacing,
    num_train: usize,
    last_timestep: usize,
    n: usize,
    offset: i64,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => {
            let v = np_linspace(0.0, last_timestep as f64 - 1.0, n + 1);
            v.iter()
                .rev()
                .take(n)
                .map(|t| t.round_ties_even())
                .collect()
        }
        TimestepSpacing::Leading => {
            let ratio = (last_timestep / (n + 1)) as i64;
            (1..=n as i64)
                .rev()
                .map(|i| (i * ratio + offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => trailing(last_timestep as f64, num_train, n),
    }
}

/// `np.round(np.arange(start, 0, -num_train / n)) - 1`.
fn trailing(start: f64, num_train: usize, n: usize) -> Vec<f64> {
    let ratio = num_train as f64 / n as f64;
    np_arange(start, 0.0, -ratio)
        .into_iter()
        .map(|t| t.round_ties_even() - 1.0)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::config::{ClassDefaults, SchedulerConfig};
    use super::*;

    fn sd15() -> Resolved {
        let cfg = SchedulerConfig {
            beta_start: Some(0.00085),
            beta_end: Some(0.012),
            beta_schedule: Some("scaled_linear".into()),
            ..Default::default()
        };
        let d = ClassDefaults {
            class: "test",
            timestep_spacing: TimestepSpacing::Leading,
        };
        Resolved::new(&cfg, d).unwrap()
    }

    #[test]
    fn numpy_helpers_match_numpy() {
        assert_eq!(np_linspace(0.0, 999.0, 4), vec![0.0, 333.0, 666.0, 999.0]);
        assert_eq!(np_linspace(3.0, 9.0, 1), vec![3.0]);
        // np.arange(1000, 0, -1000/3) -> [1000, 666.67, 333.33]
        let a = np_arange(1000.0, 0.0, -1000.0 / 3.0);
        assert_eq!(a.len(), 3);
        assert!((a[2] - 333.3333333).abs() < 1e-6);
        assert_eq!(interp_index(1.5, &[0.0, 2.0, 4.0]), 3.0);
        assert_eq!(interp_index(7.0, &[0.0, 2.0, 4.0]), 4.0);
    }

    #[test]
    fn sd15_schedule_matches_diffusers_values() {
        // diffusers: sigmas.max() 14.614646911621094, sigma at t=0 0.029167532920837402
        let s = train_sigmas(&alphas_cumprod(&sd15()));
        assert!((s[999] - 14.614646911621094).abs() < 2e-6, "{}", s[999]);
        assert!((s[0] - 0.029167532920837402).abs() < 1e-8, "{}", s[0]);
    }

    #[test]
    fn spacings_match_diffusers() {
        let lead = discrete_timesteps(TimestepSpacing::Leading, 1000, 4, 1);
        assert_eq!(lead, vec![751.0, 501.0, 251.0, 1.0]);
        let trail = discrete_timesteps(TimestepSpacing::Trailing, 1000, 3, 1);
        assert_eq!(trail, vec![999.0, 666.0, 332.0]);
        let ms = multistep_timesteps(TimestepSpacing::Linspace, 1000, 1000, 4, 0);
        assert_eq!(ms, vec![999.0, 749.0, 500.0, 250.0]);
        let ms = multistep_timesteps(TimestepSpacing::Leading, 1000, 1000, 1, 1);
        assert_eq!(ms, vec![501.0]);
    }

    #[test]
    fn sigma_to_t_inverts_the_training_sigmas() {
        let s = train_sigmas(&alphas_cumprod(&sd15()));
        let logs = log_sigmas(&s);
        assert!((sigma_to_t(s[500], &logs) - 500.0).abs() < 1e-3);
        assert_eq!(sigma_to_t(1e-6, &logs), 0.0);
        assert_eq!(sigma_to_t(1e6, &logs), 999.0);
    }
}
