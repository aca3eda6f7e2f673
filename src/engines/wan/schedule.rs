//! Wan's scheduler, as its `scheduler/scheduler_config.json` names it: UniPC on flow sigmas (the
//! Wan 2.1 repos') or FlowMatchEulerDiscreteScheduler, each driven as WanPipeline drives it
//! (`set_timesteps(steps)`, then `step(noise_pred, t, latents)` with float32 latents).

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler, linspace};
use crate::engines::sd::noise::SeededNoise;
use crate::engines::sd::schedulers::{self, Scheduler, SchedulerConfig};
use crate::error::{Error, Result};

/// The config as read, before a step count is known.
#[derive(Debug, Clone)]
pub enum WanSchedulerConfig {
    UniPc(Box<SchedulerConfig>),
    Euler(FlowMatchConfig),
}

impl WanSchedulerConfig {
    /// Reads `scheduler_config.json`; a class other than the two, or UniPC without flow sigmas,
    /// is bad input naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg = SchedulerConfig::from_json(&text)
            .map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        match cfg.class_name.as_deref() {
            Some("UniPCMultistepScheduler") | None => {
                if cfg.use_flow_sigmas != Some(true) {
                    return Err(bad(
                        "Wan's UniPCMultistepScheduler needs use_flow_sigmas = true and \
                         prediction_type flow_prediction (as the Wan 2.1 repos have it)"
                            .into(),
                    ));
                }
                // Build once to check every key now, not when the job runs.
                schedulers::build("unipc", &cfg, 1).map_err(|e| bad(e.to_string()))?;
                Ok(Self::UniPc(Box::new(cfg)))
            }
            Some("FlowMatchEulerDiscreteScheduler") => {
                let euler = FlowMatchConfig::from_json(&text).map_err(bad)?;
                if euler.use_dynamic_shifting {
                    return Err(bad(
                        "use_dynamic_shifting needs a resolution shift Wan does not pass".into(),
                    ));
                }
                Ok(Self::Euler(euler))
            }
            Some(other) => Err(bad(format!(
                "scheduler `{other}` is not one Wan runs here (UniPCMultistepScheduler with \
                 flow sigmas, FlowMatchEulerDiscreteScheduler)"
            ))),
        }
    }

    /// The schedule of `steps` steps.
    pub fn build(&self, steps: usize) -> Result<WanSchedule> {
        Ok(match self {
            Self::UniPc(cfg) => WanSchedule::UniPc(schedulers::build("unipc", cfg, steps)?),
            Self::Euler(cfg) => WanSchedule::Euler(euler_default_timesteps(cfg, steps)?),
        })
    }
}

/// FlowMatchEulerDiscreteScheduler's `set_timesteps(steps)` without given sigmas: timesteps
/// linspace(sigma_max * N, sigma_min * N, steps) of the shifted training sigmas (sigma_max 1),
/// divided by N and shifted again. The unshifted sigmas are rounded to float32 before the shift
/// (diffusers shifts them in float64): within one float32 ulp of diffusers' values.
fn euler_default_timesteps(cfg: &FlowMatchConfig, steps: usize) -> Result<FlowMatchEuler> {
    if steps == 0 {
        return Err(Error::bad_input("--steps must be at least 1"));
    }
    let n = cfg.num_train_timesteps as f64;
    let shift = cfg.shift as f32;
    let s = 1.0f32 / cfg.num_train_timesteps as f32;
    let sigma_min = f64::from(shift * s / (1.0 + (shift - 1.0) * s));
    let sigmas: Vec<f64> = linspace(n, sigma_min * n, steps)
        .into_iter()
        .map(|t| t / n)
        .collect();
    FlowMatchEuler::with_sigmas(cfg, &sigmas, None)
}

/// A schedule being run.
pub enum WanSchedule {
    UniPc(Box<dyn Scheduler>),
    Euler(FlowMatchEuler),
}

impl WanSchedule {
    /// The timesteps the transformer gets, in order.
    pub fn timesteps(&self) -> Vec<f64> {
        match self {
            Self::UniPc(s) => s.timesteps().to_vec(),
            Self::Euler(s) => s.timesteps().to_vec(),
        }
    }

    /// Step `i`: the guided velocity (any dtype) applied to the float32 latents; float32 out.
    pub fn step(&mut self, velocity: &Tensor, i: usize, latents: &Tensor) -> Result<Tensor> {
        let velocity = velocity.to_dtype(DType::F32)?;
        Ok(match self {
            // UniPC draws no noise; its source is never read.
            Self::UniPc(s) => s.step(&velocity, i, latents, &mut SeededNoise::new(0))?,
            Self::Euler(s) => s.step(&velocity, i, latents)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn euler_default_schedule_runs_from_one_down_shifted() {
        let cfg = FlowMatchConfig {
            shift: 3.0,
            ..FlowMatchConfig::default()
        };
        let s = euler_default_timesteps(&cfg, 4).unwrap();
        assert_eq!(s.timesteps().len(), 4);
        assert_eq!(s.sigmas()[0], 1.0);
        assert_eq!(*s.sigmas().last().unwrap(), 0.0);
        assert!(s.sigmas().windows(2).all(|w| w[0] > w[1]));
        // The last shifted sigma: 3x/(1+2x) of the smallest training sigma, 1/1000.
        let x = 0.003f64 / 1.002;
        let last = 3.0 * x / (1.0 + 2.0 * x);
        assert!((s.sigmas()[3] - last).abs() < 1e-6, "{}", s.sigmas()[3]);
    }
}
