//! The flow-matching schedule StableDiffusion3Pipeline asks for: `set_timesteps(steps)` with no
//! sigmas, so diffusers spaces timesteps linearly between its training schedule's ends (already
//! shifted once at construction) and shifts them again. The arithmetic keeps diffusers' types: the
//! training ends are float32 torch values, the spacing and the second shift are float64 numpy,
//! and the result is rounded to float32 once.

use crate::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler, linspace};
use crate::error::{Error, Result};

/// `shift * s / (1 + (shift - 1) * s)` in float32, as torch computes it on the training sigmas.
fn shift_f32(shift: f64, s: f32) -> f32 {
    let (shift32, shift_m1) = (shift as f32, (shift - 1.0) as f32);
    (shift32 * s) / (1.0 + shift_m1 * s)
}

/// SD 3's schedule for `steps` steps (before img2img truncation).
pub fn sd3_schedule(config: &FlowMatchConfig, steps: usize) -> Result<FlowMatchEuler> {
    if steps == 0 {
        return Err(Error::bad_input("SD 3.5 needs at least 1 inference step"));
    }
    let unsupported = |what: &str| {
        Error::bad_input(format!(
            "the scheduler config sets {what}, which the SD 3.5 engine does not implement \
             (stabilityai's SD 3.5 repos use a static shift)"
        ))
    };
    if config.use_dynamic_shifting {
        return Err(unsupported("use_dynamic_shifting"));
    }
    if config.shift_terminal.is_some_and(|t| t != 0.0) {
        return Err(unsupported("shift_terminal"));
    }
    let n = config.num_train_timesteps;
    if n == 0 {
        return Err(Error::bad_input(
            "the scheduler config's num_train_timesteps is 0",
        ));
    }
    // The training schedule's ends: t = n and t = 1 (float32), over n (n / n is exactly 1),
    // shifted.
    let sigma_max = shift_f32(config.shift, 1.0);
    let sigma_min = shift_f32(config.shift, 1.0f32 / n as f32);
    let train = n as f64;
    let ts = linspace(
        f64::from(sigma_max) * train,
        f64::from(sigma_min) * train,
        steps,
    );
    let shift = config.shift;
    let shifted: Vec<f32> = ts
        .iter()
        .map(|&t| {
            let s = t / train;
            (shift * s / (1.0 + (shift - 1.0) * s)) as f32
        })
        .collect();
    Ok(FlowMatchEuler::from_shifted(&shifted, n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(shift: f64) -> FlowMatchConfig {
        FlowMatchConfig {
            shift,
            ..FlowMatchConfig::default()
        }
    }

    #[test]
    fn one_step_is_sigma_one() {
        let s = sd3_schedule(&config(3.0), 1).unwrap();
        assert_eq!(s.timesteps(), [1000.0]);
        assert_eq!(s.sigmas(), [1.0, 0.0]);
    }

    #[test]
    fn dynamic_shifting_and_zero_steps_are_refused() {
        let dynamic = FlowMatchConfig {
            use_dynamic_shifting: true,
            ..config(3.0)
        };
        assert!(sd3_schedule(&dynamic, 4).is_err());
        assert!(sd3_schedule(&config(3.0), 0).is_err());
    }
}
