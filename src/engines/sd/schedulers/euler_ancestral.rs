//! Euler Ancestral (diffusers `EulerAncestralDiscreteScheduler`): an Euler step down to
//! sigma_down, then fresh noise of size sigma_up.

use candle_core::{DType, Tensor};

use super::config::{
    ClassDefaults, FinalSigmas, PredictionType, Resolved, SchedulerConfig, TimestepSpacing,
    unsupported,
};
use super::euler::{EulerSchedule, predict_x0};
use super::ops::{check_index, lincomb};
use super::{NoiseSource, Scheduler};
use crate::Result;

pub(crate) struct EulerAncestral {
    schedule: EulerSchedule,
    prediction: PredictionType,
}

impl EulerAncestral {
    pub(crate) fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let class = "EulerAncestralDiscreteScheduler";
        let defaults = ClassDefaults {
            class,
            timestep_spacing: TimestepSpacing::Linspace,
        };
        let r = Resolved::new(cfg, defaults)?;
        if r.prediction_type == PredictionType::Sample {
            // diffusers raises NotImplementedError for it too.
            return Err(unsupported(class, "prediction_type \"sample\""));
        }
        // The class has no Karras / final-sigma options: those config keys do not reach it.
        Ok(Self {
            schedule: EulerSchedule::new(&r, steps, None, FinalSigmas::Zero),
            prediction: r.prediction_type,
        })
    }
}

impl Scheduler for EulerAncestral {
    fn name(&self) -> &'static str {
        "euler-a"
    }

    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }

    fn set_begin_index(&mut self, _index: usize) {
        // Stateless apart from the noise, which the caller's NoiseSource carries.
    }

    fn init_noise_sigma(&self) -> f64 {
        self.schedule.init_noise_sigma
    }

    fn scale_model_input(
        &self,
        sample: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        self.schedule.scale(sample, timestep_index)
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep_index: usize,
        sample: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        check_index(timestep_index, self.schedule.timesteps.len())?;
        let sigma = self.schedule.sigmas[timestep_index];
        let sigma_to = self.schedule.sigmas[timestep_index + 1];
        let x0 = predict_x0(self.prediction, sigma, model_output, sample)?;
        let (from2, to2) = (sigma * sigma, sigma_to * sigma_to);
        let sigma_up = (to2 * (from2 - to2) / from2).max(0.0).sqrt();
        let sigma_down = (to2 - sigma_up * sigma_up).max(0.0).sqrt();
        let derivative = lincomb(&[(1.0 / sigma, sample), (-1.0 / sigma, &x0)])?;
        // Drawn at every step, the last (sigma_up = 0) included, so a seed's stream matches diffusers'.
        let fresh = noise.randn(model_output.dims(), model_output.device(), DType::F32)?;
        lincomb(&[
            (1.0, sample),
            (sigma_down - sigma, &derivative),
            (sigma_up, &fresh),
        ])?
        .to_dtype(model_output.dtype())
    }

    fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        self.schedule.add_noise(original, noise, timestep_index)
    }
}
