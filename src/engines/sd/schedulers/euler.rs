//! Euler (diffusers `EulerDiscreteScheduler`, s_churn = 0: deterministic), optionally with
//! Karras sigmas. Also the sigma schedule Euler Ancestral shares.

use candle_core::Tensor;

use super::config::{
    ClassDefaults, FinalSigmas, PredictionType, Resolved, SchedulerConfig, TimestepSpacing,
    unsupported,
};
use super::ops::{check_index, lincomb};
use super::schedule::{
    discrete_timesteps, f32r, interp_index, karras_sigmas, log_sigmas, sigma_alphas_cumprod,
    sigma_of, sigma_to_t, train_sigmas,
};
use super::{NoiseSource, Scheduler};
use crate::Result;

/// Timesteps and sigmas of the Euler family (float32 values, like diffusers').
pub(crate) struct EulerSchedule {
    pub timesteps: Vec<f64>,
    /// One more than the timesteps: the final sigma.
    pub sigmas: Vec<f64>,
    pub init_noise_sigma: f64,
}

impl EulerSchedule {
    /// `karras` (with the config's optional sigma_min / sigma_max bounds) and `final_sigmas` are
    /// Euler's options; Euler Ancestral passes None / Zero.
    pub(crate) fn new(
        r: &Resolved,
        steps: usize,
        karras: Option<(Option<f64>, Option<f64>)>,
        final_sigmas: FinalSigmas,
    ) -> Self {
        let ac = sigma_alphas_cumprod(r);
        let train = train_sigmas(&ac);
        let mut timesteps: Vec<f64> = discrete_timesteps(
            r.timestep_spacing,
            r.num_train_timesteps,
            steps,
            r.steps_offset,
        )
        .into_iter()
        .map(f32r)
        .collect();
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp_index(t, &train)).collect();
        if let Some((min, max)) = karras {
            // Karras between the interpolated ends, then back to fractional timesteps.
            let lo = min.unwrap_or(sigmas[sigmas.len() - 1]);
            let hi = max.unwrap_or(sigmas[0]);
            sigmas = karras_sigmas(lo, hi, steps);
            let logs = log_sigmas(&train);
            timesteps = sigmas.iter().map(|&s| f32r(sigma_to_t(s, &logs))).collect();
        }
        sigmas.push(match final_sigmas {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => sigma_of(ac[0]),
        });
        let sigmas: Vec<f64> = sigmas.into_iter().map(f32r).collect();
        let max = sigmas.iter().copied().fold(0.0, f64::max);
        let init_noise_sigma = match r.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => f32r((max * max + 1.0).sqrt()),
        };
        Self {
            timesteps,
            sigmas,
            init_noise_sigma,
        }
    }

    /// `sample / sqrt(sigma^2 + 1)`.
    pub(crate) fn scale(&self, sample: &Tensor, index: usize) -> candle_core::Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        let sigma = self.sigmas[index];
        sample.affine(1.0 / (sigma * sigma + 1.0).sqrt(), 0.0)
    }

    /// `original + noise * sigma`.
    pub(crate) fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        index: usize,
    ) -> candle_core::Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        lincomb(&[(1.0, original), (self.sigmas[index], noise)])?.to_dtype(original.dtype())
    }
}

/// The denoised estimate x0 at this sigma (diffusers' `pred_original_sample`).
pub(crate) fn predict_x0(
    prediction: PredictionType,
    sigma: f64,
    model_output: &Tensor,
    sample: &Tensor,
) -> candle_core::Result<Tensor> {
    match prediction {
        PredictionType::Epsilon => lincomb(&[(1.0, sample), (-sigma, model_output)]),
        PredictionType::VPrediction => {
            let s2 = sigma * sigma + 1.0;
            lincomb(&[(-sigma / s2.sqrt(), model_output), (1.0 / s2, sample)])
        }
        PredictionType::Sample => super::ops::f32(model_output),
    }
}

pub(crate) struct Euler {
    schedule: EulerSchedule,
    prediction: PredictionType,
}

impl Euler {
    pub(crate) fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let class = "EulerDiscreteScheduler";
        let defaults = ClassDefaults {
            class,
            timestep_spacing: TimestepSpacing::Linspace,
        };
        let r = Resolved::new(cfg, defaults)?;
        super::config::refuse_sigma_variants(cfg, class)?;
        if let Some(kind) = cfg.interpolation_type.as_deref().filter(|k| *k != "linear") {
            return Err(unsupported(
                class,
                &format!("interpolation_type \"{kind}\""),
            ));
        }
        if let Some(kind) = cfg.timestep_type.as_deref().filter(|k| *k != "discrete") {
            return Err(unsupported(class, &format!("timestep_type \"{kind}\"")));
        }
        Ok(Self {
            schedule: EulerSchedule::new(
                &r,
                steps,
                r.use_karras_sigmas
                    .then_some((cfg.sigma_min, cfg.sigma_max)),
                r.final_sigmas_type,
            ),
            prediction: r.prediction_type,
        })
    }
}

impl Scheduler for Euler {
    fn name(&self) -> &'static str {
        "euler"
    }

    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }

    fn set_begin_index(&mut self, _index: usize) {
        // Stateless: every step reads its sigmas by index.
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
        _noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        check_index(timestep_index, self.schedule.timesteps.len())?;
        let sigma = self.schedule.sigmas[timestep_index];
        let sigma_next = self.schedule.sigmas[timestep_index + 1];
        let x0 = predict_x0(self.prediction, sigma, model_output, sample)?;
        // derivative = (sample - x0) / sigma; prev = sample + derivative * (sigma_next - sigma)
        let derivative = lincomb(&[(1.0 / sigma, sample), (-1.0 / sigma, &x0)])?;
        lincomb(&[(1.0, sample), (sigma_next - sigma, &derivative)])?.to_dtype(model_output.dtype())
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
