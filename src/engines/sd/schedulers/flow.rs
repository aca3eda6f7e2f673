//! The flow-matching variant of UniPC (`use_flow_sigmas = true`, `prediction_type =
//! "flow_prediction"`: Wan's scheduler config): sigmas run from 1 to 0 in a straight line between
//! data and noise, `alpha_t = 1 - sigma`, `sigma_t = sigma`, and the model predicts the velocity
//! `noise - x0`.
//!
//! The schedule follows diffusers' `set_timesteps`: `np.linspace(1, 1/num_train, steps + 1)[:-1]`
//! in float64, shifted by `flow_shift * s / (1 + (flow_shift - 1) * s)` (float64: numpy arrays with
//! Python float scalars), optionally stretched to `shift_terminal`, the first sigma nudged below 1
//! by 1e-6 (diffusers does, to keep `log(alpha)` finite), the timesteps `sigma * num_train`
//! truncated to int64, and the sigmas stored as float32 with a trailing 0 (or the last sigma).

use super::config::{SchedulerConfig, refuse_sigma_variants, unsupported};
use super::schedule::np_linspace;
use crate::{Error, Result};

/// A flow schedule: integer-valued timesteps and f32-valued sigmas (one more than timesteps).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FlowSchedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
}

/// Whether this config asks for flow sigmas.
pub(crate) fn is_flow(cfg: &SchedulerConfig) -> bool {
    cfg.use_flow_sigmas == Some(true)
}

/// The config with the flow-only keys checked and removed, so the shared resolution (betas,
/// spacing, final sigma type) can read the rest.
pub(crate) fn check_flow_config(cfg: &SchedulerConfig, class: &str) -> Result<SchedulerConfig> {
    match cfg.prediction_type.as_deref() {
        Some("flow_prediction") => {}
        other => {
            return Err(unsupported(
                class,
                &format!(
                    "use_flow_sigmas = true with prediction_type {:?} (only \"flow_prediction\")",
                    other.unwrap_or("epsilon")
                ),
            ));
        }
    }
    if cfg.use_dynamic_shifting == Some(true) {
        return Err(unsupported(class, "use_dynamic_shifting = true"));
    }
    if cfg.use_karras_sigmas == Some(true) {
        return Err(unsupported(class, "use_karras_sigmas with use_flow_sigmas"));
    }
    if cfg.predict_x0 == Some(false) {
        return Err(unsupported(
            class,
            "predict_x0 = false with flow_prediction",
        ));
    }
    let shift = cfg.flow_shift.unwrap_or(1.0);
    if !(shift.is_finite() && shift > 0.0) {
        return Err(Error::bad_input(format!(
            "scheduler config: flow_shift must be a positive number, got {shift}"
        )));
    }
    if let Some(t) = cfg.shift_terminal.filter(|&t| t != 0.0)
        && !(t.is_finite() && t < 1.0)
    {
        return Err(Error::bad_input(format!(
            "scheduler config: shift_terminal must be below 1, got {t}"
        )));
    }
    let mut rest = cfg.clone();
    rest.use_flow_sigmas = None;
    rest.prediction_type = None;
    refuse_sigma_variants(&rest, class)?;
    Ok(rest)
}

/// diffusers' flow `set_timesteps(steps)`; `final_zero` is `final_sigmas_type == "zero"`.
pub(crate) fn flow_schedule(
    cfg: &SchedulerConfig,
    num_train: usize,
    steps: usize,
    final_zero: bool,
) -> FlowSchedule {
    let shift = cfg.flow_shift.unwrap_or(1.0);
    let mut sigmas: Vec<f64> = np_linspace(1.0, 1.0 / num_train as f64, steps + 1)
        .into_iter()
        .take(steps)
        .map(|s| shift * s / (1.0 + (shift - 1.0) * s))
        .collect();
    if let Some(terminal) = cfg.shift_terminal.filter(|&t| t != 0.0)
        && let Some(&last) = sigmas.last()
    {
        let scale = (1.0 - last) / (1.0 - terminal);
        for s in &mut sigmas {
            *s = 1.0 - (1.0 - *s) / scale;
        }
    }
    if let Some(first) = sigmas.first_mut()
        && (*first - 1.0).abs() < 1e-6
    {
        *first -= 1e-6;
    }
    let timesteps = sigmas
        .iter()
        .map(|&s| (s * num_train as f64).trunc())
        .collect();
    let last = if final_zero {
        0.0
    } else {
        sigmas.last().copied().unwrap_or(0.0)
    };
    sigmas.push(last);
    FlowSchedule {
        timesteps,
        sigmas: sigmas.into_iter().map(|s| f64::from(s as f32)).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wan(shift: f64) -> SchedulerConfig {
        SchedulerConfig {
            use_flow_sigmas: Some(true),
            prediction_type: Some("flow_prediction".into()),
            flow_shift: Some(shift),
            ..Default::default()
        }
    }

    #[test]
    fn shifted_schedule_starts_just_below_one() {
        let s = flow_schedule(&wan(3.0), 1000, 4, true);
        assert_eq!(s.timesteps.len(), 4);
        assert_eq!(s.sigmas.len(), 5);
        assert_eq!(s.timesteps[0], 999.0);
        assert_eq!(s.sigmas[0], f64::from((1.0f64 - 1e-6) as f32));
        assert_eq!(s.sigmas[4], 0.0);
        // 0.75025 shifted by 3: 3x / (1 + 2x).
        let x = 1.0 + (0.001 - 1.0) / 4.0;
        assert_eq!(s.sigmas[1], f64::from((3.0 * x / (1.0 + 2.0 * x)) as f32));
        assert!(s.sigmas.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn non_flow_predictions_and_dynamic_shift_are_refused() {
        let mut c = wan(3.0);
        c.prediction_type = Some("epsilon".into());
        assert_eq!(check_flow_config(&c, "U").unwrap_err().exit_code(), 2);
        let mut c = wan(3.0);
        c.use_dynamic_shifting = Some(true);
        assert!(check_flow_config(&c, "U").is_err());
        assert!(check_flow_config(&wan(0.0), "U").is_err());
        assert!(check_flow_config(&wan(5.0), "U").is_ok());
    }
}
