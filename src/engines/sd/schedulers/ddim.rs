//! DDIM (diffusers `DDIMScheduler`, eta = 0: deterministic).

use candle_core::Tensor;

use super::config::{ClassDefaults, PredictionType, Resolved, SchedulerConfig, TimestepSpacing};
use super::ops::{check_index, lincomb};
use super::schedule::{alphas_cumprod, discrete_timesteps};
use super::{NoiseSource, Scheduler};
use crate::{Error, Result};

pub(crate) struct Ddim {
    alphas_cumprod: Vec<f64>,
    /// Used as "alpha_bar of the step before the first" (set_alpha_to_one picks 1 or alphas_cumprod[0]).
    final_alpha_cumprod: f64,
    timesteps: Vec<f64>,
    /// diffusers' prev_timestep = t - num_train_timesteps // steps, whatever the spacing.
    step_gap: i64,
    prediction: PredictionType,
    clip: Option<f64>,
}

impl Ddim {
    pub(crate) fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let defaults = ClassDefaults {
            class: "DDIMScheduler",
            timestep_spacing: TimestepSpacing::Leading,
        };
        let r = Resolved::new(cfg, defaults)?;
        let n_train = r.num_train_timesteps;
        if steps > n_train {
            return Err(Error::bad_input(format!(
                "ddim: --steps {steps} is more than the model's {n_train} training timesteps"
            )));
        }
        let alphas_cumprod = alphas_cumprod(&r);
        let final_alpha_cumprod = if cfg.set_alpha_to_one.unwrap_or(true) {
            1.0
        } else {
            alphas_cumprod[0]
        };
        let timesteps: Vec<f64> =
            discrete_timesteps(r.timestep_spacing, n_train, steps, r.steps_offset)
                .into_iter()
                .map(|t| t.round_ties_even())
                .collect();
        if let Some(bad) = timesteps.iter().find(|&&t| t < 0.0 || t >= n_train as f64) {
            return Err(Error::bad_input(format!(
                "ddim: timestep {bad} falls outside 0..{n_train}; check steps_offset in scheduler_config.json"
            )));
        }
        let clip = cfg
            .clip_sample
            .unwrap_or(true)
            .then(|| cfg.clip_sample_range.unwrap_or(1.0));
        Ok(Self {
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
            step_gap: (n_train / steps) as i64,
            prediction: r.prediction_type,
            clip,
        })
    }

    fn alpha_bar(&self, t: i64) -> f64 {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .unwrap_or(self.final_alpha_cumprod)
    }
}

impl Scheduler for Ddim {
    fn name(&self) -> &'static str {
        "ddim"
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &[]
    }

    fn set_begin_index(&mut self, _index: usize) {
        // Stateless: each step reads its own timestep (diffusers' DDIM has no begin index either).
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(
        &self,
        sample: &Tensor,
        _timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        Ok(sample.clone())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep_index: usize,
        sample: &Tensor,
        _noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        check_index(timestep_index, self.timesteps.len())?;
        let t = self.timesteps[timestep_index] as i64;
        let a_t = self.alpha_bar(t);
        let a_prev = self.alpha_bar(t - self.step_gap);
        let b_t = 1.0 - a_t;
        let (mut x0, eps) = match self.prediction {
            PredictionType::Epsilon => {
                let x0 = lincomb(&[
                    (1.0 / a_t.sqrt(), sample),
                    (-b_t.sqrt() / a_t.sqrt(), model_output),
                ])?;
                (x0, model_output.clone())
            }
            PredictionType::Sample => {
                let x0 = super::ops::f32(model_output)?;
                let eps = lincomb(&[
                    (1.0 / b_t.sqrt(), sample),
                    (-a_t.sqrt() / b_t.sqrt(), model_output),
                ])?;
                (x0, eps)
            }
            PredictionType::VPrediction => (
                lincomb(&[(a_t.sqrt(), sample), (-b_t.sqrt(), model_output)])?,
                lincomb(&[(a_t.sqrt(), model_output), (b_t.sqrt(), sample)])?,
            ),
        };
        if let Some(range) = self.clip {
            x0 = x0.clamp(-range, range)?;
        }
        let prev = lincomb(&[(a_prev.sqrt(), &x0), ((1.0 - a_prev).sqrt(), &eps)])?;
        prev.to_dtype(model_output.dtype())
    }

    fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        check_index(timestep_index, self.timesteps.len())?;
        let a = self.alpha_bar(self.timesteps[timestep_index] as i64);
        lincomb(&[(a.sqrt(), original), ((1.0 - a).sqrt(), noise)])?.to_dtype(original.dtype())
    }
}
